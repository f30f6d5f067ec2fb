"""The host hears what happened through the app's signals, each with what it needs to act."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tests.integration.invoicing import link_of, make_invoice
from xero_integration import connect, contacts, signals
from xero_integration.models import ConnectionStatus, SyncJob

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("client_retries_at_once"),
]


@pytest.fixture
def heard() -> Any:
    """What each of the app's host signals said, in order."""
    said: dict[str, list[dict[str, Any]]] = {}
    receivers = []
    for name in (
        "invoice_synced",
        "invoice_sync_failed",
        "contacts_imported",
        "connection_changed",
    ):

        def receive(sender: Any, name: str = name, **kwargs: Any) -> None:
            kwargs.pop("signal", None)
            said.setdefault(name, []).append(kwargs)

        getattr(signals, name).connect(receive, weak=False, dispatch_uid=f"test-{name}")
        receivers.append(name)
    yield said
    for name in receivers:
        getattr(signals, name).disconnect(dispatch_uid=f"test-{name}")


def test_a_synced_invoice_and_a_refused_one_are_told(xero_sandbox, connected, heard):
    _, account, _ = connected
    sent = make_invoice(account, [{"unit_price": Decimal("10")}])
    refused = make_invoice(account, [{"unit_price": Decimal("10"), "discount_percent": 150}])

    (synced,) = [s for s in heard["invoice_synced"] if s["host_id"] == str(sent.pk)]
    assert synced == {
        "account_key": str(account.pk),
        "host_model": "crm.invoice",
        "host_id": str(sent.pk),
        "xero_invoice_id": link_of(sent).xero_invoice_id,
    }
    (failed,) = heard["invoice_sync_failed"]
    assert failed["host_id"] == str(refused.pk)
    assert failed["reason"] == SyncJob.Reason.NEEDS_FIX and "150.00%" in failed["message"]


def test_an_import_and_a_disconnect_are_told(xero_sandbox, connected, heard):
    tenant_id, _, connection = connected
    xero_sandbox.edit_contacts(tenant_id, [{"Name": "Heard Ltd"}])
    contacts.run_import(contacts.start_import(connection).pk)
    (imported,) = heard["contacts_imported"]
    assert imported["connection"].pk == connection.pk and imported["imported"] >= 1

    connect.disconnect(connection)
    (changed,) = heard["connection_changed"]
    assert changed["previous"] == ConnectionStatus.CONNECTED
    assert changed["connection"].status == ConnectionStatus.DISCONNECTED
