"""Xero is the other ledger: the CRM is not its only writer. Every cached Xero fact belongs to
one organisation, the integration only changes what it wrote, and what people do in Xero comes
back to the CRM. Each test checks the sandbox's state and the CRM's afterwards."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from crm_demo.crm.models import Invoice, Membership, Payment
from tests.factories import ContactFactory, MembershipFactory, tax_with
from tests.integration.conftest import WEB_CLIENT_ID
from tests.integration.invoicing import (
    API,
    XeroUser,
    assert_done,
    job_of,
    link_of,
    live_payments,
    make_invoice,
    money,
    pay,
    rerun,
    void,
    xero_invoice,
)
from xero_integration import backfill, outbox, readback
from xero_integration.models import (
    InvoiceLink,
    PaymentLink,
    SyncJob,
    TaxRateMapping,
    XeroConnection,
)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("client_retries_at_once"),
]

WEBHOOK_KEY = "crm-webhook-signing-key-0123456789abcdef"


@pytest.fixture
def owner_client_of_connected(connected, client_factory) -> Any:
    """Signed in as an owner of the connected CRM account."""
    _, account, _ = connected
    return client_factory(MembershipFactory(account=account, role=Membership.Role.OWNER).user)


def connect_to(client: Any, connect_through_sandbox: Any, sandbox: Any, name: str) -> None:
    """Connect (or reconnect) the signed-in owner's account to the organisation ``name`` on
    Xero's consent screen, and choose its default accounts if it asks for them."""
    response = connect_through_sandbox(client, organisations=[name])
    assert response.status_code == 302, response.content.decode()[:2000]
    page = client.get(reverse("xero_integration:settings"))
    connection = page.context["connection"]
    assert connection.tenant_name == name
    if not connection.payment_account_id:
        state = sandbox.organisation_state(connection.tenant_id)
        bank = next(a["AccountID"] for a in state["accounts"] if a["Type"] == "BANK")
        saved = client.post(
            reverse("xero_integration:accounts"),
            {"payment_account_id": bank, "revenue_account_code": "200"},
        )
        assert saved.status_code == 302


def disconnect(client: Any) -> None:
    assert client.post(reverse("xero_integration:disconnect")).status_code == 302


def tax_rates(sandbox: Any, tenant_id: str) -> dict[str, dict]:
    return {r["TaxType"]: r for r in sandbox.organisation_state(tenant_id)["tax_rates"]}


def invoices_in(sandbox: Any, tenant_id: str) -> list[dict]:
    return [i for i in sandbox.organisation_state(tenant_id)["invoices"] if i["Type"] == "ACCREC"]


# ---- identity is per organisation ---------------------------------------------------------------


