"""Lines edited on their own, and invoices changed without a save the app sees, reach Xero
through the same outbox as invoice saves: one change per invoice and transaction, one run per
account."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.db import connection as db_connection
from django.db import transaction
from django.test.utils import CaptureQueriesContext

import xero_integration
from crm_demo.crm.models import Invoice, InvoiceLine
from tests.factories import InvoiceLineFactory
from tests.integration.invoicing import assert_done, job_of, make_invoice, money, xero_invoice
from xero_integration import taskqueue
from xero_integration.models import SyncJob

pytestmark = pytest.mark.django_db(transaction=True)


def job_writes(queries: CaptureQueriesContext) -> list[str]:
    """The statements that recorded an invoice's change (``SyncJob.objects.record_change``)."""
    table = SyncJob._meta.db_table
    return [
        q["sql"] for q in queries.captured_queries if q["sql"].startswith(f"\nINSERT INTO {table}")
    ]


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, tuple[Any, ...]]]:
    """The tasks handed to the broker, which still run them (inline in these tests)."""
    sent: list[tuple[str, tuple[Any, ...]]] = []
    send = taskqueue.send

    def counting(path: str, *args: Any, **kwargs: Any) -> None:
        sent.append((path, args))
        send(path, *args, **kwargs)

    monkeypatch.setattr(taskqueue, "send", counting)
    return sent


def test_a_line_edited_on_its_own_reaches_xero(xero_sandbox, connected) -> None:
    tenant_id, account, _ = connected
    invoice = make_invoice(account, [{"item_name": "", "description": "Espresso machine service"}])
    assert_done(invoice)
    line = invoice.lines.get()

    line.description = "Espresso machine service and descaling"
    line.save()  # the invoice itself is not saved

    sent = xero_invoice(xero_sandbox, tenant_id, invoice.number)
    assert [item["Description"] for item in sent["LineItems"]] == [
        "Espresso machine service and descaling"
    ]
    assert job_of(invoice).state == SyncJob.State.DONE


def test_a_line_added_or_deleted_on_its_own_reaches_xero(xero_sandbox, connected) -> None:
    tenant_id, account, _ = connected
    invoice = make_invoice(
        account, [{"item_name": "", "description": "Service", "unit_price": Decimal("100")}]
    )
    extra = InvoiceLineFactory(
        invoice=invoice, position=1, item_name="", description="Parts", unit_price=Decimal("40")
    )
    sent = xero_invoice(xero_sandbox, tenant_id, invoice.number)
    assert [item["Description"] for item in sent["LineItems"]] == ["Service", "Parts"]

    extra.delete()
    sent = xero_invoice(xero_sandbox, tenant_id, invoice.number)
    assert [item["Description"] for item in sent["LineItems"]] == ["Service"]


def test_saves_of_an_invoice_and_its_lines_in_one_transaction_are_one_change_and_one_run(
    connected, runs
) -> None:
    _, account, _ = connected
    invoice = make_invoice(account, [{}, {}, {}])
    runs.clear()
    with CaptureQueriesContext(db_connection) as queries, transaction.atomic():
        for line in invoice.lines.all():
            line.quantity += 1
            line.save()
        invoice.recalculate()
    assert len(job_writes(queries)) == 1
    assert [path for path, _ in runs].count("xero_integration.invoices.run_batch") == 1
    assert_done(invoice)


def test_a_change_rolled_back_with_its_savepoint_is_recorded_again(connected) -> None:
    _, account, _ = connected
    invoice = make_invoice(account)
    line = invoice.lines.get()
    with CaptureQueriesContext(db_connection) as queries, transaction.atomic():
        try:
            with transaction.atomic():
                line.description = "Not kept"
                line.save()
                raise RuntimeError("the form was invalid")
        except RuntimeError:
            pass
        line.description = "Kept"
        line.save()
    assert len(job_writes(queries)) == 2
    assert job_of(invoice).change_seq >= 2


def test_deleting_an_invoice_with_its_lines_records_the_delete_alone(
    xero_sandbox, connected
) -> None:
    tenant_id, account, _ = connected
    invoice = make_invoice(account, [{}, {}], status=Invoice.Status.DRAFT)
    number, pk = invoice.number, invoice.pk
    with CaptureQueriesContext(db_connection) as queries:
        invoice.delete()
    assert len(job_writes(queries)) == 1
    assert not InvoiceLine.objects.filter(invoice_id=pk).exists()
    job = SyncJob.objects.get(host_model="crm.invoice", host_id=str(pk))
    assert job.deleted and job.state == SyncJob.State.DONE, job.error
    statuses = {
        i["InvoiceNumber"]: i["Status"]
        for i in xero_sandbox.organisation_state(tenant_id)["invoices"]
    }
    assert statuses[number] == "DELETED"


def test_enqueue_sends_invoices_changed_by_a_bulk_update(xero_sandbox, connected, runs) -> None:
    tenant_id, account, _ = connected
    first = make_invoice(account, [{"unit_price": Decimal("100")}])
    second = make_invoice(account, [{"unit_price": Decimal("200")}])
    runs.clear()

    Invoice.objects.filter(pk__in=[first.pk, second.pk]).update(reference="PO-2026-77")
    assert xero_invoice(xero_sandbox, tenant_id, first.number).get("Reference", "") == ""

    assert xero_integration.enqueue(first, second) == 2
    for invoice in (first, second):
        assert xero_invoice(xero_sandbox, tenant_id, invoice.number)["Reference"] == "PO-2026-77"
    # Both in one run of the account.
    assert [path for path, _ in runs].count("xero_integration.invoices.run_batch") == 1


def test_enqueue_after_lines_were_bulk_created(xero_sandbox, connected) -> None:
    tenant_id, account, _ = connected
    invoice = make_invoice(account, [{"unit_price": Decimal("100")}])
    InvoiceLine.objects.bulk_create(
        [InvoiceLine(invoice=invoice, position=1, description="Freight", unit_price=Decimal("15"))]
    )
    invoice.recalculate(save=False)
    Invoice.objects.filter(pk=invoice.pk).update(total=invoice.total)

    xero_integration.enqueue(invoice)

    sent = xero_invoice(xero_sandbox, tenant_id, invoice.number)
    assert money(sent["Total"]) == invoice.total
    assert [item["Description"] for item in sent["LineItems"]][-1] == "Freight"


def test_enqueue_refuses_what_is_not_an_invoice(connected) -> None:
    _, account, _ = connected
    invoice = make_invoice(account)
    with pytest.raises(TypeError, match="invoice_models"):
        xero_integration.enqueue(invoice.lines.get())


def test_enqueue_for_an_account_that_never_connected_records_nothing(db) -> None:
    from tests.factories import AccountFactory

    invoice = make_invoice(AccountFactory())
    assert xero_integration.enqueue(invoice) == 0
    assert not SyncJob.objects.exists()


def test_enqueue_of_an_invoice_deleted_in_sql_removes_it_from_xero(xero_sandbox, connected) -> None:
    tenant_id, account, _ = connected
    invoice = make_invoice(account, status=Invoice.Status.DRAFT)
    assert_done(invoice)
    InvoiceLine.objects.filter(invoice=invoice)._raw_delete("default")
    Invoice.objects.filter(pk=invoice.pk)._raw_delete("default")  # no signal

    xero_integration.enqueue(invoice)

    statuses = {
        i["InvoiceNumber"]: i["Status"]
        for i in xero_sandbox.organisation_state(tenant_id)["invoices"]
    }
    assert statuses[invoice.number] == "DELETED"
