"""pytest plugin for host CRMs' tests: the Xero sandbox, and a CRM account connected to it.

Installing the package registers this plugin (the ``pytest11`` entry point), so a project
needs no ``pytest_plugins`` line. The Django fixtures need pytest-django.

``xero_connect(client)`` is the one line most tests need: it connects the signed-in user's CRM
account to a fresh sandbox organisation through the consent screen, with default accounts
chosen, and runs the app's tasks inline for the rest of the test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from . import host
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
def xero_sandbox_settings(settings: Any, xero_sandbox: SandboxServer) -> SandboxServer:
    """Point the Xero login, identity and API URLs of the Django settings at the sandbox."""
    settings.XERO_LOGIN_URL = xero_sandbox.url
    settings.XERO_IDENTITY_URL = xero_sandbox.url
    settings.XERO_API_URL = xero_sandbox.url
    return xero_sandbox


@pytest.fixture
def xero_encryption_key(settings: Any) -> str:
    """Tokens are encrypted with a test key (the test runner turns DEBUG off, so a project
    that relies on a development key would have none)."""
    settings.XERO_ENCRYPTION_KEYS = [host.TEST_ENCRYPTION_KEY]
    return host.TEST_ENCRYPTION_KEY


@pytest.fixture
def xero_tasks_inline(transactional_db: None) -> Iterator[host.InlineTasks]:
    """The app's django-q2 tasks run at once in the test's process; a task that raises fails
    the test (clear ``.failures`` to accept one). The test's database commits, because the
    app queues its tasks when a transaction commits."""
    with host.tasks_run_inline() as inline:
        yield inline
    try:
        inline.raise_failures()
    except host.BackgroundTaskFailed as failed:
        pytest.fail(str(failed), pytrace=False)


@pytest.fixture
def xero_sandbox_app(settings: Any, xero_sandbox: SandboxServer) -> Iterator[dict[str, Any]]:
    """A Xero web app registered in the sandbox, and the CRM's settings pointed at it
    (client id and secret, the three URLs, the redirect URI). Returns the settings made."""
    from xero_integration import services

    made = host.sandbox_settings(xero_sandbox)
    for name, value in made.items():
        setattr(settings, name, value)
    # Budgets of earlier tests (or of a Redis limiter the project configures) do not apply.
    services.reset_limiter()
    yield made
    services.reset_limiter()


@pytest.fixture
def xero_connect(
    xero_sandbox: SandboxServer,
    xero_sandbox_app: dict[str, Any],
    xero_encryption_key: str,
    xero_tasks_inline: host.InlineTasks,
) -> Callable[..., host.ConnectedOrganisation]:
    """``xero_connect(client)``: connect the CRM account of the user ``client`` is signed in as
    to a new sandbox organisation, as that user would (Connect, Allow access, default accounts
    saved); returns a ``ConnectedOrganisation`` whose ``invoices()``, ``invoice(number)``,
    ``payments()`` and ``contacts()`` show what reached it. Keyword arguments go to
    ``SandboxServer.create_organisation`` (``contacts=3`` gives it three contacts to import);
    see ``xero_integration.testing.host.connect`` for the rest."""

    def connect(
        client: Any, tenant_id: str | None = None, **options: Any
    ) -> host.ConnectedOrganisation:
        return host.connect(client, xero_sandbox, tenant_id, **options)

    return connect
