"""What a run does with an invoice and its payments, decided from plain values (rules.plan)."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest

from xero_integration.data import (
    HostContact,
    HostInvoice,
    HostLine,
    HostPayment,
    InvoiceStatus,
)
from xero_integration.rules import plan
from xero_integration.rules.invoices import invoice_payload

DAY = datetime.date(2026, 11, 5)


def payment(host_id: str, amount: str, date: datetime.date = DAY, ref: str = "") -> HostPayment:
    return HostPayment("crm.payment", host_id, Decimal(amount), date, ref)


def record(
    host_id: str,
    amount: str,
    state: str = plan.LINKED,
    payment_id: str = "",
    origin: str = plan.FROM_CRM,
    date: datetime.date = DAY,
    ref: str = "",
) -> plan.PaymentRecord:
    return plan.PaymentRecord(
        host_model="crm.payment",
        host_id=host_id,
        xero_payment_id=payment_id or (f"P-{host_id}" if state != plan.SENDING else ""),
        state=state,
        origin=origin,
        amount=Decimal(amount),
        date=date,
        reference=ref,
        account_id="BANK",
    )


def in_xero(payment_id: str, amount: str, date: datetime.date = DAY, ref: str = ""):
    return plan.XeroPayment(payment_id, Decimal(amount), date, ref)


# ---- payments -----------------------------------------------------------------------------------


def test_payments_already_in_xero_are_kept_and_new_ones_created():
    decided = plan.plan_payments([payment("1", "30"), payment("2", "20")], [record("1", "30")])
    assert decided.create == [payment("2", "20")]
    assert not decided.delete and not decided.refusals


def test_a_changed_payment_is_deleted_and_made_again_a_removed_one_deleted():
    decided = plan.plan_payments([payment("1", "35")], [record("1", "30"), record("2", "10")])
    assert {r.host_id for r in decided.delete} == {"1", "2"}
    assert decided.create == [payment("1", "35")]


def test_an_unanswered_create_that_xero_applied_is_adopted_not_sent_again():
    decided = plan.plan_payments(
        [payment("1", "30")],
        [record("1", "30", state=plan.SENDING)],
        [in_xero("X1", "30")],
    )
    assert [(r.host_id, payment_id) for r, payment_id in decided.adopt] == [("1", "X1")]
    assert not decided.create and not decided.delete


def test_an_unanswered_create_whose_payment_the_crm_removed_is_deleted_in_xero():
    decided = plan.plan_payments([], [record("1", "30", state=plan.SENDING)], [in_xero("X1", "30")])
    assert [payment_id for _, payment_id in decided.adopt] == ["X1"]
    assert [r.xero_payment_id for r in decided.delete] == ["X1"]


def test_an_unanswered_create_xero_never_applied_is_forgotten_and_sent_again():
    decided = plan.plan_payments([payment("1", "30")], [record("1", "30", state=plan.SENDING)], [])
    assert [r.host_id for r in decided.forget] == ["1"]
    assert decided.create == [payment("1", "30")]


def test_two_equal_unanswered_creates_adopt_two_payments_not_one_twice():
    decided = plan.plan_payments(
        [payment("1", "30"), payment("2", "30")],
        [record("1", "30", state=plan.SENDING), record("2", "30", state=plan.SENDING)],
        [in_xero("X1", "30"), in_xero("X2", "30")],
    )
    assert sorted(payment_id for _, payment_id in decided.adopt) == ["X1", "X2"]
    assert not decided.create


def test_a_payment_someone_recorded_in_xero_is_never_taken_for_an_unanswered_create():
    # Same amount, another date: not the one we sent.
    decided = plan.plan_payments(
        [payment("1", "30")],
        [record("1", "30", state=plan.SENDING)],
        [in_xero("THEIRS", "30", date=DAY + datetime.timedelta(days=1))],
    )
    assert decided.forget and decided.create == [payment("1", "30")]
    assert not decided.delete


def test_an_unanswered_delete_is_done_when_xero_no_longer_has_the_payment():
    decided = plan.plan_payments(
        [], [record("1", "30", state=plan.DELETING)], [in_xero("OTHER", "5")]
    )
    assert [r.host_id for r in decided.confirm_deleted] == ["1"]
    assert not decided.delete


def test_an_unanswered_delete_still_in_xero_is_sent_again():
    decided = plan.plan_payments(
        [], [record("1", "30", state=plan.DELETING)], [in_xero("P-1", "30")]
    )
    assert [r.xero_payment_id for r in decided.delete] == ["P-1"]


def test_unanswered_writes_need_xeros_payments_first():
    assert plan.needs_xero_payments([record("1", "30", state=plan.SENDING)])
    assert plan.needs_xero_payments([record("1", "30", state=plan.DELETING)])
    assert not plan.needs_xero_payments([record("1", "30")])
    with pytest.raises(ValueError):
        plan.plan_payments([], [record("1", "30", state=plan.SENDING)])


def test_a_payment_recorded_in_xero_is_never_deleted_or_changed_from_the_crm():
    mirrored = record("9", "20", origin=plan.FROM_XERO, payment_id="BANKFEED")
    removed = plan.plan_payments([], [mirrored])
    assert not removed.delete and removed.refusals
    assert "recorded in Xero" in removed.refusals[0]
    changed = plan.plan_payments([payment("9", "25")], [mirrored])
    assert not changed.delete and not changed.create and changed.refusals
    kept = plan.plan_payments([payment("9", "20")], [mirrored])
    assert not kept.writes and not kept.refusals


def test_foreign_payments_are_those_we_did_not_make():
    ours = [record("1", "30", payment_id="P1")]
    xero = [in_xero("P1", "30"), in_xero("BANK", "20", ref="DD 4471")]
    assert [p.payment_id for p in plan.foreign_payments(xero, ours)] == ["BANK"]
    message = plan.void_refused_message(plan.foreign_payments(xero, ours))
    assert "20.00 on 2026-11-05" in message and "DD 4471" in message


# ---- invoices -----------------------------------------------------------------------------------


def host_invoice(number: str = "INV-1", **fields) -> HostInvoice:
    values = {
        "host_model": "crm.invoice",
        "host_id": "1",
        "account_key": "1",
        "number": number,
        "contact": HostContact("crm.contact", "1", "Acme"),
        "currency": "NZD",
        "issue_date": datetime.date(2026, 11, 1),
        "due_date": datetime.date(2026, 11, 30),
        "tax_inclusive": False,
        "status": InvoiceStatus.SENT,
        "lines": (HostLine("Work", "", Decimal("2"), Decimal("12.5")),),
        "total": Decimal("25"),
    }
    values.update(fields)
    return HostInvoice(**values)


def xero_copy(payload: dict, **changes) -> dict:
    """Xero's answer for a payload: its own date format, 4-dp numbers, amounts added."""
    copy = {
        **payload,
        "InvoiceID": "XI-1",
        "Date": "/Date(1793491200000+0000)/",
        "Status": "AUTHORISED",
        "Total": 25.0,
        "LineItems": [
            {**line, "Quantity": 2.0, "UnitAmount": 12.5, "LineAmount": 25.0}
            for line in payload["LineItems"]
        ],
    }
    copy.update(changes)
    return copy


