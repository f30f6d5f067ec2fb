"""Fixtures for the integration tests: a Xero app registered in the sandbox, tasks run inline.

The ``xero_sandbox`` fixture comes from the package's pytest plugin
(``xero_integration.testing.pytest_plugin``): a fresh sandbox on a free loopback port per test.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.urls import reverse
from django.utils import timezone

from tests.integration.consent import consent

#: The redirect URI the Django test client's requests resolve to.
TEST_REDIRECT_URI = "http://testserver/integrations/xero/callback/"
WEB_CLIENT_ID = "crm-test-web"
WEB_CLIENT_SECRET = "crm-test-web-secret-0123456789"
PKCE_CLIENT_ID = "crm-test-pkce"


@dataclass(frozen=True)
class XeroApp:
    """A Xero app registered in the sandbox, and the settings that point the CRM at it."""

    client_id: str
    client_secret: str | None
    redirect_uri: str

    @property
    def is_pkce(self) -> bool:
        return self.client_secret is None

    @property
    def kind(self) -> str:
        return "pkce" if self.is_pkce else "web"


def register_app(
    settings: Any,
    xero_sandbox: Any,
    client_id: str,
    client_secret: str | None,
    redirect_uri: str = TEST_REDIRECT_URI,
) -> XeroApp:
    """Register an app in the sandbox and configure the CRM's Xero settings to use it."""
    xero_sandbox.register_app(client_id, client_secret=client_secret, redirect_uris=[redirect_uri])
    settings.XERO_CLIENT_ID = client_id
    settings.XERO_CLIENT_SECRET = client_secret or ""
    settings.XERO_LOGIN_URL = xero_sandbox.url
    settings.XERO_IDENTITY_URL = xero_sandbox.url
    settings.XERO_API_URL = xero_sandbox.url
    settings.XERO_REDIRECT_URI = redirect_uri
    return XeroApp(client_id, client_secret, redirect_uri)


@pytest.fixture
def xero_app(settings, xero_sandbox) -> XeroApp:
    """A Xero web app (with a client secret) registered in the sandbox; the CRM points at it."""
    return register_app(settings, xero_sandbox, WEB_CLIENT_ID, WEB_CLIENT_SECRET)


@pytest.fixture
def xero_pkce_app(settings, xero_sandbox) -> XeroApp:
    """A Xero "Auth Code with PKCE" app (no secret) registered in the sandbox."""
    return register_app(settings, xero_sandbox, PKCE_CLIENT_ID, None)


@pytest.fixture(params=["web", "pkce"])
def any_app(request) -> XeroApp:
    """Each test using this runs once per Xero app type."""
    return request.getfixturevalue("xero_app" if request.param == "web" else "xero_pkce_app")


@pytest.fixture(autouse=True)
def _tasks_run_inline(monkeypatch) -> Iterator[list[dict[str, Any]]]:
    """django-q runs every task at once in the caller's process; a failed task fails the test.

    django-q swallows a task's exception (it stores it as a failed task), which would hide a
    crash in the app behind a page that waits forever, so failures are collected and reported.
    """
    from django_q.conf import Conf
    from django_q.signals import post_execute

    monkeypatch.setattr(Conf, "SYNC", True)
    failures: list[dict[str, Any]] = []

    def record(sender: Any, task: dict[str, Any], **kwargs: Any) -> None:
        if not task.get("success"):
            failures.append(task)

    post_execute.connect(record, weak=False, dispatch_uid="integration-test-task-failures")
    try:
        yield failures
    finally:
        post_execute.disconnect(dispatch_uid="integration-test-task-failures")
    if failures:
        details = "\n\n".join(
            f"{t.get('func')}{t.get('args')}: {t.get('result')}" for t in failures
        )
        pytest.fail(f"{len(failures)} background task(s) failed:\n{details}", pytrace=False)


# Organisations and connections ------------------------------------------------------------------


@pytest.fixture
def organisation(xero_sandbox) -> dict[str, str]:
    """One Xero organisation with the sandbox's default chart of accounts."""
    created = xero_sandbox.create_organisation(name="Demo Company (NZ)")
    return {"name": "Demo Company (NZ)", **created}


def token_requests(xero_sandbox: Any) -> list[dict[str, Any]]:
    """Every request the sandbox received at its token endpoint, in order."""
    return [r for r in xero_sandbox.requests() if r["path"] == "/connect/token"]