def test_switching_to_another_organisation_starts_clean_there(
    xero_app, xero_sandbox, owner, owner_client, connect_through_sandbox
):
    first = xero_sandbox.create_organisation(name="First Ltd")["tenant_id"]
    second = xero_sandbox.create_organisation(name="Second Ltd")["tenant_id"]
    token = xero_sandbox.issue_tokens(WEB_CLIENT_ID, [second])["access_token"]
    # Second Ltd has a levy of its own at 3%, the first rate anyone made there (TAX001).
    made = xero_sandbox.api(
        "PUT",
        "/TaxRates",
        second,
        token,
        json={
            "TaxRates": [
                {
                    "Name": "Council levy",
                    "TaxComponents": [{"Name": "Levy", "Rate": 3}],
                    "ReportTaxType": "OUTPUT",
                }
            ]
        },
    ).json()["TaxRates"][0]
    assert made["TaxType"] == "TAX001"
    account = owner.account
    connect_to(owner_client, connect_through_sandbox, xero_sandbox, "First Ltd")
    levy = tax_with(account, "Levy", ("Levy", "7", False))
    edited_later = make_invoice(account, [{"unit_price": Decimal("100"), "tax": levy}])
    never_edited = make_invoice(account, [{"unit_price": Decimal("50")}])
    assert money(xero_invoice(xero_sandbox, first, edited_later.number)["Total"]) == 107
    assert tax_rates(xero_sandbox, first)["TAX001"]["EffectiveRate"] == 7

    disconnect(owner_client)
    page = " ".join(owner_client.get(reverse("xero_integration:settings")).content.decode().split())
    assert "Choosing another organisation on Xero's screen sends this CRM's invoices" in page
    connect_to(owner_client, connect_through_sandbox, xero_sandbox, "Second Ltd")
    with transaction.atomic():
        edited_later.reference = "Sent again"
        edited_later.save()

    assert_done(edited_later)
    in_second = xero_invoice(xero_sandbox, second, edited_later.number)
    assert money(in_second["Total"]) == 107  # its own 7% rate, not Second Ltd's 3% TAX001
    rate = in_second["LineItems"][0]["TaxType"]
    assert rate != "TAX001" and tax_rates(xero_sandbox, second)[rate]["EffectiveRate"] == 7
    assert money(xero_invoice(xero_sandbox, first, edited_later.number)["Total"]) == 107
    assert len(invoices_in(xero_sandbox, first)) == 2  # First Ltd keeps what it has
    # The history of the first organisation stays, beside the second's.
    assert {link.tenant_id for link in InvoiceLink.objects.all()} == {first, second}
    assert TaxRateMapping.objects.get(tenant_id=first).tax_type == "TAX001"
    assert TaxRateMapping.objects.get(tenant_id=second).tax_type == rate
    # xero_backfill sends the invoices the second organisation has not had.
    connection = XeroConnection.objects.get(account_key=str(account.pk))
    planned = backfill.plan(connection, None)
    assert [i["number"] for i in planned.invoices] == [never_edited.number]


def test_jobs_waiting_across_a_switch_go_where_the_account_is_connected_then(
    xero_app, xero_sandbox, owner, owner_client, connect_through_sandbox
):
    first = xero_sandbox.create_organisation(name="First Ltd")["tenant_id"]
    second = xero_sandbox.create_organisation(name="Second Ltd")["tenant_id"]
    account = owner.account
    connect_to(owner_client, connect_through_sandbox, xero_sandbox, "First Ltd")
    kept = make_invoice(account, [{"unit_price": Decimal("40")}])
    first_copy = xero_invoice(xero_sandbox, first, kept.number)

    disconnect(owner_client)
    with transaction.atomic():
        kept.reference = "While disconnected"
        kept.save()
    new = make_invoice(account, [{"unit_price": Decimal("60")}])
    assert {job_of(kept).state, job_of(new).state} == {SyncJob.State.WAITING}
    assert job_of(new).reason == SyncJob.Reason.RECONNECT
    page = " ".join(owner_client.get(reverse("xero_integration:settings")).content.decode().split())
    assert "2 invoices wait to be sent to Xero" in page

    connect_to(owner_client, connect_through_sandbox, xero_sandbox, "Second Ltd")
    assert_done(kept) and assert_done(new)
    assert sorted(i["InvoiceNumber"] for i in invoices_in(xero_sandbox, second)) == sorted(
        [kept.number, new.number]
    )

    # Back to the first: its default accounts are remembered, its links carry on.
    disconnect(owner_client)
    connect_to(owner_client, connect_through_sandbox, xero_sandbox, "First Ltd")
    connection = XeroConnection.objects.get(account_key=str(account.pk))
    assert connection.tenant_id == first and connection.revenue_account_code == "200"
    with transaction.atomic():
        kept.reference = "Back in the first"
        kept.save()
    assert_done(kept)
    again = xero_invoice(xero_sandbox, first, kept.number)
    assert again["InvoiceID"] == first_copy["InvoiceID"]
    assert again["Reference"] == "Back in the first"
    assert [i["InvoiceNumber"] for i in invoices_in(xero_sandbox, first)] == [kept.number]


