"""Fixtures for the integration's Django side, talking to the sandbox over real HTTP."""

from __future__ import annotations

import pytest
from django_q.conf import Conf

WEB_CLIENT_ID = "crm-test-web"
WEB_CLIENT_SECRET = "crm-test-web-secret"
PKCE_CLIENT_ID = "crm-test-pkce"
CALLBACK = "http://testserver/integrations/xero/callback/"


@pytest.fixture
def xero_app(xero_sandbox, settings):
    """The sandbox with a registered web app, and the settings pointing the integration at it."""
    xero_sandbox.register_app(WEB_CLIENT_ID, WEB_CLIENT_SECRET, [CALLBACK])
    settings.XERO_CLIENT_ID = WEB_CLIENT_ID
    settings.XERO_CLIENT_SECRET = WEB_CLIENT_SECRET
    settings.XERO_LOGIN_URL = xero_sandbox.url
    settings.XERO_IDENTITY_URL = xero_sandbox.url
    settings.XERO_API_URL = xero_sandbox.url
    settings.XERO_REQUEST_TIMEOUT = 10
    return xero_sandbox


@pytest.fixture
def xero_pkce_app(xero_sandbox, settings):
    """The sandbox with a registered PKCE app (no client secret)."""
    xero_sandbox.register_app(PKCE_CLIENT_ID, None, [CALLBACK])
    settings.XERO_CLIENT_ID = PKCE_CLIENT_ID
    settings.XERO_CLIENT_SECRET = ""
    settings.XERO_LOGIN_URL = xero_sandbox.url
    settings.XERO_IDENTITY_URL = xero_sandbox.url
    settings.XERO_API_URL = xero_sandbox.url
    settings.XERO_REQUEST_TIMEOUT = 10
    return xero_sandbox


@pytest.fixture(autouse=True)
def run_tasks_inline(monkeypatch):
    """Queued tasks run in the test's process as soon as they are dispatched."""
    monkeypatch.setattr(Conf, "SYNC", True)
