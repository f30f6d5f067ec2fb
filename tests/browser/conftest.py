"""Fixtures of the browser tests: Chromium through Playwright, and the CRM on a live server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.support import CHROMIUM

CLIENT_ID = "crm-test-browser"
CLIENT_SECRET = "crm-test-browser-secret-0123456789"


@pytest.fixture
def browser_page(monkeypatch) -> Iterator[Any]:
    """A fresh Chromium page; Playwright's event loop must not stop Django's ORM in this thread."""
    sync_api = pytest.importorskip("playwright.sync_api")
    # Playwright's sync API runs an event loop in this thread, which Django would otherwise take
    # for async code and refuse ORM calls from the test body.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.set_default_timeout(15_000)
        try:
            yield page
        finally:
            context.close()
            browser.close()


@pytest.fixture
def failed_tasks() -> Iterator[list[dict[str, Any]]]:
    """django-q stores a crashed task as failed instead of raising: collect them to report."""
    from django_q.signals import post_execute

    failures: list[dict[str, Any]] = []

    def record(sender: Any, task: dict[str, Any], **kwargs: Any) -> None:
        if not task.get("success"):
            failures.append(task)

    post_execute.connect(record, weak=False, dispatch_uid="browser-task-failures")
    try:
        yield failures
    finally:
        post_execute.disconnect(dispatch_uid="browser-task-failures")


@pytest.fixture
def crm_on_live_server(live_server, settings, xero_sandbox, monkeypatch, failed_tasks) -> str:
    """The CRM on the live server, with a Xero web app registered for its callback URL."""
    from django_q.conf import Conf

    redirect_uri = live_server.url + "/integrations/xero/callback/"
    xero_sandbox.register_app(CLIENT_ID, client_secret=CLIENT_SECRET, redirect_uris=[redirect_uri])
    settings.XERO_CLIENT_ID = CLIENT_ID
    settings.XERO_CLIENT_SECRET = CLIENT_SECRET
    settings.XERO_LOGIN_URL = xero_sandbox.url
    settings.XERO_IDENTITY_URL = xero_sandbox.url
    settings.XERO_API_URL = xero_sandbox.url
    settings.XERO_REDIRECT_URI = redirect_uri
    # Tasks run inline in the live server's thread, as a worker would run them at once.
    monkeypatch.setattr(Conf, "SYNC", True)
    return live_server.url
