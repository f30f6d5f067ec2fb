"""Webhooks as Xero sends them: Intent to Receive when a URL is registered,
then signed CONTACT and INVOICE events, delivered in batches from a background thread with
retries."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import queue
import secrets
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import requests

if TYPE_CHECKING:
    from .core import Sandbox
    from .state import Organisation

log = logging.getLogger(__name__)
DELIVERY_TIMEOUT = 5.0
MAX_ATTEMPTS = 5


def signature(key: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest()).decode()


@dataclass
class Subscription:
    url: str
    key: str
    status: str = "PENDING"
    sequence: int = 0
    delivered: int = 0
    failures: list[str] = field(default_factory=list)


class Webhooks:
    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.subscriptions: list[Subscription] = []
        self.queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self.subscriptions = []

    def register(self, url: str, key: str) -> dict:
        """Run Intent to Receive against ``url``; from then on deliver events to it."""
        subscription = Subscription(url=url, key=key)
        problems = self._intent_to_receive(subscription)
        subscription.status = "OK" if not problems else "FAILED"
        subscription.failures = problems
        if not problems:
            with self._lock:
                self.subscriptions = [s for s in self.subscriptions if s.url != url]
                self.subscriptions.append(subscription)
            self._start()
        return {"url": url, "status": subscription.status, "problems": problems}

    def _intent_to_receive(self, subscription: Subscription) -> list[str]:
        problems = []
        for correct in (True, False, True, False):
            body = json.dumps(
                {
                    "events": [],
                    "firstEventSequence": 0,
                    "lastEventSequence": 0,
                    "entropy": secrets.token_urlsafe(16),
                }
            ).encode()
            signed = signature(subscription.key if correct else secrets.token_hex(16), body)
            try:
                response = requests.post(
                    subscription.url,
                    data=body,
                    headers={"Content-Type": "application/json", "x-xero-signature": signed},
                    timeout=DELIVERY_TIMEOUT,
                )
            except requests.RequestException as exc:
                problems.append(f"Could not reach {subscription.url}: {exc.__class__.__name__}")
                break
            expected = 200 if correct else 401
            if response.status_code != expected:
                kind = "correctly" if correct else "incorrectly"
                problems.append(
                    f"A {kind} signed payload got {response.status_code}, expected {expected}."
                )
            elif correct and (response.content or response.headers.get("Set-Cookie")):
                problems.append("The answer to a webhook must have no body and no cookies.")
        return problems

    def emit(self, organisation: Organisation, category: str, resource_id: str, kind: str) -> None:
        if not self.subscriptions:
            return
        path = "Contacts" if category == "CONTACT" else "Invoices"
        now = self.sandbox.clock.now()
        self.queue.put(
            {
                "resourceUrl": f"{self.sandbox.base_url}/api.xro/2.0/{path}/{resource_id}",
                "resourceId": resource_id,
                "eventDateUtc": now.strftime("%Y-%m-%dT%H:%M:%S.")
                + f"{now.microsecond // 1000:03d}",
                "eventType": kind,
                "eventCategory": category,
                "tenantId": organisation.tenant_id,
                "tenantType": "ORGANISATION",
            }
        )

    def _start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="sandbox-webhooks", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self.sandbox.stopping.is_set():
            try:
                first = self.queue.get(timeout=0.2)
            except queue.Empty:
                continue
            events = [first]
            while len(events) < 100:
                try:
                    events.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            with self._lock:
                targets = [s for s in self.subscriptions if s.status == "OK"]
            for subscription in targets:
                self._deliver(subscription, events)

    def _deliver(self, subscription: Subscription, events: list[dict]) -> None:
        first = subscription.sequence + 1
        subscription.sequence += len(events)
        body = json.dumps(
            {
                "events": events,
                "firstEventSequence": first,
                "lastEventSequence": subscription.sequence,
                "entropy": secrets.token_urlsafe(16),
            }
        ).encode()
        headers = {
            "Content-Type": "application/json",
            "x-xero-signature": signature(subscription.key, body),
        }
        delay = 0.5
        for _ in range(MAX_ATTEMPTS):
            try:
                response = requests.post(
                    subscription.url, data=body, headers=headers, timeout=DELIVERY_TIMEOUT
                )
                if response.status_code == 200:
                    subscription.delivered += len(events)
                    return
                problem = f"HTTP {response.status_code}"
            except requests.RequestException as exc:
                problem = exc.__class__.__name__
            subscription.failures.append(problem)
            if self.sandbox.stopping.wait(delay):
                return
            delay *= 2
        subscription.status = "DISABLED"
        log.warning(
            "Webhook %s disabled after %d failed deliveries", subscription.url, MAX_ATTEMPTS
        )

    def describe(self) -> list[dict]:
        return [
            {
                "url": s.url,
                "status": s.status,
                "delivered": s.delivered,
                "last_sequence": s.sequence,
                "failures": s.failures[-5:],
            }
            for s in self.subscriptions
        ]