def test_xeros_copy_of_what_we_sent_has_the_fingerprint_of_what_we_sent():
    payload = invoice_payload(host_invoice(), "C-1", "200", {})
    assert plan.invoice_fingerprint(xero_copy(payload)) == plan.invoice_fingerprint(payload)
    edited = xero_copy(
        payload, LineItems=[{"Description": "Typed in Xero", "Quantity": 1, "UnitAmount": 50}]
    )
    assert plan.invoice_fingerprint(edited) != plan.invoice_fingerprint(payload)


def test_an_invoice_of_our_number_is_adopted_only_with_the_proof_of_an_unanswered_create():
    payload = invoice_payload(host_invoice(), "C-1", "200", {})
    copy = xero_copy(payload)
    proven = plan.settle_existing_number([copy], "INV-1", [plan.invoice_fingerprint(payload)])
    assert proven.adopt is copy and proven.conflict is None
    unproven = plan.settle_existing_number([copy], "INV-1", [])
    assert unproven.adopt is None and unproven.conflict is copy
    assert "INV-1 for another contact (AUTHORISED, total 25.00" in plan.number_taken_message(
        "INV-1", copy
    )


def test_a_deleted_invoice_no_longer_holds_its_number():
    payload = invoice_payload(host_invoice(), "C-1", "200", {})
    deleted = xero_copy(payload, Status="DELETED")
    assert plan.settle_existing_number([deleted], "inv-1", []) == plan.Found()


@pytest.mark.parametrize(
    ("status", "total", "paid", "xero_status", "xero_total", "xero_paid", "expected"),
    [
        (InvoiceStatus.SENT, "25", None, "AUTHORISED", "25", "0", ""),
        (InvoiceStatus.PAID, "25", "25", "PAID", "25", "25", ""),
        (InvoiceStatus.PARTIALLY_PAID, "25", "10", "AUTHORISED", "25", "10", ""),
        (InvoiceStatus.SENT, "25", None, "AUTHORISED", "30", "0", "total: CRM 25.00, Xero 30.00"),
        (
            InvoiceStatus.SENT,
            "25",
            None,
            "AUTHORISED",
            "25",
            "5",
            "amount paid: CRM 0.00, Xero 5.00",
        ),
        (InvoiceStatus.VOID, "25", None, "DELETED", "25", "0", ""),
        (InvoiceStatus.SENT, "25", None, "VOIDED", "25", "0", "status: CRM sent, Xero VOIDED"),
    ],
)
def test_drift_is_what_differs_once_xeros_changes_are_in_the_crm(
    status, total, paid, xero_status, xero_total, xero_paid, expected
):
    payments = (payment("1", paid),) if paid else ()
    invoice = host_invoice(status=status, total=Decimal(total), payments=payments)
    detail = plan.drift(invoice, xero_status, Decimal(xero_total), Decimal(xero_paid))
    assert detail == expected


@pytest.mark.parametrize(
    ("status", "deleted", "in_xero", "removed", "drafts", "step"),
    [
        (None, True, True, False, False, plan.Step.REMOVE),
        (InvoiceStatus.VOID, False, True, False, False, plan.Step.REMOVE),
        (InvoiceStatus.VOID, False, False, False, False, plan.Step.REMOVE),
        (InvoiceStatus.SENT, False, False, False, False, plan.Step.WRITE),
        (InvoiceStatus.SENT, False, True, False, False, plan.Step.WRITE),
        (InvoiceStatus.SENT, False, True, True, False, plan.Step.REFUSE),
        (InvoiceStatus.DRAFT, False, False, False, False, plan.Step.NOTHING),
        (InvoiceStatus.DRAFT, False, False, False, True, plan.Step.WRITE),
        (InvoiceStatus.DRAFT, False, True, False, False, plan.Step.WRITE),
    ],
)
def test_what_a_run_does_with_an_invoice(status, deleted, in_xero, removed, drafts, step):
    invoice = None if status is None else host_invoice(status=status)
    assert plan.invoice_step(invoice, deleted, in_xero, removed, drafts).step == step


def test_an_invoice_the_host_keeps_out_of_xero_is_left_alone():
    assert plan.invoice_step(None, False, True, False, True).step == plan.Step.NOTHING
