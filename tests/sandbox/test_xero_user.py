"""A person working in Xero itself, through the control API (``/_sandbox/organisations/{id}/
invoices`` and ``/payments``): Xero's own rules apply, the API sees the changes (amounts,
statuses, ``If-Modified-Since``) and the INVOICE webhook events follow (Xero's API documentation).
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.sandbox.test_accounting_rules import (
    DUE_DATE,
    DUPLICATE_INVOICE_NUMBER,
    INVALID_STATUS,
    INVOICE_DATE,
    PAYMENT_ALLOCATED,
    Org,
    _clock_now,
    assert_validation_error,
    dec,
    validation_messages,
)
from tests.sandbox.test_webhooks_and_state import KEY, Receiver
from xero_integration.testing import SandboxError

PAYMENT_RECONCILED = "This payment cannot be deleted as it has been reconciled."


@pytest.fixture
def customer(org: Org) -> dict:
    return org.create_contact("Counter Sales Ltd")


@pytest.fixture
def receiver(xero_sandbox):
    endpoint = Receiver()
    assert xero_sandbox.register_webhook(endpoint.url, KEY)["status"] == "OK"
    yield endpoint
    endpoint.close()


def typed_invoice(org: Org, contact: dict, status: str = "AUTHORISED", **fields) -> dict:
    """An invoice as a person fills in Xero's invoice screen."""
    invoice = {
        "Type": "ACCREC",
        "Contact": contact,
        "Date": INVOICE_DATE,
        "DueDate": DUE_DATE,
        "Status": status,
        "LineItems": [org.line()],
    }
    invoice.update(fields)
    return invoice


def user_invoice(xero_sandbox, org: Org, contact: dict, **fields) -> dict:
    (invoice,) = xero_sandbox.xero_user_invoices(
        org.tenant_id, [typed_invoice(org, contact, **fields)]
    )
    return invoice


def bank_payment(org: Org, invoice_id: str, amount, **fields) -> dict:
    payment = {
        "Invoice": {"InvoiceID": invoice_id},
        "Account": {"AccountID": org.bank_account()["AccountID"]},
        "Date": INVOICE_DATE,
        "Amount": float(amount),
    }
    payment.update(fields)
    return payment


def user_pay(xero_sandbox, org: Org, invoice_id: str, amount, **fields) -> dict:
    (payment,) = xero_sandbox.xero_user_payments(
        org.tenant_id, [bank_payment(org, invoice_id, amount, **fields)]
    )
    return payment


def refusal(call) -> SandboxError:
    with pytest.raises(SandboxError) as raised:
        call()
    assert raised.value.status == 400, raised.value
    return raised.value


def if_modified_since(org: Org, path: str, cutoff) -> list[dict]:
    since = cutoff.replace(microsecond=0).isoformat()
    body = org.ok(org.get(path, headers={"If-Modified-Since": since}))
    return body[path.strip("/")]


# --------------------------------------------------------------------------- invoices


def test_person_types_an_invoice_the_api_then_reads(xero_sandbox, org: Org):
    invoice = user_invoice(xero_sandbox, org, {"Name": "Walk-in Customer"}, InvoiceNumber="X-7")

    assert invoice["InvoiceNumber"] == "X-7"
    assert invoice["Status"] == "AUTHORISED"
    assert dec(invoice["Total"]) == Decimal("115.00")
    assert dec(invoice["AmountDue"]) == Decimal("115.00")
    assert invoice["LineItems"][0]["LineItemID"]
    read = org.get_invoice(invoice["InvoiceID"])
    assert read["Contact"]["ContactID"] == invoice["Contact"]["ContactID"]
    assert read["Contact"]["Name"] == "Walk-in Customer"
    assert {k: read[k] for k in ("InvoiceNumber", "Total", "Status")} == {
        k: invoice[k] for k in ("InvoiceNumber", "Total", "Status")
    }
    mine = org.ok(org.get("/Invoices", params={"createdByMyApp": "true"}))["Invoices"]
    assert invoice["InvoiceID"] not in [i["InvoiceID"] for i in mine]