def make_connection(
    xero_sandbox: Any,
    app: XeroApp,
    tenant_id: str,
    account_key: str,
    tenant_name: str = "Demo Company (NZ)",
) -> Any:
    """A CONNECTED XeroConnection holding tokens the sandbox issued (no consent page)."""
    import requests

    from xero_integration.models import ConnectionStatus, XeroConnection

    issued = xero_sandbox.issue_tokens(app.client_id, [tenant_id])
    listed = requests.get(
        xero_sandbox.url + "/connections",
        headers={
            "Authorization": f"Bearer {issued['access_token']}",
            "Accept": "application/json",
        },
        timeout=10,
    )
    assert listed.status_code == 200, listed.text
    (xero_connection,) = [c for c in listed.json() if c["tenantId"] == tenant_id]
    now = timezone.now()
    return XeroConnection.objects.create(
        account_key=account_key,
        status=ConnectionStatus.CONNECTED,
        tenant_id=tenant_id,
        tenant_name=tenant_name,
        tenant_type="ORGANISATION",
        connection_id=xero_connection["id"],
        scopes=issued.get("scope", ""),
        access_token=issued["access_token"],
        refresh_token=issued["refresh_token"],
        access_token_expires_at=now + timedelta(seconds=int(issued["expires_in"])),
        tokens_refreshed_at=now,
        connected_at=now,
    )


# The connect flow through the Django test client ------------------------------------------------


@dataclass
class ConnectStart:
    """Where the CRM sent the browser when the user clicked Connect."""

    authorize_url: str
    params: dict[str, str]

    @property
    def state(self) -> str:
        return self.params["state"]


def start_connect(client: Any) -> ConnectStart:
    """Click Connect: the CRM answers with a redirect to the consent page."""
    response = client.post(reverse("xero_integration:connect"))
    assert response.status_code == 302, response.content.decode()[:2000]
    location = response["Location"]
    params = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    return ConnectStart(location, params)


def callback_path(location: str) -> str:
    """The path and query of the sandbox's redirect, for the Django test client."""
    parts = urlsplit(location)
    assert parts.path == reverse("xero_integration:callback"), location
    return f"{parts.path}?{parts.query}"


@pytest.fixture
def connect_through_sandbox() -> Callable[..., Any]:
    """Run Connect → consent (Allow) → callback → attempt page, returning the final response.

    With several ``organisations`` the CRM asks which one to keep; pass ``choose`` to answer.
    """

    def run(
        client: Any,
        organisations: list[str] | None = None,
        choose: str | None = None,
    ) -> Any:
        start = start_connect(client)
        location = consent(start.authorize_url, allow=True, organisations=organisations)
        response = client.get(callback_path(location))
        assert response.status_code == 302, response.content.decode()[:2000]
        response = client.get(response["Location"])
        if choose is not None:
            assert response.status_code == 200, response.content.decode()[:2000]
            attempt = response.context["attempt"]
            (tenant,) = [t for t in attempt.tenants if t["tenant_name"] == choose]
            response = client.post(
                reverse("xero_integration:choose", args=[attempt.pk]),
                {"tenant_id": tenant["tenant_id"]},
            )
            assert response.status_code == 302
            response = client.get(response["Location"])
        return response

    return run


@pytest.fixture
def connected(xero_sandbox, xero_app):
    """A CRM account connected to a sandbox organisation, its default accounts chosen."""
    org = xero_sandbox.create_organisation(name="Demo Company (NZ)")
    from tests.factories import AccountFactory

    account = AccountFactory()
    connection = make_connection(xero_sandbox, xero_app, org["tenant_id"], str(account.pk))
    state = xero_sandbox.organisation_state(org["tenant_id"])
    bank = next(a for a in state["accounts"] if a["Type"] == "BANK")
    connection.payment_account_id = bank["AccountID"]
    connection.revenue_account_code = "200"
    connection.base_currency = "NZD"
    connection.country_code = "NZ"
    connection.save()
    return org["tenant_id"], account, connection


@pytest.fixture
def client_retries_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The wire client's in-call retries (backoff, Retry-After) happen at once: the retry
    logic is the same, the suite stays fast."""
    from xero_integration import connect
    from xero_integration.xero.client import XeroClient

    monkeypatch.setattr(connect, "XeroClient", functools.partial(XeroClient, sleep=lambda s: None))


@pytest.fixture
def no_dispatch(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Saves inside ``with no_dispatch():`` queue jobs without starting them, so that one run
    takes them together as a batch."""
    from xero_integration import taskqueue

    @contextlib.contextmanager
    def held() -> Iterator[None]:
        with monkeypatch.context() as patched:
            patched.setattr(taskqueue, "send", lambda *args, **kwargs: None)
            yield

    return held
