"""pytest plugin: ``xero_sandbox`` serves a fresh Xero sandbox for each test.

Enable it with ``pytest_plugins = ["xero_integration.testing.pytest_plugin"]`` in a
``conftest.py`` (it is also registered as the ``xero_sandbox`` entry point when the package is
installed)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .sandbox_server import SandboxServer


@pytest.fixture
def xero_sandbox() -> Iterator[SandboxServer]:
    """A Xero sandbox over real HTTP on a free loopback port, empty at the start of the test."""
    server = SandboxServer()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def xero_sandbox_settings(settings, xero_sandbox: SandboxServer) -> SandboxServer:
    """Point the Xero login, identity and API URLs of the Django settings at the sandbox."""
    settings.XERO_LOGIN_URL = xero_sandbox.url
    settings.XERO_IDENTITY_URL = xero_sandbox.url
    settings.XERO_API_URL = xero_sandbox.url
    return xero_sandbox
