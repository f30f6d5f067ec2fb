"""The wire layer must stay plain Python: no Django import anywhere in xero/."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import xero_integration.xero

PACKAGE_DIR = Path(xero_integration.xero.__file__).parent


def django_imports(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if alias.name.split(".")[0] == "django"]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "django":
            found.append(node.module or "")
    return found


def test_the_scanner_spots_django_imports() -> None:
    assert django_imports("import django.db\nfrom django.conf import settings\n") == [
        "django.db",
        "django.conf",
    ]
    assert django_imports("import requests\nfrom .wire import loads\n") == []


def test_no_module_in_xero_imports_django() -> None:
    modules = sorted(PACKAGE_DIR.glob("*.py"))
    assert len(modules) >= 6
    offenders = {
        path.name: imports
        for path in modules
        if (imports := django_imports(path.read_text(encoding="utf-8")))
    }
    assert offenders == {}


def test_importing_the_package_loads_no_django() -> None:
    code = (
        "import sys, xero_integration.xero\n"
        "loaded = [m for m in sys.modules if m == 'django' or m.startswith('django.')]\n"
        "print(loaded)\n"
        "sys.exit(1 if loaded else 0)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=PACKAGE_DIR.parent.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
