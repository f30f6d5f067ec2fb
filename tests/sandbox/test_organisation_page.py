"""The sandbox's organisation page (/_sandbox/org/{tenant_id}) lets a demo user act as a person
working in Xero: record a payment, void an approved invoice, delete a draft, remove, reconcile
or unreconcile a payment. Over real HTTP, the forms are read from the page and submitted as a
browser submits them (their default values included); Xero's rules apply, a refusal shows
Xero's words on the page, and the webhook events follow as for the control API.
"""

from __future__ import annotations

import re
from decimal import Decimal
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.sandbox.test_accounting_rules import (
    INVALID_STATUS,
    OVERPAYMENT,
    PAYMENT_ALLOCATED,
    Org,
    _clock_now,
    dec,
)
from tests.sandbox.test_webhooks_and_state import KEY, Receiver
from tests.sandbox.test_xero_user import PAYMENT_RECONCILED, user_pay

TIMEOUT = 10


# --------------------------------------------------------------------------- reading the page


class Form:
    """One form of the page, with the values a browser would submit unchanged."""

    def __init__(self, action: str, method: str) -> None:
        self.action = action
        self.method = method
        self.fields: dict[str, str] = {}
        self.checkboxes: dict[str, bool] = {}
        self.buttons: list[str] = []


class PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []
        self.refresh: str | None = None
        self.text: list[str] = []
        self._form: Form | None = None
        self._select: str | None = None
        self._first_option: str | None = None
        self._in_button = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "meta" and a.get("http-equiv", "").lower() == "refresh":
            self.refresh = a.get("content")
        elif tag == "form":
            self._form = Form(a.get("action", ""), a.get("method", "get").lower())
            self.forms.append(self._form)
        elif self._form is None:
            return
        elif tag == "input" and a.get("name"):
            if a.get("type") == "checkbox":
                self._form.checkboxes[a["name"]] = "checked" in a
                if "checked" in a:
                    self._form.fields[a["name"]] = a.get("value", "on")
            else:
                self._form.fields[a["name"]] = a.get("value", "")
        elif tag == "select":
            self._select = a.get("name")
            self._first_option = None
        elif tag == "option" and self._select:
            if self._first_option is None:
                self._first_option = a.get("value", "")
                self._form.fields[self._select] = self._first_option
            if "selected" in a:
                self._form.fields[self._select] = a.get("value", "")
        elif tag == "button":
            self._in_button = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None
        elif tag == "select":
            self._select = None
        elif tag == "button":
            self._in_button = False

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._in_button and self._form is not None and data.strip():
            self._form.buttons.append(data.strip())


class Page:
    def __init__(self, response: requests.Response) -> None:
        self.response = response
        self.html = response.text
        parser = PageParser()
        parser.feed(self.html)
        self.forms = parser.forms
        self.refresh = parser.refresh
        self.text = re.sub(r"\s+", " ", " ".join(parser.text))

    def form(self, action_ending: str) -> Form:
        found = [f for f in self.forms if f.action.endswith(action_ending)]
        assert len(found) == 1, (action_ending, [f.action for f in self.forms])
        return found[0]

    def row_is_marked(self, row_id: str) -> bool:
        """Whether the row is marked as the one just changed."""
        return f"<tr id='{row_id}' class='changed'>" in self.html

    def has_form(self, action_ending: str) -> bool:
        return any(f.action.endswith(action_ending) for f in self.forms)


def org_page(xs, tenant_id: str, query: str = "") -> Page:
    response = requests.get(f"{xs.url}/_sandbox/org/{tenant_id}{query}", timeout=TIMEOUT)
    assert response.status_code == 200, (response.status_code, response.text[:500])
    assert response.headers["Content-Type"].startswith("text/html")
    return Page(response)


def submit(xs, form: Form, **changes: str | None) -> requests.Response:
    """Post the form as a browser does: its values, with ``changes`` typed over them (None
    clears a field, e.g. unticks a checkbox)."""
    assert form.method == "post"
    data = dict(form.fields)
    for name, value in changes.items():
        if value is None:
            data.pop(name, None)
        else:
            data[name] = value
    return requests.post(xs.url + form.action, data=data, allow_redirects=False, timeout=TIMEOUT)


def follow(xs, response: requests.Response) -> Page:
    """The page a 303 leads back to."""
    assert response.status_code == 303, (response.status_code, response.text[:500])
    location = response.headers["Location"]
    assert location.startswith("/_sandbox/org/")
    return Page(requests.get(xs.url + location, timeout=TIMEOUT))