def test_a_job_queued_as_the_account_disconnects_waits_and_runs_after_the_reconnect(
    xero_app, xero_sandbox, owner, owner_client, connect_through_sandbox, no_dispatch
):
    tenant_id = xero_sandbox.create_organisation(name="First Ltd")["tenant_id"]
    connect_to(owner_client, connect_through_sandbox, xero_sandbox, "First Ltd")
    with no_dispatch():
        queued = make_invoice(owner.account, [{"unit_price": Decimal("25")}])
    disconnect(owner_client)
    rerun(queued)
    assert job_of(queued).state == SyncJob.State.WAITING
    connect_to(owner_client, connect_through_sandbox, xero_sandbox, "First Ltd")
    assert_done(queued)
    assert money(xero_invoice(xero_sandbox, tenant_id, queued.number)["Total"]) == 25


def test_jobs_failed_by_the_old_disconnected_handling_run_after_the_reconnect(
    xero_app, xero_sandbox, owner, owner_client, connect_through_sandbox, no_dispatch
):
    tenant_id = xero_sandbox.create_organisation(name="First Ltd")["tenant_id"]
    connect_to(owner_client, connect_through_sandbox, xero_sandbox, "First Ltd")
    with no_dispatch():
        stranded = make_invoice(owner.account, [{"unit_price": Decimal("25")}])
        refused = make_invoice(owner.account, [{"unit_price": Decimal("35")}])
    disconnect(owner_client)
    # As an earlier version left them: failed for the disconnect, or refused by Xero.
    SyncJob.objects.filter(pk=job_of(stranded).pk).update(
        state=SyncJob.State.FAILED, error=outbox.LEGACY_DISCONNECTED, reason=""
    )
    SyncJob.objects.filter(pk=job_of(refused).pk).update(
        state=SyncJob.State.FAILED,
        error="Account code '999' is not a valid code for this document.",
        reason=SyncJob.Reason.REFUSED,
    )

    connect_to(owner_client, connect_through_sandbox, xero_sandbox, "First Ltd")

    assert_done(stranded)
    assert money(xero_invoice(xero_sandbox, tenant_id, stranded.number)["Total"]) == 25
    assert job_of(refused).state == SyncJob.State.FAILED  # staff's to retry
    assert [i["InvoiceNumber"] for i in invoices_in(xero_sandbox, tenant_id)] == [stranded.number]


def test_the_connection_in_admin_counts_the_invoices_waiting_for_a_reconnect(
    xero_app, xero_sandbox, owner, owner_client, connect_through_sandbox, admin_client
):
    xero_sandbox.create_organisation(name="First Ltd")
    connect_to(owner_client, connect_through_sandbox, xero_sandbox, "First Ltd")
    assert_done(make_invoice(owner.account, [{"unit_price": Decimal("10")}]))
    disconnect(owner_client)
    waiting = [make_invoice(owner.account, [{"unit_price": Decimal(p)}]) for p in ("20", "30")]
    for invoice in waiting:
        job = job_of(invoice)
        assert (job.state, job.reason) == (SyncJob.State.WAITING, SyncJob.Reason.RECONNECT)

    connection = XeroConnection.objects.get(account_key=str(owner.account.pk))
    listed = admin_client.get(reverse("admin:xero_integration_xeroconnection_changelist"))
    text = listed.content.decode()
    assert "Invoices waiting" in text
    assert '<td class="field-waiting_jobs">2</td>' in text
    change = admin_client.get(
        reverse("admin:xero_integration_xeroconnection_change", args=[connection.pk])
    )
    assert re.search(
        r"Invoices waiting:?</label>\s*<div class=\"readonly\">2</div>", change.content.decode()
    )

    connect_to(owner_client, connect_through_sandbox, xero_sandbox, "First Ltd")
    listed = admin_client.get(reverse("admin:xero_integration_xeroconnection_changelist"))
    assert '<td class="field-waiting_jobs">0</td>' in listed.content.decode()


