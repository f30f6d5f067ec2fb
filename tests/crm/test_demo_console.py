"""The demo's console: Xero's Intent to Receive check (deliberately mis-signed webhook calls,
refused with 401) leaves no "Unauthorized" line, and other warnings still show."""

from __future__ import annotations

import io
import logging
import logging.config

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse


@pytest.fixture
def console() -> io.StringIO:
    """The demo's logging configuration, writing to a buffer instead of stderr."""
    buffer = io.StringIO()
    config = {**settings.LOGGING, "handlers": {}}
    for name, handler in settings.LOGGING["handlers"].items():
        config["handlers"][name] = {**handler, "stream": buffer}
    logging.config.dictConfig(config)
    try:
        yield buffer
    finally:
        logging.config.dictConfig(settings.LOGGING)


@pytest.mark.django_db
def test_intent_to_receive_refusals_stay_out_of_the_console(console, settings) -> None:
    settings.XERO_WEBHOOK_KEY = "demo-webhook-key"
    response = Client().post(
        reverse("xero_integration:webhook"),
        data=b'{"events":[]}',
        content_type="application/json",
        headers={"x-xero-signature": "not-the-signature"},
    )
    assert response.status_code == 401
    logging.getLogger("django.server").warning(
        '"%s" %s %s',
        "POST /integrations/xero/webhooks/ HTTP/1.1",
        "401",
        "0",
        extra={"status_code": 401, "server_time": "now"},
    )
    assert "Unauthorized" not in console.getvalue()
    assert "/integrations/xero/webhooks/" not in console.getvalue()

    Client().get("/no-such-page/")
    assert "Not Found: /no-such-page/" in console.getvalue()
    assert console.getvalue().count("Not Found: /no-such-page/") == 1  # once, not twice


def test_the_demo_start_says_how_to_open_admin_and_what_intent_to_receive_is() -> None:
    from crm_demo import demo

    text = demo.banner(webhooks=True)
    assert "http://127.0.0.1:8000/admin/" in text
    assert "Intent to Receive" in text and "401" in text
    assert "Intent to Receive" not in demo.banner(webhooks=False)