def test_person_approves_a_draft_and_voids_it(xero_sandbox, org: Org, customer):
    draft = user_invoice(xero_sandbox, org, {"ContactID": customer["ContactID"]}, status="DRAFT")

    (approved,) = xero_sandbox.xero_user_invoices(
        org.tenant_id, [{"InvoiceID": draft["InvoiceID"], "Status": "AUTHORISED"}]
    )
    (voided,) = xero_sandbox.xero_user_invoices(
        org.tenant_id, [{"InvoiceID": draft["InvoiceID"], "Status": "VOIDED"}]
    )

    assert approved["Status"] == "AUTHORISED"
    assert voided["Status"] == "VOIDED"
    assert dec(voided["AmountDue"]) == 0
    assert org.get_invoice(draft["InvoiceID"])["Status"] == "VOIDED"


def test_person_deletes_a_draft_but_not_an_approved_invoice(xero_sandbox, org: Org, customer):
    contact = {"ContactID": customer["ContactID"]}
    draft = user_invoice(xero_sandbox, org, contact, status="DRAFT")
    approved = user_invoice(xero_sandbox, org, contact)

    (deleted,) = xero_sandbox.xero_user_invoices(
        org.tenant_id, [{"InvoiceID": draft["InvoiceID"], "Status": "DELETED"}]
    )
    refused = refusal(
        lambda: xero_sandbox.xero_user_invoices(
            org.tenant_id, [{"InvoiceID": approved["InvoiceID"], "Status": "DELETED"}]
        )
    )

    assert deleted["Status"] == "DELETED"
    assert refused.messages == [INVALID_STATUS]
    assert org.get_invoice(approved["InvoiceID"])["Status"] == "AUTHORISED"


def test_person_edits_the_lines_of_an_approved_invoice(xero_sandbox, org: Org, customer):
    invoice = org.create_invoice(customer["ContactID"])

    (edited,) = xero_sandbox.xero_user_invoices(
        org.tenant_id,
        [{"InvoiceID": invoice["InvoiceID"], "LineItems": [org.line(unit_amount="200.00")]}],
    )

    assert dec(edited["Total"]) == Decimal("230.00")
    assert dec(org.get_invoice(invoice["InvoiceID"])["AmountDue"]) == Decimal("230.00")


def test_person_cannot_void_an_invoice_with_a_payment(xero_sandbox, org: Org, customer):
    invoice = org.create_invoice(customer["ContactID"])
    org.pay(invoice["InvoiceID"], "10.00")

    refused = refusal(
        lambda: xero_sandbox.xero_user_invoices(
            org.tenant_id, [{"InvoiceID": invoice["InvoiceID"], "Status": "VOIDED"}]
        )
    )

    assert refused.body["ErrorNumber"] == 10
    assert refused.body["Type"] == "ValidationException"
    assert refused.messages == [PAYMENT_ALLOCATED]
    assert org.get_invoice(invoice["InvoiceID"])["Status"] == "AUTHORISED"


def test_person_meets_the_unique_invoice_number_rule(xero_sandbox, org: Org, customer):
    org.create_invoice(customer["ContactID"], InvoiceNumber="CRM-1001")

    refused = refusal(
        lambda: user_invoice(
            xero_sandbox, org, {"ContactID": customer["ContactID"]}, InvoiceNumber="crm-1001"
        )
    )

    assert DUPLICATE_INVOICE_NUMBER in refused.messages


def test_a_number_a_person_took_first_is_refused_to_the_app(xero_sandbox, org: Org, customer):
    other = org.create_contact("Someone Else Ltd")
    user_invoice(xero_sandbox, org, {"ContactID": other["ContactID"]}, InvoiceNumber="CRM-2002")

    response = org.put_invoice(customer["ContactID"], InvoiceNumber="CRM-2002")

    assert_validation_error(response, DUPLICATE_INVOICE_NUMBER)


def test_the_first_refused_invoice_stops_the_rest(xero_sandbox, org: Org, customer):
    contact = {"ContactID": customer["ContactID"]}
    invoices = [
        typed_invoice(org, contact, InvoiceNumber="P-1"),
        typed_invoice(org, contact, InvoiceNumber="P-1"),
        typed_invoice(org, contact, InvoiceNumber="P-3"),
    ]

    status, body = xero_sandbox.control(
        "POST", f"organisations/{org.tenant_id}/invoices", {"invoices": invoices}
    )

    assert status == 400, body
    assert [i["InvoiceNumber"] for i in body["invoices"]] == ["P-1"]
    assert validation_messages(body["Elements"]) == [DUPLICATE_INVOICE_NUMBER]
    numbers = [i["InvoiceNumber"] for i in org.ok(org.get("/Invoices"))["Invoices"]]
    assert sorted(numbers) == ["P-1"]


