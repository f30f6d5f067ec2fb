"""Xero's webhooks into the CRM: signatures checked, Intent to Receive passed, contact changes
written into the CRM without waiting for the schedule."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest
from django.urls import reverse

from crm_demo.crm.models import Contact
from tests.integration.conftest import make_connection
from xero_integration import contacts, webhooks
from xero_integration.models import ContactLink, WebhookEvent

pytestmark = pytest.mark.django_db(transaction=True)

KEY = "crm-webhook-signing-key-0123456789abcdef"


def signed(body: bytes, key: str = KEY) -> str:
    return base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest()).decode()


def event(tenant_id: str, resource_id: str, category: str = "CONTACT") -> dict:
    return {
        "resourceUrl": f"https://api.xero.com/api.xro/2.0/Contacts/{resource_id}",
        "resourceId": resource_id,
        "eventDateUtc": "2026-11-26T01:15:39.902",
        "eventType": "UPDATE",
        "eventCategory": category,
        "tenantId": tenant_id,
        "tenantType": "ORGANISATION",
    }


def post(client, body: bytes, signature: str):
    return client.post(
        reverse("xero_integration:webhook"),
        data=body,
        content_type="application/json",
        HTTP_X_XERO_SIGNATURE=signature,
    )


@pytest.fixture
def webhook_key(settings):
    settings.XERO_WEBHOOK_KEY = KEY


def test_a_correctly_signed_payload_gets_an_empty_200_without_cookies(client, webhook_key):
    body = json.dumps({"events": [], "firstEventSequence": 0, "lastEventSequence": 0}).encode()
    response = post(client, body, signed(body))
    assert response.status_code == 200
    assert response.content == b""
    assert not response.cookies


def test_a_wrongly_signed_payload_gets_401_and_is_not_kept(client, webhook_key):
    body = json.dumps({"events": [event("t", "c")]}).encode()
    assert post(client, body, signed(body, "another key")).status_code == 401
    assert post(client, body, "").status_code == 401
    assert not WebhookEvent.objects.exists()


def test_without_a_signing_key_every_payload_is_refused(client, settings):
    settings.XERO_WEBHOOK_KEY = ""
    body = b'{"events": []}'
    assert post(client, body, signed(body, "")).status_code == 401


def test_a_repeated_event_is_kept_once(client, webhook_key, settings):
    body = json.dumps({"events": [event("unknown-tenant", "c1")]}).encode()
    assert post(client, body, signed(body)).status_code == 200
    assert post(client, body, signed(body)).status_code == 200
    assert WebhookEvent.objects.count() == 1
    # Not an organisation connected here: the event is set aside, nothing is called.
    assert WebhookEvent.objects.get().processed_at is not None


def test_contact_changes_in_xero_reach_the_crm_through_the_webhook(
    xero_sandbox, xero_app, live_server, owner, settings
):
    settings.XERO_WEBHOOK_KEY = KEY
    org = xero_sandbox.create_organisation(name="Hooked Ltd", contacts=3)
    connection = make_connection(xero_sandbox, xero_app, org["tenant_id"], str(owner.account_id))
    contacts.start_import(connection)
    assert Contact.objects.filter(account=owner.account).count() == 3
    url = live_server.url + reverse("xero_integration:webhook")
    registered = xero_sandbox.register_webhook(url, KEY)
    assert registered["status"] == "OK", registered
    made = xero_sandbox.edit_contacts(
        org["tenant_id"], [{"Name": "Arrived By Webhook", "EmailAddress": "hook@example.com"}]
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if Contact.objects.filter(account=owner.account, name="Arrived By Webhook").exists():
            break
        time.sleep(0.2)
    contact = Contact.objects.get(account=owner.account, name="Arrived By Webhook")
    assert contact.email == "hook@example.com"
    assert ContactLink.objects.get(xero_contact_id=made[0]).host_id == str(contact.pk)
    calls = [r for r in xero_sandbox.requests(org["tenant_id"]) if "IDs=" in r["query"]]
    assert len(calls) == 1  # only the changed contact was read


def test_a_non_ascii_signature_gets_401_not_a_server_error(client, webhook_key):
    body = json.dumps({"events": [event("t", "c")]}).encode()
    assert post(client, body, "sïgnature-é").status_code == 401
    assert not WebhookEvent.objects.exists()


@pytest.mark.parametrize(
    "body",
    [
        b'{"events": 5}',
        b'{"events": "CONTACT"}',
        b'{"events": {"eventCategory": "CONTACT"}}',
        b'{"events": [5, "x", null]}',
        b"[1, 2]",
        b"null",
        b"\xff\xfe not json",
    ],
)
def test_a_signed_payload_of_the_wrong_shape_is_answered_and_ignored(client, webhook_key, body):
    # Xero disables a webhook that keeps failing; a payload we cannot use is acknowledged.
    response = post(client, body, signed(body))
    assert response.status_code == 200
    assert not WebhookEvent.objects.exists()


def test_xero_reaches_the_webhook_when_the_host_requires_sign_in_everywhere(
    client, webhook_key, settings
):
    settings.MIDDLEWARE = [
        *settings.MIDDLEWARE,
        "django.contrib.auth.middleware.LoginRequiredMiddleware",
    ]
    body = json.dumps({"events": [event("unknown-tenant", "c1")]}).encode()
    response = post(client, body, signed(body))
    assert response.status_code == 200
    assert WebhookEvent.objects.count() == 1
    # The rest of the integration still asks for sign-in.
    assert client.get(reverse("xero_integration:settings")).status_code == 302


def test_events_that_keep_failing_keep_their_error_and_are_given_up_visibly(
    xero_sandbox, xero_app, owner, client, webhook_key, admin_client, caplog, client_retries_at_once
):
    org = xero_sandbox.create_organisation(name="Failing Ltd")
    make_connection(xero_sandbox, xero_app, org["tenant_id"], str(owner.account_id))
    xero_sandbox.add_fault("GET", "/api.xro/2.0/Contacts*", "500", count=1000)
    body = json.dumps({"events": [event(org["tenant_id"], "c-1")]}).encode()
    with caplog.at_level("WARNING", logger="xero_integration.webhooks"):
        assert post(client, body, signed(body)).status_code == 200

    kept = WebhookEvent.objects.get()
    assert kept.processed_at is None and kept.attempts == 1 and "500" in kept.error
    assert any(r.levelname == "WARNING" for r in caplog.records)
    for _ in range(WebhookEvent.MAX_ATTEMPTS - 1):
        webhooks.process()
    kept.refresh_from_db()
    assert kept.given_up_at is not None and kept.attempts == WebhookEvent.MAX_ATTEMPTS
    webhooks.process()  # given up: not tried again
    assert WebhookEvent.objects.get().attempts == WebhookEvent.MAX_ATTEMPTS

    page = admin_client.get(
        reverse("admin:xero_integration_webhookevent_changelist"), {"state": "given_up"}
    )
    assert page.status_code == 200 and "c-1" in page.content.decode()