def refused_page(response: requests.Response, status: int = 400) -> Page:
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.headers["Content-Type"].startswith("text/html")
    assert "Traceback" not in response.text
    return Page(response)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def customer(org: Org) -> dict:
    return org.create_contact("Harbour Cafe Ltd")


@pytest.fixture
def invoice(org: Org, customer: dict) -> dict:
    """An approved invoice of 115.00 (100.00 + GST 15%) with nothing paid."""
    return org.create_invoice(customer["ContactID"], InvoiceNumber="INV-0042")


@pytest.fixture
def receiver(xero_sandbox):
    endpoint = Receiver()
    assert xero_sandbox.register_webhook(endpoint.url, KEY)["status"] == "OK"
    yield endpoint
    endpoint.close()


def invoice_updates(receiver: Receiver, invoice_id: str, count: int) -> list[dict]:
    deadline_events = receiver.wait_for(count)
    return [
        e
        for e in deadline_events
        if (e["eventCategory"], e["eventType"], e["resourceId"])
        == ("INVOICE", "UPDATE", invoice_id)
    ]


# --------------------------------------------------------------------------- record a payment


def test_the_payment_form_offers_the_amount_due_today_and_a_bank_account(
    xero_sandbox, org: Org, invoice
):
    org.pay(invoice["InvoiceID"], "15.00")
    xero_sandbox.advance_clock(3 * 24 * 3600)
    today = _clock_now(xero_sandbox).date()

    form = org_page(xero_sandbox, org.tenant_id).form(
        f"/_sandbox/org/{org.tenant_id}/invoices/{invoice['InvoiceID']}/payments"
    )

    assert form.method == "post"
    assert form.fields["amount"] == "100.00"
    assert form.fields["date"] == today.isoformat()
    assert form.fields["account_id"] == org.bank_account()["AccountID"]
    assert form.fields["reference"] == ""
    assert form.checkboxes == {"reconciled": False}
    assert form.buttons == ["Record payment"]


def test_recording_the_amount_due_from_the_page_pays_the_invoice(
    xero_sandbox, org: Org, invoice, receiver
):
    page = org_page(xero_sandbox, org.tenant_id)
    form = page.form(f"/invoices/{invoice['InvoiceID']}/payments")
    calls_before = xero_sandbox.requests(org.tenant_id)

    answer = submit(xero_sandbox, form, reference="Bank feed 4471", reconciled="true")

    location = urlsplit(answer.headers["Location"])
    assert location.path == f"/_sandbox/org/{org.tenant_id}"
    after = follow(xero_sandbox, answer)
    # A person in Xero, not an app: no API call is logged or counted.
    assert xero_sandbox.requests(org.tenant_id) == calls_before
    assert "Payment of 115.00 NZD recorded against INV-0042 (reconciled)." in after.text
    assert "INV-0042 is PAID with 0.00 due." in after.text
    paid = org.get_invoice(invoice["InvoiceID"])
    assert paid["Status"] == "PAID"
    assert (dec(paid["AmountPaid"]), dec(paid["AmountDue"])) == (Decimal(115), Decimal(0))
    (payment,) = org.ok(org.get("/Payments"))["Payments"]
    assert parse_qs(location.query) == {"done": ["paid"], "id": [payment["PaymentID"]]}
    assert after.row_is_marked(f"invoice-{invoice['InvoiceID']}")
    assert after.row_is_marked(f"payment-{payment['PaymentID']}")
    assert dec(payment["Amount"]) == Decimal(115)
    assert payment["Reference"] == "Bank feed 4471"
    assert payment["IsReconciled"] is True
    assert payment["Account"]["AccountID"] == org.bank_account()["AccountID"]
    assert len(invoice_updates(receiver, invoice["InvoiceID"], 1)) == 1
    # Paid in full: nothing more to pay, and an invoice with a payment cannot be voided.
    assert not after.has_form(f"/invoices/{invoice['InvoiceID']}/payments")
    assert not after.has_form(f"/invoices/{invoice['InvoiceID']}/void")


def test_a_part_payment_on_a_chosen_date_leaves_the_rest_due(xero_sandbox, org: Org, invoice):
    form = org_page(xero_sandbox, org.tenant_id).form(f"/invoices/{invoice['InvoiceID']}/payments")

    after = follow(xero_sandbox, submit(xero_sandbox, form, amount="40", date="2026-03-09"))

    assert "INV-0042 is AUTHORISED with 75.00 due." in after.text
    (payment,) = org.ok(org.get("/Payments"))["Payments"]
    assert payment["IsReconciled"] is False
    assert dec(payment["Amount"]) == Decimal(40)
    assert payment["Date"] == "/Date(1773014400000+0000)/"  # 2026-03-09
    again = after.form(f"/invoices/{invoice['InvoiceID']}/payments")
    assert again.fields["amount"] == "75.00"