def test_invoices_body_must_be_a_list_of_objects(xero_sandbox, org: Org):
    status, body = xero_sandbox.control(
        "POST", f"organisations/{org.tenant_id}/invoices", {"invoices": {"Type": "ACCREC"}}
    )

    assert status == 400
    assert body == {"error": "'invoices' must be a list of Xero invoice objects."}


def test_person_invoice_changes_fire_invoice_webhooks(xero_sandbox, org: Org, receiver):
    invoice = user_invoice(xero_sandbox, org, {"Name": "Hooked Customer"}, status="DRAFT")
    xero_sandbox.xero_user_invoices(
        org.tenant_id, [{"InvoiceID": invoice["InvoiceID"], "Status": "DELETED"}]
    )

    events = receiver.wait_for(3)

    kinds = [(e["eventCategory"], e["eventType"], e["resourceId"]) for e in events]
    assert ("INVOICE", "CREATE", invoice["InvoiceID"]) in kinds
    assert ("INVOICE", "UPDATE", invoice["InvoiceID"]) in kinds
    assert ("CONTACT", "CREATE", invoice["Contact"]["ContactID"]) in kinds
    assert all(e["tenantId"] == org.tenant_id for e in events)


# --------------------------------------------------------------------------- payments


def test_person_records_part_then_all_of_the_amount_due(xero_sandbox, org: Org, customer):
    invoice = org.create_invoice(customer["ContactID"])

    first = user_pay(xero_sandbox, org, invoice["InvoiceID"], "15.00")
    partly = org.get_invoice(invoice["InvoiceID"])
    second = user_pay(xero_sandbox, org, invoice["InvoiceID"], "100.00")
    paid = org.get_invoice(invoice["InvoiceID"])

    assert first["PaymentID"] and second["PaymentID"] and first["PaymentID"] != second["PaymentID"]
    assert first["Status"] == "AUTHORISED" and first["IsReconciled"] is False
    assert partly["Status"] == "AUTHORISED"
    assert (dec(partly["AmountPaid"]), dec(partly["AmountDue"])) == (Decimal(15), Decimal(100))
    assert paid["Status"] == "PAID"
    assert (dec(paid["AmountPaid"]), dec(paid["AmountDue"])) == (Decimal(115), Decimal(0))
    assert paid.get("FullyPaidOnDate")
    listed = org.ok(org.get("/Payments"))["Payments"]
    assert {p["PaymentID"] for p in listed} == {first["PaymentID"], second["PaymentID"]}


def test_person_records_a_reconciled_payment_from_the_bank_feed(xero_sandbox, org: Org, customer):
    invoice = org.create_invoice(customer["ContactID"])

    payment = user_pay(xero_sandbox, org, invoice["InvoiceID"], "115.00", IsReconciled=True)

    assert payment["IsReconciled"] is True
    read = org.ok(org.get(f"/Payments/{payment['PaymentID']}"))["Payments"][0]
    assert read["IsReconciled"] is True
    assert read["Invoice"]["InvoiceID"] == invoice["InvoiceID"]


def test_person_payments_meet_xeros_payment_rules(xero_sandbox, org: Org, customer):
    draft = org.create_invoice(customer["ContactID"], status="DRAFT")
    approved = org.create_invoice(customer["ContactID"])

    on_draft = refusal(lambda: user_pay(xero_sandbox, org, draft["InvoiceID"], "1.00"))
    too_much = refusal(lambda: user_pay(xero_sandbox, org, approved["InvoiceID"], "115.01"))

    assert on_draft.messages
    assert too_much.messages == ["Payment amount exceeds the amount outstanding on this document"]
    assert too_much.body["payments"] == []
    assert dec(org.get_invoice(approved["InvoiceID"])["AmountPaid"]) == 0


