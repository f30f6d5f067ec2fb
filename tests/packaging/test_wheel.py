"""The wheel holds the installable app alone, with its templates and migrations."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
        cwd=tmp_path_factory.mktemp("build"),
    )
    (path,) = out.glob("xero_integration-*.whl")
    return zipfile.ZipFile(path)


@pytest.fixture(scope="module")
def wheel_names(wheel: zipfile.ZipFile) -> list[str]:
    return wheel.namelist()


def test_wheel_contains_templates_and_migrations(wheel_names: list[str]) -> None:
    assert "xero_integration/migrations/0001_initial.py" in wheel_names
    assert "xero_integration/templates/xero_integration/settings.html" in wheel_names
    assert "xero_integration/templates/xero_integration/_tile.html" in wheel_names
    assert "xero_integration/sandbox/__main__.py" in wheel_names
    assert "xero_integration/testing/pytest_plugin.py" in wheel_names


def test_wheel_leaves_out_the_demo_and_the_tests(wheel_names: list[str]) -> None:
    assert not [name for name in wheel_names if name.startswith(("crm_demo/", "tests/"))]


def test_wheel_registers_the_pytest_plugin(wheel: zipfile.ZipFile) -> None:
    (entry_points,) = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]
    text = wheel.read(entry_points).decode()
    assert "[pytest11]" in text
    assert "xero_sandbox = xero_integration.testing.pytest_plugin" in text