def test_an_overpayment_is_refused_in_xeros_words_and_keeps_what_was_typed(
    xero_sandbox, org: Org, invoice
):
    form = org_page(xero_sandbox, org.tenant_id).form(f"/invoices/{invoice['InvoiceID']}/payments")

    page = refused_page(
        submit(xero_sandbox, form, amount="115.01", reference="<b>cheque</b>", reconciled="true")
    )

    assert "Xero refused: could not record the payment" in page.text
    assert OVERPAYMENT in page.text
    again = page.form(f"/invoices/{invoice['InvoiceID']}/payments")
    assert again.fields["amount"] == "115.01"
    assert again.fields["reference"] == "<b>cheque</b>"
    assert again.checkboxes == {"reconciled": True}
    assert "<b>cheque</b>" not in page.html  # what was typed is shown as text
    assert "<details open>" in page.html
    unpaid = org.get_invoice(invoice["InvoiceID"])
    assert (unpaid["Status"], dec(unpaid["AmountDue"])) == ("AUTHORISED", Decimal(115))
    assert org.ok(org.get("/Payments"))["Payments"] == []


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"amount": ""}, "Amount must be specified."),
        ({"amount": "0"}, "The payment amount must be greater than zero."),
        ({"amount": "lots"}, "Error converting value \"lots\" to type 'Decimal'."),
        ({"date": "09/03/2026"}, "Error converting value \"09/03/2026\" to type 'DateTime'."),
        ({"account_id": ""}, "Account must be valid."),
    ],
)
def test_a_payment_xero_cannot_take_shows_its_message(
    xero_sandbox, org: Org, invoice, changes, message
):
    form = org_page(xero_sandbox, org.tenant_id).form(f"/invoices/{invoice['InvoiceID']}/payments")

    page = refused_page(submit(xero_sandbox, form, **changes))

    assert message in page.text
    assert dec(org.get_invoice(invoice["InvoiceID"])["AmountPaid"]) == 0


def test_a_payment_dated_in_a_locked_period_is_refused(xero_sandbox, make_org):
    org = make_org(period_lock_date="2026-03-31")
    customer = org.create_contact("Locked Period Ltd")
    invoice = org.create_invoice(customer["ContactID"], Date="2026-04-02", DueDate="2026-05-01")
    form = org_page(xero_sandbox, org.tenant_id).form(f"/invoices/{invoice['InvoiceID']}/payments")

    page = refused_page(submit(xero_sandbox, form, date="2026-03-31"))

    assert (
        "The document date cannot be before the period lock date, currently set at 31-Mar-2026"
        in page.text
    )
    assert org.get_invoice(invoice["InvoiceID"])["Status"] == "AUTHORISED"


def test_a_payment_form_left_open_after_the_invoice_was_paid_meets_xeros_rule(
    xero_sandbox, org: Org, invoice
):
    form = org_page(xero_sandbox, org.tenant_id).form(f"/invoices/{invoice['InvoiceID']}/payments")
    user_pay(xero_sandbox, org, invoice["InvoiceID"], "115.00")

    page = refused_page(submit(xero_sandbox, form))

    assert OVERPAYMENT in page.text
    assert len(org.ok(org.get("/Payments"))["Payments"]) == 1


# --------------------------------------------------------------------------- void and delete


def test_voiding_an_approved_invoice_from_the_page(xero_sandbox, org: Org, invoice, receiver):
    page = org_page(xero_sandbox, org.tenant_id)
    assert not page.has_form(f"/invoices/{invoice['InvoiceID']}/delete")
    form = page.form(f"/invoices/{invoice['InvoiceID']}/void")
    assert form.buttons == ["Void"]

    after = follow(xero_sandbox, submit(xero_sandbox, form))

    assert "INV-0042 voided." in after.text
    voided = org.get_invoice(invoice["InvoiceID"])
    assert (voided["Status"], dec(voided["AmountDue"])) == ("VOIDED", Decimal(0))
    assert len(invoice_updates(receiver, invoice["InvoiceID"], 1)) == 1
    assert not [f for f in after.forms if invoice["InvoiceID"] in f.action]


