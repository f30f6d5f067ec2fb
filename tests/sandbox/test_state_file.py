"""The sandbox's state file (``--state``) under concurrent writes over HTTP: every write that
was applied is answered (never a 500, nor a replayed 500 for its Idempotency-Key), and the file
ends up holding the latest state, never an older snapshot written last."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from xero_integration.sandbox import BackgroundSandbox, Sandbox

WRITERS = 8
WRITES_EACH = 12
CLIENT_ID = "state-file-app"


class Served:
    """A sandbox persisting to a state file, with one organisation and an app's token."""

    def __init__(self, state_file: Path) -> None:
        self.background = BackgroundSandbox(state_file=state_file)
        self.url = self.background.url
        self.tenant_id = self._control(
            "organisations",
            {"name": "Kept Ltd", "country_code": "NZ", "base_currency": "NZD"},
        )["tenant_id"]
        self._control(
            "apps",
            {"client_id": CLIENT_ID, "client_secret": "s", "redirect_uris": ["http://x/cb/"]},
        )
        self.token = self._control(
            "tokens",
            {
                "client_id": CLIENT_ID,
                "tenant_ids": [self.tenant_id],
                "scope": "accounting.contacts",
            },
        )["access_token"]
        # Every writer at once, well inside the limits: this is about the file, not the limits.
        self._control(
            "limits",
            {"tenant_id": self.tenant_id, "per_minute": 10_000, "concurrent": WRITERS * 2},
        )

    def _control(self, path: str, body: dict) -> dict:
        response = requests.post(f"{self.url}/_sandbox/{path}", json=body, timeout=30)
        assert response.status_code < 400, response.text
        return response.json()

    def put_contact(self, name: str, key: str) -> requests.Response:
        return requests.put(
            f"{self.url}/api.xro/2.0/Contacts",
            json={"Contacts": [{"Name": name}]},
            headers={
                "Authorization": f"Bearer {self.token}",
                "xero-tenant-id": self.tenant_id,
                "Accept": "application/json",
                "Idempotency-Key": key,
            },
            timeout=30,
        )

    def stop(self) -> None:
        self.background.stop()


@pytest.fixture
def served(tmp_path) -> Iterator[Served]:
    sandbox = Served(tmp_path / "sandbox-state.json")
    yield sandbox
    sandbox.stop()


def kept_contact_names(state_file: Path, tenant_id: str) -> set[str]:
    """What a sandbox restarted from the file knows."""
    restarted = Sandbox(state_file=state_file)
    return {c["Name"] for c in restarted.organisations[tenant_id].contacts.values()}


def test_concurrent_writers_are_all_answered_and_the_file_keeps_every_write(served: Served):
    answers: list[tuple[str, str, requests.Response]] = []
    start = threading.Barrier(WRITERS)

    def write(writer: int) -> None:
        start.wait()
        for n in range(WRITES_EACH):
            name, key = f"Writer {writer} contact {n}", f"writer-{writer}-{n}"
            answers.append((name, key, served.put_contact(name, key)))

    threads = [threading.Thread(target=write, args=(w,)) for w in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert len(answers) == WRITERS * WRITES_EACH
    refused = [(key, r.status_code, r.text[:200]) for _, key, r in answers if r.status_code != 200]
    assert refused == []
    replayed = {key: served.put_contact(name, key) for name, key, _ in answers[: WRITES_EACH * 2]}
    for _, key, first in answers[: WRITES_EACH * 2]:
        assert replayed[key].status_code == 200, replayed[key].text
        assert replayed[key].json()["Contacts"] == first.json()["Contacts"]
    assert kept_contact_names(served.background.sandbox.state_file, served.tenant_id) == {
        name for name, _, _ in answers
    }


def test_a_write_is_answered_even_when_the_state_file_cannot_be_written(tmp_path):
    unwritable = tmp_path / "state-file-that-is-a-directory"
    unwritable.mkdir()
    served = Served(unwritable)
    try:
        first = served.put_contact("Still Saved Ltd", "only-key")
        replay = served.put_contact("Still Saved Ltd", "only-key")
    finally:
        served.stop()

    assert first.status_code == 200, first.text
    assert replay.status_code == 200, replay.text
    assert replay.json()["Contacts"] == first.json()["Contacts"]
    organisation = served.background.sandbox.organisations[served.tenant_id]
    assert [c["Name"] for c in organisation.contacts.values()] == ["Still Saved Ltd"]


def test_an_emulator_fault_is_not_replayed_for_its_idempotency_key(served: Served, monkeypatch):
    accounting = served.background.sandbox.accounting
    answer = accounting.handle
    calls: list[str] = []

    def fails_once(request, organisation):
        calls.append(request.path)
        if len(calls) == 1:
            raise RuntimeError("a fault of the emulator itself")
        return answer(request, organisation)

    monkeypatch.setattr(accounting, "handle", fails_once)

    first = served.put_contact("Retried Ltd", "retried-key")
    retry = served.put_contact("Retried Ltd", "retried-key")

    assert first.status_code == 500
    assert retry.status_code == 200, retry.text
    assert retry.json()["Contacts"][0]["Name"] == "Retried Ltd"