# ---- we only change what we wrote ---------------------------------------------------------------


def test_an_invoice_typed_in_xero_with_the_same_number_and_contact_is_left_alone(
    xero_sandbox, connected, admin_client
):
    tenant_id, account, _ = connected
    customer = ContactFactory(account=account, name="Harbour Cafe")
    make_invoice(account, [{"unit_price": Decimal("10")}], contact=customer)
    contact_id = xero_invoices_contact(xero_sandbox, tenant_id, "Harbour Cafe")
    typed = XeroUser(xero_sandbox, tenant_id).create_invoice(
        InvoiceNumber="INV-77",
        Contact={"ContactID": contact_id},
        Date="2026-11-02",
        DueDate="2026-11-30",
        Status="AUTHORISED",
        LineItems=[
            {
                "Description": "Typed by the accountant",
                "Quantity": 1,
                "UnitAmount": 50,
                "AccountCode": "200",
            }
        ],
    )

    ours = make_invoice(
        account, [{"unit_price": Decimal("100")}], contact=customer, number="INV-77"
    )

    job = job_of(ours)
    assert job.state == SyncJob.State.FAILED and job.reason == SyncJob.Reason.NUMBER_TAKEN
    assert "Xero already has invoice number INV-77" in job.error
    assert typed["InvoiceID"] in job.error
    theirs = xero_invoice(xero_sandbox, tenant_id, "INV-77")
    assert theirs["LineItems"][0]["Description"] == "Typed by the accountant"
    assert money(theirs["Total"]) == money(typed["Total"])

    # Staff decide that Xero's invoice is this one: it is linked, then brought to the CRM's.
    response = admin_client.post(
        reverse("admin:xero_integration_syncjob_changelist"),
        {"action": "link_to_existing_invoice", "_selected_action": [job.pk]},
    )
    assert response.status_code == 302
    assert_done(ours)
    assert link_of(ours).xero_invoice_id == typed["InvoiceID"]
    assert money(xero_invoice(xero_sandbox, tenant_id, "INV-77")["Total"]) == ours.total
    assert (
        len([i for i in invoices_in(xero_sandbox, tenant_id) if i["InvoiceNumber"] == "INV-77"])
        == 1
    )


def xero_invoices_contact(sandbox: Any, tenant_id: str, name: str) -> str:
    (contact,) = [c for c in sandbox.organisation_state(tenant_id)["contacts"] if c["Name"] == name]
    return contact["ContactID"]


def test_voiding_in_the_crm_never_deletes_a_payment_recorded_in_xero(xero_sandbox, connected):
    tenant_id, account, _ = connected
    invoice = make_invoice(account, [{"unit_price": Decimal("100")}])
    pay(invoice, "30.00")
    xero_id = link_of(invoice).xero_invoice_id
    from_the_bank = XeroUser(xero_sandbox, tenant_id).pay(xero_id, "20.00", reference="DD 4471")

    with transaction.atomic():
        invoice.refresh_from_db()
        invoice.status = Invoice.Status.VOID
        invoice.save()

    job = job_of(invoice)
    assert job.state == SyncJob.State.FAILED
    assert job.reason == SyncJob.Reason.CHANGED_IN_XERO
    assert "20.00 on 2026-11-05" in job.error and "DD 4471" in job.error
    remaining = live_payments(xero_sandbox, tenant_id, xero_id)
    assert [p["PaymentID"] for p in remaining] == [from_the_bank["PaymentID"]]
    assert xero_invoice(xero_sandbox, tenant_id, invoice.number)["Status"] == "AUTHORISED"