def test_person_removes_a_payment_and_the_invoice_is_due_again(xero_sandbox, org: Org, customer):
    invoice = org.create_invoice(customer["ContactID"])
    payment = user_pay(xero_sandbox, org, invoice["InvoiceID"], "115.00")
    assert org.get_invoice(invoice["InvoiceID"])["Status"] == "PAID"

    xero_sandbox.xero_user_delete_payment(org.tenant_id, payment["PaymentID"])

    after = org.get_invoice(invoice["InvoiceID"])
    assert after["Status"] == "AUTHORISED"
    assert (dec(after["AmountPaid"]), dec(after["AmountDue"])) == (Decimal(0), Decimal(115))
    assert "FullyPaidOnDate" not in after
    assert after["Payments"] == []
    read = org.ok(org.get(f"/Payments/{payment['PaymentID']}"))["Payments"][0]
    assert read["Status"] == "DELETED"


def test_person_removes_a_payment_the_app_made(xero_sandbox, org: Org, customer):
    invoice = org.create_invoice(customer["ContactID"])
    payment = org.pay(invoice["InvoiceID"], "40.00")

    xero_sandbox.xero_user_delete_payment(org.tenant_id, payment["PaymentID"])

    after = org.get_invoice(invoice["InvoiceID"])
    assert (after["Status"], dec(after["AmountDue"])) == ("AUTHORISED", Decimal(115))


def test_a_reconciled_payment_must_be_unreconciled_before_a_person_removes_it(
    xero_sandbox, org: Org, customer
):
    invoice = org.create_invoice(customer["ContactID"])
    payment = user_pay(xero_sandbox, org, invoice["InvoiceID"], "115.00", IsReconciled=True)

    refused = refusal(
        lambda: xero_sandbox.xero_user_delete_payment(org.tenant_id, payment["PaymentID"])
    )
    assert refused.messages == [PAYMENT_RECONCILED]
    assert org.get_invoice(invoice["InvoiceID"])["Status"] == "PAID"

    (unreconciled,) = xero_sandbox.xero_user_payments(
        org.tenant_id, [{"PaymentID": payment["PaymentID"], "IsReconciled": False}]
    )
    xero_sandbox.xero_user_delete_payment(org.tenant_id, payment["PaymentID"])

    assert unreconciled["IsReconciled"] is False
    assert org.get_invoice(invoice["InvoiceID"])["Status"] == "AUTHORISED"


def test_a_recorded_payment_can_only_be_reconciled_or_unreconciled(
    xero_sandbox, org: Org, customer
):
    invoice = org.create_invoice(customer["ContactID"])
    payment = org.pay(invoice["InvoiceID"], "40.00")

    refused = refusal(
        lambda: xero_sandbox.xero_user_payments(
            org.tenant_id, [{"PaymentID": payment["PaymentID"], "Amount": 10.0}]
        )
    )

    assert refused.messages and "IsReconciled" in refused.messages[0]
    assert dec(org.get_invoice(invoice["InvoiceID"])["AmountPaid"]) == Decimal(40)


def test_removing_an_unknown_payment_is_404(xero_sandbox, org: Org):
    status, body = xero_sandbox.control(
        "DELETE", f"organisations/{org.tenant_id}/payments/6b1f3f9e-0000-4000-8000-000000000000"
    )

    assert status == 404, body


def test_person_payments_fire_invoice_update_webhooks(xero_sandbox, org: Org, customer, receiver):
    invoice = org.create_invoice(customer["ContactID"])
    payment = user_pay(xero_sandbox, org, invoice["InvoiceID"], "15.00")
    xero_sandbox.xero_user_delete_payment(org.tenant_id, payment["PaymentID"])

    events = receiver.wait_for(3)

    updates = [
        e
        for e in events
        if (e["eventCategory"], e["eventType"], e["resourceId"])
        == ("INVOICE", "UPDATE", invoice["InvoiceID"])
    ]
    assert len(updates) == 2, events


# --------------------------------------------------------------------------- the API sees it


