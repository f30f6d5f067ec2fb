"""The wheel a host CRM installs holds the app, its sandbox and pytest plugin, and nothing else."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IGNORED = shutil.ignore_patterns(
    ".git",
    ".venv",
    "var",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
    "test-artifacts",
    "node_modules",
    ".env",
)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    """Build the wheel from a copy of the source tree, so the checkout stays clean."""
    source = tmp_path_factory.mktemp("source") / "project"
    shutil.copytree(ROOT, source, ignore=IGNORED)
    out = tmp_path_factory.mktemp("wheelhouse")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            ".",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(out),
        ],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (built,) = out.glob("xero_integration-*.whl")
    with zipfile.ZipFile(built) as archive:
        yield archive


@pytest.fixture(scope="module")
def names(wheel: zipfile.ZipFile) -> set[str]:
    return set(wheel.namelist())


def test_wheel_holds_the_migrations(names: set[str]) -> None:
    assert "xero_integration/migrations/__init__.py" in names
    assert "xero_integration/migrations/0001_initial.py" in names
    on_disk = {
        f"xero_integration/migrations/{p.name}"
        for p in (ROOT / "xero_integration" / "migrations").glob("*.py")
    }
    assert on_disk <= names


def test_wheel_holds_the_templates(names: set[str]) -> None:
    on_disk = {
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "xero_integration" / "templates").rglob("*")
        if p.is_file()
    }
    assert "xero_integration/templates/xero_integration/tile.html" in on_disk
    assert on_disk <= names, sorted(on_disk - names)


def test_wheel_holds_the_sandbox_and_the_pytest_plugin(names: set[str]) -> None:
    assert "xero_integration/sandbox/__main__.py" in names
    assert "xero_integration/testing/pytest_plugin.py" in names
    on_disk = {
        p.relative_to(ROOT).as_posix()
        for folder in ("sandbox", "testing")
        for p in (ROOT / "xero_integration" / folder).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert on_disk <= names, sorted(on_disk - names)


def test_wheel_declares_the_pytest11_entry_point(wheel: zipfile.ZipFile, names: set[str]) -> None:
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    text = wheel.read(entry_points).decode()
    section = text.split("[pytest11]", 1)[1].split("\n[", 1)[0]
    entries = {
        key.strip(): value.strip()
        for key, _, value in (line.partition("=") for line in section.splitlines())
        if key.strip()
    }
    # Named after its module: a conftest that also lists the module in pytest_plugins finds
    # it registered already instead of registering it a second time.
    plugin = "xero_integration.testing.pytest_plugin"
    assert entries == {plugin: plugin}


def test_wheel_leaves_out_the_demo_and_the_tests(names: set[str]) -> None:
    stray = sorted(n for n in names if n.startswith(("crm_demo/", "tests/")))
    assert stray == []
    top_level = {n.split("/", 1)[0] for n in names}
    assert {t for t in top_level if not t.endswith(".dist-info")} == {"xero_integration"}