def test_a_payment_delete_answered_after_the_idempotency_window_counts_as_done(
    xero_sandbox, connected
):
    tenant_id, account, _ = connected
    invoice = make_invoice(account, [{"unit_price": Decimal("100")}])
    payment = pay(invoice, "45.00")
    xero_sandbox.add_fault("POST", f"{API}/Payments/*", "lost_response", count=20)
    with transaction.atomic():
        payment.delete()
        invoice.recalculate()
    assert job_of(invoice).state == SyncJob.State.WAITING
    xero_sandbox.clear_faults()
    xero_sandbox.advance_clock(7 * 60)  # a long outage: Xero no longer replays the answer

    rerun(invoice)

    assert_done(invoice)
    assert live_payments(xero_sandbox, tenant_id) == []
    assert [p.state for p in PaymentLink.objects.all()] == [PaymentLink.State.DELETED]


def test_a_draft_deleted_in_xero_is_refused_plainly_then_sent_as_new_by_staff(
    xero_sandbox, connected, admin_client
):
    tenant_id, account, _ = connected
    draft = make_invoice(account, [{"unit_price": Decimal("80")}], status=Invoice.Status.DRAFT)
    deleted_id = link_of(draft).xero_invoice_id
    XeroUser(xero_sandbox, tenant_id).edit_invoice(deleted_id, Status="DELETED")

    with transaction.atomic():
        draft.status = Invoice.Status.SENT
        draft.save()

    job = job_of(draft)
    assert "deleted in Xero" in job.error and "not of valid status" not in job.error
    assert job.state == SyncJob.State.FAILED and job.reason == SyncJob.Reason.CHANGED_IN_XERO
    assert link_of(draft).xero_status == "DELETED"
    rerun(draft)  # a retry says the same, without a loop of calls
    assert job_of(draft).reason == SyncJob.Reason.CHANGED_IN_XERO

    admin_client.post(
        reverse("admin:xero_integration_syncjob_changelist"),
        {"action": "send_as_new_invoice", "_selected_action": [job.pk]},
    )
    assert_done(draft)
    again = xero_invoice(xero_sandbox, tenant_id, draft.number)
    assert again["InvoiceID"] != deleted_id and again["Status"] == "AUTHORISED"


def test_the_number_of_an_invoice_voided_in_xero_is_not_taken_over_by_its_replacement(
    xero_sandbox, connected
):
    tenant_id, account, _ = connected
    customer = ContactFactory(account=account)
    gone = make_invoice(
        account, [{"unit_price": Decimal("90")}], number="INV-500", contact=customer
    )
    voided_id = link_of(gone).xero_invoice_id
    with transaction.atomic():
        gone.delete()
    assert xero_invoice(xero_sandbox, tenant_id, "INV-500")["Status"] == "VOIDED"

    replacement = make_invoice(
        account, [{"unit_price": Decimal("95")}], number="INV-500", contact=customer
    )

    assert not InvoiceLink.objects.filter(
        host_id=str(replacement.pk), xero_invoice_id=voided_id
    ).exists()
    job = job_of(replacement)
    assert job.state == SyncJob.State.FAILED and job.reason == SyncJob.Reason.NUMBER_TAKEN
    assert "VOIDED" in job.error and voided_id in job.error


# ---- Xero's side comes back ------------------------------------------------------------------


