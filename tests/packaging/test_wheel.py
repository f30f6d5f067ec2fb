"""The wheel a host CRM installs holds the app, its sandbox and pytest plugin, and nothing else."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.packaging.docs_examples import ROOT


@pytest.fixture(scope="module")
def wheel(built_wheel: Path) -> Iterator[zipfile.ZipFile]:
    with zipfile.ZipFile(built_wheel) as archive:
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
