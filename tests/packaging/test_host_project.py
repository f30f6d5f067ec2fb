"""A CRM of its own (tests/hostproject: Organisation, Customer, Invoice, InvoiceLine, Payment)
installs the built wheel in a fresh virtualenv and passes its tests against the sandbox, with
the test kit the package ships; the tests the README shows run there as written, and the code
the documentation shows is the project's own."""

from __future__ import annotations

import os
import shutil
import subprocess
import sysconfig
import venv
from pathlib import Path

import pytest

from tests.packaging.docs_examples import HOST_PROJECT, all_examples, is_excerpt

# The host's suite runs on its own SQLite database whatever the suite's database; once is enough.
needs_one_run = pytest.mark.skipif(
    bool(os.environ.get("DATABASE_URL")), reason="runs in the SQLite pass of the suite"
)


def host_environment() -> dict[str, str]:
    """The environment of a developer's shell: none of this suite's settings leak in (pytest-
    django's DJANGO_SETTINGS_MODULE would win over the host's pytest.ini)."""
    leaking = ("DJANGO_", "PYTEST_", "XERO_", "Q_", "PYTHON")
    environment = {
        name: value for name, value in os.environ.items() if not name.startswith(leaking)
    }
    for name in ("DATABASE_URL", "REDIS_URL", "VIRTUAL_ENV", "SECRET_KEY", "DEBUG"):
        environment.pop(name, None)
    return environment


@pytest.fixture(scope="module")
def host_python(built_wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv with the wheel installed. Its other requirements (Django, django-q2,
    pytest-django...) come from this suite's environment through a .pth file, so nothing is
    downloaded; the package itself only from the wheel (the source tree is not on its path)."""
    home = tmp_path_factory.mktemp("host-venv")
    venv.EnvBuilder(with_pip=False, symlinks=True).create(home)
    python = home / "bin" / "python"
    own_site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(own_site, "_requirements.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    installed = subprocess.run(
        [python, "-m", "pip", "install", "--no-deps", "--no-index", "--quiet", built_wheel],
        capture_output=True,
        text=True,
        env=host_environment(),
        timeout=300,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return python


def run(python: Path, arguments: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [python, *arguments],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=host_environment(),
        timeout=600,
    )


def test_the_documented_code_is_the_example_projects_own() -> None:
    examples = all_examples()
    assert {e.path for e in examples} >= {
        "hostsite/settings.py",
        "hostsite/urls.py",
        "mycrm/models.py",
        "mycrm/xero_adapter.py",
        "mycrm/templates/base.html",
    }
    for example in examples:
        if example.is_new_test:
            continue
        source = HOST_PROJECT / example.path
        assert source.is_file(), f"{example.where} shows {example.path}, which the project lacks"
        assert is_excerpt(example.text, source.read_text(encoding="utf-8")), (
            f"{example.where} differs from tests/hostproject/{example.path}"
        )


@needs_one_run
def test_the_host_project_passes_its_tests_from_the_installed_wheel(
    host_python: Path, tmp_path: Path
) -> None:
    project = tmp_path / "hostproject"
    leftovers = shutil.ignore_patterns("__pycache__", "*.sqlite3", ".ruff_cache")
    shutil.copytree(HOST_PROJECT, project, ignore=leftovers)
    documented = [e for e in all_examples() if e.is_new_test]
    assert any(e.doc.name == "README.md" for e in documented), "the README shows no host test"
    for example in documented:
        (project / example.path).write_text(example.text, encoding="utf-8")

    where = run(
        host_python, ["-c", "import xero_integration; print(xero_integration.__file__)"], project
    )
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(host_python.parent.parent), where.stdout

    result = run(host_python, ["-m", "pytest", "-p", "no:cacheprovider", "-v"], project)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Plugin already registered" not in output
    passed = [line for line in output.splitlines() if " PASSED" in line]
    for example in documented:
        assert any(line.startswith(f"{example.path}::") for line in passed), output
    assert " passed" in output.splitlines()[-1]


@needs_one_run
def test_a_pytest_plugins_line_does_no_harm_once_installed(
    host_python: Path, tmp_path: Path
) -> None:
    """A conftest that still names the plugin, as older instructions said, keeps working."""
    (tmp_path / "conftest.py").write_text(
        'pytest_plugins = ["xero_integration.testing.pytest_plugin"]\n'
    )
    (tmp_path / "test_sandbox.py").write_text(
        "def test_the_sandbox_answers(xero_sandbox):\n"
        "    organisation = xero_sandbox.create_organisation(name='Acme')\n"
        "    assert xero_sandbox.organisation_state(organisation['tenant_id'])\n"
    )
    result = run(host_python, ["-m", "pytest", "-p", "no:cacheprovider", "-q"], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