def test_if_modified_since_sees_a_persons_payment_and_its_removal(xero_sandbox, org: Org, customer):
    invoice = org.create_invoice(customer["ContactID"])
    untouched = org.create_invoice(customer["ContactID"])
    xero_sandbox.advance_clock(30)
    before_payment = _clock_now(xero_sandbox)
    xero_sandbox.advance_clock(30)

    payment = user_pay(xero_sandbox, org, invoice["InvoiceID"], "115.00")

    invoices = if_modified_since(org, "/Invoices", before_payment)
    assert [(i["InvoiceID"], i["Status"]) for i in invoices] == [(invoice["InvoiceID"], "PAID")]
    payments = if_modified_since(org, "/Payments", before_payment)
    assert [p["PaymentID"] for p in payments] == [payment["PaymentID"]]

    xero_sandbox.advance_clock(30)
    before_removal = _clock_now(xero_sandbox)
    xero_sandbox.advance_clock(30)
    xero_sandbox.xero_user_delete_payment(org.tenant_id, payment["PaymentID"])

    invoices = if_modified_since(org, "/Invoices", before_removal)
    assert [(i["InvoiceID"], i["Status"]) for i in invoices] == [
        (invoice["InvoiceID"], "AUTHORISED")
    ]
    payments = if_modified_since(org, "/Payments", before_removal)
    assert [(p["PaymentID"], p["Status"]) for p in payments] == [(payment["PaymentID"], "DELETED")]
    assert untouched["InvoiceID"] not in [i["InvoiceID"] for i in invoices]


def test_if_modified_since_sees_a_persons_void(xero_sandbox, org: Org, customer):
    invoice = org.create_invoice(customer["ContactID"])
    xero_sandbox.advance_clock(30)
    cutoff = _clock_now(xero_sandbox)
    xero_sandbox.advance_clock(30)

    xero_sandbox.xero_user_invoices(
        org.tenant_id, [{"InvoiceID": invoice["InvoiceID"], "Status": "VOIDED"}]
    )

    invoices = if_modified_since(org, "/Invoices", cutoff)
    assert [(i["InvoiceID"], i["Status"]) for i in invoices] == [(invoice["InvoiceID"], "VOIDED")]


def test_if_modified_since_sees_a_payment_being_reconciled(xero_sandbox, org: Org, customer):
    invoice = org.create_invoice(customer["ContactID"])
    payment = org.pay(invoice["InvoiceID"], "40.00")
    xero_sandbox.advance_clock(30)
    cutoff = _clock_now(xero_sandbox)
    xero_sandbox.advance_clock(30)

    xero_sandbox.xero_user_payments(
        org.tenant_id, [{"PaymentID": payment["PaymentID"], "IsReconciled": True}]
    )

    payments = if_modified_since(org, "/Payments", cutoff)
    assert [(p["PaymentID"], p["IsReconciled"]) for p in payments] == [(payment["PaymentID"], True)]


# --------------------------------------------------------------------------- API refusals


def test_api_refuses_to_delete_a_payment_a_person_reconciled(xero_sandbox, org: Org, customer):
    invoice = org.create_invoice(customer["ContactID"])
    payment = org.pay(invoice["InvoiceID"], "115.00")
    xero_sandbox.xero_user_payments(
        org.tenant_id, [{"PaymentID": payment["PaymentID"], "IsReconciled": True}]
    )

    response = org.post(f"/Payments/{payment['PaymentID']}", {"Status": "DELETED"})

    assert assert_validation_error(response) == [PAYMENT_RECONCILED]
    after = org.get_invoice(invoice["InvoiceID"])
    assert (after["Status"], dec(after["AmountDue"])) == ("PAID", Decimal(0))
    read = org.ok(org.get(f"/Payments/{payment['PaymentID']}"))["Payments"][0]
    assert read["Status"] == "AUTHORISED"


def test_api_refuses_to_delete_a_payment_created_reconciled(org: Org, customer):
    invoice = org.create_invoice(customer["ContactID"])
    created = org.ok(org.put_payment(invoice["InvoiceID"], "50.00", IsReconciled=True))
    payment = created["Payments"][0]
    assert payment["IsReconciled"] is True

    response = org.post(
        f"/Payments/{payment['PaymentID']}",
        {"Payments": [{"PaymentID": payment["PaymentID"], "Status": "DELETED"}]},
    )

    assert assert_validation_error(response) == [PAYMENT_RECONCILED]
    assert dec(org.get_invoice(invoice["InvoiceID"])["AmountPaid"]) == Decimal(50)


def test_api_reads_is_reconciled_as_a_boolean(org: Org, customer):
    invoice = org.create_invoice(customer["ContactID"])

    created = org.ok(org.put_payment(invoice["InvoiceID"], "50.00", IsReconciled="false"))
    refused = org.put_payment(invoice["InvoiceID"], "5.00", IsReconciled="maybe")

    assert created["Payments"][0]["IsReconciled"] is False
    assert refused.status_code == 400
    assert refused.json()["Type"] == "PostDataInvalidException"