def wait_for(condition: Any, seconds: float = 15) -> None:
    """Wait for the sandbox's webhook delivery (another thread) to reach the CRM."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError("The webhook's effect never reached the CRM.")


def test_a_payment_recorded_in_xero_reaches_the_crm_through_the_webhook(
    xero_sandbox, connected, live_server, settings
):
    tenant_id, account, _ = connected
    settings.XERO_WEBHOOK_KEY = WEBHOOK_KEY
    invoice = make_invoice(account, [{"unit_price": Decimal("100")}])
    xero_id = link_of(invoice).xero_invoice_id
    url = live_server.url + reverse("xero_integration:webhook")
    assert xero_sandbox.register_webhook(url, WEBHOOK_KEY)["status"] == "OK"
    writes_before = xero_writes(xero_sandbox, tenant_id)

    made = XeroUser(xero_sandbox, tenant_id).pay(xero_id, "100.00", reference="Bank feed 991")

    wait_for(lambda: Invoice.objects.get(pk=invoice.pk).status == Invoice.Status.PAID)
    (recorded,) = Payment.objects.filter(invoice=invoice)
    assert recorded.recorded_in_xero and recorded.amount == Decimal("100.00")
    assert recorded.reference == "Bank feed 991"
    link = PaymentLink.objects.get(xero_payment_id=made["PaymentID"])
    assert link.origin == PaymentLink.Origin.XERO and link.host_id == str(recorded.pk)
    assert link_of(invoice).xero_status == "PAID" and not link_of(invoice).drift
    # Nothing went back to Xero.
    assert xero_writes(xero_sandbox, tenant_id) == writes_before
    assert len(live_payments(xero_sandbox, tenant_id, xero_id)) == 1


def xero_writes(sandbox: Any, tenant_id: str) -> int:
    return len(
        [
            r
            for r in sandbox.requests(tenant_id)
            if r["method"] in ("PUT", "POST") and r["path"].startswith(API)
        ]
    )


def test_a_payment_whose_webhook_was_lost_is_found_by_the_periodic_read(xero_sandbox, connected):
    tenant_id, account, connection = connected
    invoice = make_invoice(account, [{"unit_price": Decimal("100")}])
    xero_id = link_of(invoice).xero_invoice_id
    writes_before = xero_writes(xero_sandbox, tenant_id)
    person = XeroUser(xero_sandbox, tenant_id)
    part = person.pay(xero_id, "40.00")

    readback.read_changes(XeroConnection.objects.get(pk=connection.pk))

    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.PARTIALLY_PAID and invoice.amount_paid == 40
    assert xero_writes(xero_sandbox, tenant_id) == writes_before
    # Removed in Xero: the CRM's copy goes too.
    person.delete_payment(part["PaymentID"])
    readback.read_changes(XeroConnection.objects.get(pk=connection.pk))
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.SENT and not invoice.payments.exists()
    assert xero_writes(xero_sandbox, tenant_id) == writes_before
    assert not SyncJob.objects.exclude(state=SyncJob.State.DONE).exists()


def test_an_invoice_voided_in_xero_shows_on_the_crm_page_and_a_later_change_is_refused(
    xero_sandbox, connected, owner_client_of_connected
):
    tenant_id, account, connection = connected
    invoice = make_invoice(account, [{"unit_price": Decimal("100")}])
    XeroUser(xero_sandbox, tenant_id).edit_invoice(
        link_of(invoice).xero_invoice_id, Status="VOIDED"
    )
    readback.read_changes(XeroConnection.objects.get(pk=connection.pk))

    page = owner_client_of_connected.get(reverse("crm:invoice_detail", args=[invoice.pk]))
    assert "Voided in Xero." in page.content.decode()
    with transaction.atomic():
        invoice.reference = "Too late"
        invoice.save()
    job = job_of(invoice)
    assert job.state == SyncJob.State.FAILED and job.reason == SyncJob.Reason.CHANGED_IN_XERO
    assert "voided in Xero" in job.error


def test_a_draft_deleted_in_xero_shows_as_deleted_on_the_crm_page_and_in_admin(
    xero_sandbox, connected, owner_client_of_connected, admin_client
):
    tenant_id, account, connection = connected
    draft = make_invoice(account, [{"unit_price": Decimal("80")}], status=Invoice.Status.DRAFT)
    XeroUser(xero_sandbox, tenant_id).edit_invoice(link_of(draft).xero_invoice_id, Status="DELETED")
    readback.read_changes(XeroConnection.objects.get(pk=connection.pk))

    page = owner_client_of_connected.get(reverse("crm:invoice_detail", args=[draft.pk]))
    text = page.content.decode()
    assert "Deleted in Xero." in text and "Voided in Xero." not in text
    assert "changes made in the CRM no longer reach Xero" in text

    admin_shows_removed_in_xero(admin_client, draft, "DELETED")


def admin_shows_removed_in_xero(admin_client, invoice: Invoice, status: str) -> None:
    """Admin lists the invoice under its Xero status, its link's page shows it, and the sync
    log says what happened in Xero."""
    links = reverse("admin:xero_integration_invoicelink_changelist")
    listed = admin_client.get(links, {"xero_status__exact": status})
    assert [link.invoice_number for link in listed.context["cl"].result_list] == [invoice.number]
    change = admin_client.get(
        reverse("admin:xero_integration_invoicelink_change", args=[link_of(invoice).pk])
    )
    assert status in change.content.decode()
    log = admin_client.get(reverse("admin:xero_integration_synclog_changelist"))
    said = "deleted" if status == "DELETED" else "voided"
    assert f"Invoice {invoice.number} was {said} in Xero." in log.content.decode()


def test_an_invoice_voided_in_xero_shows_in_admin_with_its_status(
    xero_sandbox, connected, admin_client
):
    tenant_id, account, connection = connected
    invoice = make_invoice(account, [{"unit_price": Decimal("100")}])
    make_invoice(account, [{"unit_price": Decimal("60")}])  # still authorised
    XeroUser(xero_sandbox, tenant_id).edit_invoice(
        link_of(invoice).xero_invoice_id, Status="VOIDED"
    )
    readback.read_changes(XeroConnection.objects.get(pk=connection.pk))

    admin_shows_removed_in_xero(admin_client, invoice, "VOIDED")


def test_an_invoice_voided_from_the_crm_is_not_shown_as_voided_by_someone_in_xero(
    xero_sandbox, connected, owner_client_of_connected
):
    _, account, connection = connected
    invoice = make_invoice(account, [{"unit_price": Decimal("100")}])
    void(invoice)
    assert_done(invoice)
    readback.read_changes(XeroConnection.objects.get(pk=connection.pk))
    assert link_of(invoice).xero_status == "VOIDED"

    page = owner_client_of_connected.get(reverse("crm:invoice_detail", args=[invoice.pk]))
    text = page.content.decode()
    assert "In Xero: <strong>Voided</strong>" in text
    assert "Voided in Xero." not in text and "Xero and the CRM differ" not in text


def test_a_difference_no_change_in_xero_explains_is_flagged_as_drift(xero_sandbox, connected):
    tenant_id, account, connection = connected
    invoice = make_invoice(account, [{"unit_price": Decimal("100")}])
    # Someone edits the invoice's lines in Xero: its total is no longer the CRM's.
    XeroUser(xero_sandbox, tenant_id).edit_invoice(
        link_of(invoice).xero_invoice_id,
        LineItems=[
            {
                "Description": "Changed in Xero",
                "Quantity": 1,
                "UnitAmount": 120,
                "AccountCode": "200",
            }
        ],
    )

    readback.check_recent(XeroConnection.objects.get(pk=connection.pk))

    link = link_of(invoice)
    in_xero = money(xero_invoice(xero_sandbox, tenant_id, invoice.number)["Total"])
    assert link.drift
    assert f"total: CRM 100.00, Xero {in_xero}" in link.drift_detail
    assert InvoiceLink.objects.filter(drift=True).count() == 1
    # Shown to staff, not pushed over what someone did in Xero.
    assert money(xero_invoice(xero_sandbox, tenant_id, invoice.number)["Total"]) == in_xero


def total_changed_in_xero(sandbox: Any, tenant_id: str, invoice: Invoice) -> Decimal:
    """Someone edits the invoice's lines in Xero; its total there, no longer the CRM's."""
    XeroUser(sandbox, tenant_id).edit_invoice(
        link_of(invoice).xero_invoice_id,
        LineItems=[
            {
                "Description": "Changed in Xero",
                "Quantity": 1,
                "UnitAmount": 120,
                "AccountCode": "200",
            }
        ],
    )
    return money(xero_invoice(sandbox, tenant_id, invoice.number)["Total"])


def test_drift_has_its_own_admin_filter_showing_both_figures(xero_sandbox, connected, admin_client):
    tenant_id, account, connection = connected
    differs = make_invoice(account, [{"unit_price": Decimal("100")}])
    agrees = make_invoice(account, [{"unit_price": Decimal("50")}])
    in_xero = total_changed_in_xero(xero_sandbox, tenant_id, differs)
    readback.check_recent(XeroConnection.objects.get(pk=connection.pk))

    changelist = reverse("admin:xero_integration_invoicelink_changelist")
    page = admin_client.get(changelist).content.decode()
    assert "By drift" in page
    drifted = admin_client.get(changelist, {"drift__exact": "1"})
    assert [link.invoice_number for link in drifted.context["cl"].result_list] == [differs.number]
    assert f"total: CRM 100.00, Xero {in_xero}" in drifted.content.decode()
    alike = admin_client.get(changelist, {"drift__exact": "0"})
    assert [link.invoice_number for link in alike.context["cl"].result_list] == [agrees.number]


def test_drift_shows_on_the_crm_invoice_page_with_both_figures(
    xero_sandbox, connected, owner_client_of_connected
):
    tenant_id, account, connection = connected
    differs = make_invoice(account, [{"unit_price": Decimal("100")}])
    agrees = make_invoice(account, [{"unit_price": Decimal("50")}])
    in_xero = total_changed_in_xero(xero_sandbox, tenant_id, differs)
    readback.check_recent(XeroConnection.objects.get(pk=connection.pk))

    def page_of(invoice: Invoice) -> str:
        url = reverse("crm:invoice_detail", args=[invoice.pk])
        return owner_client_of_connected.get(url).content.decode()

    page = page_of(differs)
    assert "Xero and the CRM differ:" in page
    assert f"total: CRM 100.00, Xero {in_xero}" in page
    assert "Xero and the CRM differ:" not in page_of(agrees)


def test_the_daily_drift_check_reads_only_invoices_sent_within_the_drift_window(
    xero_sandbox, connected, settings
):
    tenant_id, account, connection = connected
    recent = make_invoice(account, [{"unit_price": Decimal("100")}])
    older = make_invoice(account, [{"unit_price": Decimal("100")}])
    for invoice in (recent, older):
        total_changed_in_xero(xero_sandbox, tenant_id, invoice)
    InvoiceLink.objects.filter(pk=link_of(older).pk).update(
        pushed_at=timezone.now() - timedelta(days=31)
    )
    connection = XeroConnection.objects.get(pk=connection.pk)

    readback.check_recent(connection)  # the default window: 30 days

    assert link_of(recent).drift
    assert not link_of(older).drift and link_of(older).read_at is None
    read = [r["query"] for r in xero_sandbox.requests(tenant_id) if r["method"] == "GET"]
    assert link_of(older).xero_invoice_id not in str(read)

    settings.XERO_DRIFT_DAYS = 45
    readback.check_recent(connection)

    assert link_of(older).drift


def test_a_copy_read_before_our_payment_was_made_never_counts_it_as_removed(
    xero_sandbox, connected
):
    tenant_id, account, connection = connected
    invoice = make_invoice(account, [{"unit_price": Decimal("100")}])
    read_started = timezone.now()
    older_copy = xero_invoice(xero_sandbox, tenant_id, invoice.number)
    pay(invoice, "30.00")  # our payment reaches Xero after that copy was read
    assert len(live_payments(xero_sandbox, tenant_id)) == 1

    readback.apply_invoices(connection, [older_copy], read_started=read_started)

    (link,) = PaymentLink.objects.all()
    assert link.state == PaymentLink.State.LINKED
    invoice.refresh_from_db()
    pay(invoice, "20.00")  # the next push must not send the 30.00 again
    assert_done(invoice)
    assert sorted(money(p["Amount"]) for p in live_payments(xero_sandbox, tenant_id)) == [20, 30]