def test_an_invoice_with_a_payment_offers_no_void_and_xero_refuses_one(
    xero_sandbox, org: Org, invoice
):
    org.pay(invoice["InvoiceID"], "10.00")
    page = org_page(xero_sandbox, org.tenant_id)
    assert not page.has_form(f"/invoices/{invoice['InvoiceID']}/void")

    response = requests.post(
        f"{xero_sandbox.url}/_sandbox/org/{org.tenant_id}/invoices/{invoice['InvoiceID']}/void",
        timeout=TIMEOUT,
        allow_redirects=False,
    )

    refused = refused_page(response)
    assert "Xero refused: could not void the invoice" in refused.text
    assert PAYMENT_ALLOCATED in refused.text
    assert org.get_invoice(invoice["InvoiceID"])["Status"] == "AUTHORISED"


def test_deleting_a_draft_from_the_page(xero_sandbox, org: Org, customer, receiver):
    draft = org.create_invoice(customer["ContactID"], status="DRAFT", InvoiceNumber="DRAFT-7")
    page = org_page(xero_sandbox, org.tenant_id)
    assert not page.has_form(f"/invoices/{draft['InvoiceID']}/payments")
    assert not page.has_form(f"/invoices/{draft['InvoiceID']}/void")
    form = page.form(f"/invoices/{draft['InvoiceID']}/delete")
    assert form.buttons == ["Delete"]

    after = follow(xero_sandbox, submit(xero_sandbox, form))

    assert "DRAFT-7 deleted." in after.text
    assert org.get_invoice(draft["InvoiceID"])["Status"] == "DELETED"
    assert len(invoice_updates(receiver, draft["InvoiceID"], 1)) == 1


def test_an_approved_invoice_cannot_be_deleted(xero_sandbox, org: Org, invoice):
    response = requests.post(
        f"{xero_sandbox.url}/_sandbox/org/{org.tenant_id}/invoices/{invoice['InvoiceID']}/delete",
        timeout=TIMEOUT,
        allow_redirects=False,
    )

    assert INVALID_STATUS in refused_page(response).text
    assert org.get_invoice(invoice["InvoiceID"])["Status"] == "AUTHORISED"


def test_an_unknown_invoice_is_refused_on_the_page(xero_sandbox, org: Org):
    unknown = "6b1f3f9e-0000-4000-8000-000000000000"
    response = requests.post(
        f"{xero_sandbox.url}/_sandbox/org/{org.tenant_id}/invoices/{unknown}/void",
        timeout=TIMEOUT,
        allow_redirects=False,
    )

    assert "could not be found" in refused_page(response).text


# --------------------------------------------------------------------------- payments


def test_removing_a_payment_from_the_page_makes_the_invoice_due_again(
    xero_sandbox, org: Org, invoice, receiver
):
    payment = org.pay(invoice["InvoiceID"], "115.00")
    page = org_page(xero_sandbox, org.tenant_id)
    form = page.form(f"/payments/{payment['PaymentID']}/remove")
    assert form.buttons == ["Remove payment"]

    answer = submit(xero_sandbox, form)

    after = follow(xero_sandbox, answer)
    assert after.row_is_marked(f"payment-{payment['PaymentID']}")
    assert "Payment of 115.00 NZD against INV-0042 removed." in after.text
    assert "INV-0042 is AUTHORISED with 115.00 due." in after.text
    due = org.get_invoice(invoice["InvoiceID"])
    assert (due["Status"], dec(due["AmountDue"])) == ("AUTHORISED", Decimal(115))
    read = org.ok(org.get(f"/Payments/{payment['PaymentID']}"))["Payments"][0]
    assert read["Status"] == "DELETED"
    assert not after.has_form(f"/payments/{payment['PaymentID']}/remove")
    assert after.has_form(f"/invoices/{invoice['InvoiceID']}/payments")
    # One event for the app's payment, one for its removal.
    assert len(invoice_updates(receiver, invoice["InvoiceID"], 2)) == 2


def test_a_reconciled_payment_is_unreconciled_before_it_is_removed(
    xero_sandbox, org: Org, invoice, receiver
):
    payment = user_pay(xero_sandbox, org, invoice["InvoiceID"], "115.00", IsReconciled=True)
    receiver.wait_for(1)
    page = org_page(xero_sandbox, org.tenant_id)

    refused = refused_page(
        submit(xero_sandbox, page.form(f"/payments/{payment['PaymentID']}/remove"))
    )
    assert "Xero refused: could not remove the payment" in refused.text
    assert PAYMENT_RECONCILED in refused.text
    assert org.get_invoice(invoice["InvoiceID"])["Status"] == "PAID"

    unreconciled = follow(
        xero_sandbox,
        submit(xero_sandbox, refused.form(f"/payments/{payment['PaymentID']}/unreconcile")),
    )
    assert "marked unreconciled" in unreconciled.text
    assert (
        org.ok(org.get(f"/Payments/{payment['PaymentID']}"))["Payments"][0]["IsReconciled"] is False
    )
    assert unreconciled.has_form(f"/payments/{payment['PaymentID']}/reconcile")

    follow(
        xero_sandbox,
        submit(xero_sandbox, unreconciled.form(f"/payments/{payment['PaymentID']}/remove")),
    )
    assert org.get_invoice(invoice["InvoiceID"])["Status"] == "AUTHORISED"
    # The payment recorded, then removed; (un)reconciling sends no event.
    updates = invoice_updates(receiver, invoice["InvoiceID"], 2)
    assert len(updates) == 2, receiver.events


