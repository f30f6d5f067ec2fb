"""Webhooks as Xero sends them (Xero's API documentation), and the sandbox's state file."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from xero_integration.sandbox import Sandbox
from xero_integration.sandbox.messages import Headers, Request

KEY = "webhook-signing-key-0123456789"


class Receiver:
    """A webhook endpoint: verifies the signature over the raw body, as an app must."""

    def __init__(self, honest: bool = True) -> None:
        self.honest = honest
        self.events: list[dict] = []
        self.payloads: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers["Content-Length"]))
                expected = base64.b64encode(
                    hmac.new(KEY.encode(), body, hashlib.sha256).digest()
                ).decode()
                signed = hmac.compare_digest(expected, self.headers.get("x-xero-signature", ""))
                payload = json.loads(body)
                receiver.payloads.append(payload)
                if signed or not receiver.honest:
                    receiver.events.extend(payload["events"])
                    self.send_response(200)
                else:
                    self.send_response(401)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhooks/xero/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while len(self.events) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.events

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    endpoint = Receiver()
    yield endpoint
    endpoint.close()


@pytest.fixture
def org_and_token(xero_sandbox):
    org = xero_sandbox.create_organisation(name="Hooks Ltd")
    xero_sandbox.register_app("hooks-app", "hooks-secret")
    token = xero_sandbox.issue_tokens("hooks-app", [org["tenant_id"]])["access_token"]
    return org["tenant_id"], token


def test_intent_to_receive_passes_for_an_endpoint_that_checks_signatures(xero_sandbox, receiver):
    answer = xero_sandbox.register_webhook(receiver.url, KEY)
    assert answer["status"] == "OK", answer
    intent = receiver.payloads
    assert len(intent) == 4 and all(p["events"] == [] for p in intent)
    assert {p["firstEventSequence"] for p in intent} == {0}


def test_intent_to_receive_fails_for_an_endpoint_that_accepts_bad_signatures(xero_sandbox):
    careless = Receiver(honest=False)
    try:
        answer = xero_sandbox.register_webhook(careless.url, KEY)
    finally:
        careless.close()
    assert answer["status"] == "FAILED"
    assert any("incorrectly signed" in problem for problem in answer["problems"])


def test_signed_contact_and_invoice_events_follow_changes(xero_sandbox, receiver, org_and_token):
    tenant_id, token = org_and_token
    assert xero_sandbox.register_webhook(receiver.url, KEY)["status"] == "OK"
    created = xero_sandbox.api(
        "PUT", "/Contacts", tenant_id, token, json={"Contacts": [{"Name": "Hook Customer"}]}
    )
    contact_id = created.json()["Contacts"][0]["ContactID"]
    invoice = xero_sandbox.api(
        "PUT",
        "/Invoices",
        tenant_id,
        token,
        json={
            "Invoices": [
                {
                    "Type": "ACCREC",
                    "Contact": {"ContactID": contact_id},
                    "LineItems": [{"Description": "Work", "Quantity": 1, "UnitAmount": 10}],
                }
            ]
        },
    )
    assert invoice.status_code == 200, invoice.text
    events = receiver.wait_for(2)
    kinds = {(e["eventCategory"], e["eventType"]) for e in events}
    assert ("CONTACT", "CREATE") in kinds and ("INVOICE", "CREATE") in kinds
    contact_event = next(e for e in events if e["eventCategory"] == "CONTACT")
    assert contact_event["resourceId"] == contact_id
    assert contact_event["tenantId"] == tenant_id
    assert contact_event["tenantType"] == "ORGANISATION"
    assert contact_event["resourceUrl"].endswith(f"/api.xro/2.0/Contacts/{contact_id}")
    delivered = [p for p in receiver.payloads if p["events"]]
    assert delivered[0]["firstEventSequence"] == 1
    assert all(p["lastEventSequence"] >= p["firstEventSequence"] for p in delivered)


def _control(sandbox: Sandbox, method: str, path: str, body: dict | None = None) -> dict:
    response = sandbox.handle(
        Request(
            method=method,
            path=f"/_sandbox/{path}",
            headers=Headers({"Content-Type": "application/json"}),
            body=json.dumps(body).encode() if body is not None else b"",
        )
    )
    return json.loads(response.body)


def test_the_state_file_keeps_organisations_apps_and_grants_across_restarts(tmp_path):
    state = tmp_path / "sandbox-state.json"
    first = Sandbox(state_file=state)
    org = _control(
        first,
        "POST",
        "organisations",
        {"name": "Kept Ltd", "country_code": "NZ", "base_currency": "NZD", "contacts": 3},
    )
    _control(first, "POST", "apps", {"client_id": "kept", "redirect_uris": ["http://x/cb/"]})
    first.save()
    second = Sandbox(state_file=state)
    kept = _control(second, "GET", f"organisations/{org['tenant_id']}")
    assert kept["organisation"]["Name"] == "Kept Ltd"
    assert len(kept["contacts"]) == 3
    assert "kept" in second.apps


def test_without_a_state_file_nothing_is_kept(tmp_path):
    first = Sandbox()
    _control(
        first,
        "POST",
        "organisations",
        {"name": "Gone Ltd", "country_code": "NZ", "base_currency": "NZD"},
    )
    assert Sandbox().organisations == {}