def test_reconciling_a_payment_from_the_page(xero_sandbox, org: Org, invoice):
    payment = org.pay(invoice["InvoiceID"], "40.00")
    form = org_page(xero_sandbox, org.tenant_id).form(f"/payments/{payment['PaymentID']}/reconcile")

    after = follow(xero_sandbox, submit(xero_sandbox, form))

    assert "marked reconciled" in after.text
    assert (
        org.ok(org.get(f"/Payments/{payment['PaymentID']}"))["Payments"][0]["IsReconciled"] is True
    )


def test_removing_an_unknown_payment_shows_a_not_found_page(xero_sandbox, org: Org):
    unknown = "6b1f3f9e-0000-4000-8000-000000000000"
    response = requests.post(
        f"{xero_sandbox.url}/_sandbox/org/{org.tenant_id}/payments/{unknown}/remove",
        timeout=TIMEOUT,
        allow_redirects=False,
    )

    assert f"No payment {unknown}" in refused_page(response, 404).text


# --------------------------------------------------------------------------- the page itself


def test_the_forms_are_post_only(xero_sandbox, org: Org, invoice):
    for action in ("payments", "void", "delete"):
        response = requests.get(
            f"{xero_sandbox.url}/_sandbox/org/{org.tenant_id}/invoices/{invoice['InvoiceID']}/"
            f"{action}",
            timeout=TIMEOUT,
            allow_redirects=False,
        )
        assert response.status_code == 405, (action, response.status_code)
        assert response.headers["Allow"] == "POST"
    assert org.get_invoice(invoice["InvoiceID"])["Status"] == "AUTHORISED"
    assert all(f.method == "post" for f in org_page(xero_sandbox, org.tenant_id).forms)


def test_an_unknown_page_action_is_404(xero_sandbox, org: Org, invoice):
    response = requests.post(
        f"{xero_sandbox.url}/_sandbox/org/{org.tenant_id}/invoices/{invoice['InvoiceID']}/approve",
        timeout=TIMEOUT,
    )

    assert response.status_code == 404


def test_the_page_with_forms_keeps_still_and_watching_it_refreshes_without_forms(
    xero_sandbox, org: Org, invoice
):
    acting = org_page(xero_sandbox, org.tenant_id)
    watching = org_page(xero_sandbox, org.tenant_id, "?watch=1")

    assert acting.refresh is None
    assert acting.forms
    assert "watch it" in acting.text
    assert watching.refresh == "10"
    assert watching.forms == []
    assert "INV-0042" in watching.text
    assert "Stop refreshing" in watching.text
    index = Page(requests.get(f"{xero_sandbox.url}/_sandbox/", timeout=TIMEOUT))
    assert index.refresh == "10"


def test_invoices_and_payments_have_anchors(xero_sandbox, org: Org, invoice):
    payment = org.pay(invoice["InvoiceID"], "10.00")

    page = org_page(xero_sandbox, org.tenant_id)

    assert f"<tr id='invoice-{invoice['InvoiceID']}'>" in page.html
    assert f"<tr id='payment-{payment['PaymentID']}'>" in page.html


def test_the_page_acts_on_the_short_code_too(xero_sandbox, org: Org, invoice):
    response = requests.post(
        f"{xero_sandbox.url}/_sandbox/org/{org.short_code}/invoices/{invoice['InvoiceID']}/void",
        timeout=TIMEOUT,
        allow_redirects=False,
    )

    assert response.status_code == 303
    assert urlsplit(response.headers["Location"]).path == f"/_sandbox/org/{org.tenant_id}"
    assert org.get_invoice(invoice["InvoiceID"])["Status"] == "VOIDED"


def test_a_notice_for_something_unknown_is_left_out(xero_sandbox, org: Org, invoice):
    page = org_page(xero_sandbox, org.tenant_id, "?done=paid&id=nothing")

    assert "role='status'" not in page.html
