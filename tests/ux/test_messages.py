"""The two voices: every known Xero refusal and every reason a job waits or fails has a plain
sentence for users (translatable) and a technical text for staff; an unknown refusal is shown
in Xero's own words."""

from __future__ import annotations

import pytest
from django.utils.functional import Promise

from xero_integration import messages
from xero_integration.models import SyncJob, SyncLog

TRANSPORT_DETAILS = ("Xero answered", "correlation id", "PUT /", "api.xro", "tenant", "retry after")

#: Refusals Xero documents (Xero's API documentation) that a CRM user's data can cause.
DOCUMENTED_REFUSALS = [
    "Invoice # must be unique.",
    "Invoice not of valid status for modification",
    "This document cannot be edited as it has a payment or credit note allocated to it.",
    "The document date cannot be before the end of year lock date, currently set at 30-Sep-2021",
    "Account code '476' is not a valid code for this document.",
    "Account must be valid.",
    "Tax rate must be valid.",
    "The TaxType code 'OUTPUT' cannot be used with account code '200'.",
    "The discount rate '27.83' is invalid. Discount must not be greater than the line total.",
    "You have reached the limit of invoices you can approve.",
    "Organisation is not subscribed to currency EUR",
    "The contact with the specified contact details has been archived. The contact must be "
    "un-archived before creating new invoices or credit notes.",
    "The contact name Buzz Lightyear is already assigned to another contact. The contact name "
    "must be unique across all active contacts.",
    "Payment amount exceeds the amount outstanding on this document",
    "The Contact must contain at least 1 of the following elements to identify the contact: "
    "Name, ContactID, ContactNumber",
]


def user_and_staff(row: messages.Meaning) -> tuple[str, str]:
    return str(row.user), row.staff


@pytest.mark.parametrize("row", messages.TABLE + (messages.UNKNOWN_REFUSAL,), ids=lambda r: r.code)
def test_every_row_has_a_translatable_user_sentence_and_a_staff_text(row) -> None:
    user, staff = user_and_staff(row)
    assert isinstance(row.user, Promise), (
        f"{row.code}: the user's sentence is not marked for translation"
    )
    assert len(user) > 10 and len(staff) > 10
    assert user != staff
    for detail in TRANSPORT_DETAILS:
        assert detail not in user, (row.code, detail)


@pytest.mark.parametrize(
    "row,example", messages.every_text(), ids=lambda v: getattr(v, "code", None) or v[:30]
)
def test_each_example_text_is_read_by_its_own_row(row, example) -> None:
    reason = row.reasons[0] if row.reasons else SyncJob.Reason.REFUSED
    found, _ = messages.meaning_of(reason, example)
    assert found.code == row.code


@pytest.mark.parametrize("refusal", DOCUMENTED_REFUSALS)
def test_every_documented_xero_refusal_has_both_texts(refusal) -> None:
    wrapped = (
        f"Xero answered 400 to PUT /api.xro/2.0/Invoices (ValidationException): "
        f"LineItems[0]: {refusal} [correlation id 8c2a6b2e]"
    )
    for text in (refusal, wrapped):
        explanation = messages.explain(SyncJob.Reason.REFUSED, text, "INV-1")
        assert explanation.known, text
        assert explanation.user and explanation.staff
        for detail in TRANSPORT_DETAILS:
            assert detail not in explanation.user


@pytest.mark.parametrize("reason", [r for r in SyncJob.Reason.values if r])
def test_every_reason_a_job_waits_or_fails_for_has_both_texts(reason) -> None:
    explanation = messages.explain(reason, "", "INV-1")
    assert explanation.user and explanation.staff
    if reason != SyncJob.Reason.REFUSED:
        assert explanation.known


def sandbox_refusals() -> list[str]:
    """Every refusal text the sandbox's invoice, payment and contact rules can answer with:
    the messages given to ``errors.add`` and ``Invalid``, and its ``MSG_`` constants (a value
    formatted into the text reads "X")."""
    import ast
    from pathlib import Path

    import xero_integration.sandbox.accounting as accounting

    def placeholder(part: ast.expr) -> str:
        # A value formatted into the text: a currency code, or a number (a limit, a date).
        expression = ast.unparse(part.value) if isinstance(part, ast.FormattedValue) else ""
        return "USD" if "urrenc" in expression else "12"

    def text_of(node: ast.expr) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.JoinedStr):
            return "".join(text_of(part) or placeholder(part) for part in node.values)
        return None

    found = []
    for name in ("invoices.py", "payments.py", "contacts.py"):
        tree = ast.parse((Path(accounting.__file__).parent / name).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and node.args:
                callee = node.func
                called = (
                    callee.attr if isinstance(callee, ast.Attribute) else getattr(callee, "id", "")
                )
                if called in ("add", "Invalid") and (text := text_of(node.args[0])):
                    found.append(text)
            elif (
                isinstance(node, ast.Assign)
                and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id.startswith("MSG_")
                and (text := text_of(node.value))
            ):
                found.append(text)
    return found


def test_every_sandbox_refusal_of_what_the_crm_sends_is_known() -> None:
    """The sandbox words its refusals as Xero does; each that a CRM invoice, its contact or
    its payments can meet is in the table."""
    # Refusals of requests the integration never makes (the sandbox checks them for other
    # clients): items, types, account numbers, contact persons, creates with an id.
    never_sent = (
        "Item code",
        "Invoice Type",
        "Type cannot be changed",
        "DiscountRate or a DiscountAmount",
        "Discounts can only be applied",
        "Account Number",
        "contact persons",
        "could not be found. Provide",
        "Amount must be specified",
        "greater than zero",
        "of valid status for creation",
        "marked as sent to the contact",
        "The contact name must be specified",
        "Invoice with the specified InvoiceID",
        "created with an",
        "created with a ContactID",
        "Only reconciled",
        "Only Status accepted",
        # Settled by the run itself, never left on a job.
        "already been deleted",
    )
    checked = [r for r in sandbox_refusals() if not any(part in r for part in never_sent)]
    unknown = [r for r in checked if not messages.explain(SyncJob.Reason.REFUSED, r).known]
    assert unknown == []
    assert len(checked) >= 15


def test_an_unknown_refusal_is_shown_in_xeros_own_words() -> None:
    error = (
        "Xero answered 400 to PUT /api.xro/2.0/Invoices (ValidationException): LineItems[0]: "
        "Tracking category is archived.; LineItems[1]: Tracking category is archived. "
        "[correlation id 01234567-89ab]"
    )
    explanation = messages.explain(SyncJob.Reason.REFUSED, error, "INV-9")
    assert not explanation.known
    assert "“Tracking category is archived.”" in explanation.user
    assert explanation.user.count("Tracking category") == 1
    for detail in TRANSPORT_DETAILS:
        assert detail not in explanation.user


def test_transport_details_never_reach_the_user() -> None:
    waits = [
        (
            SyncJob.Reason.UNANSWERED,
            "Xero answered 500 to PUT /api.xro/2.0/Invoices: HTTP 500 [correlation id abc]",
        ),
        (
            SyncJob.Reason.RATE_LIMIT,
            "Waiting for Xero's rate limit: Xero day budget for tenant 894076c8-1d2e is used "
            "up; retry after 85877.0 s",
        ),
        (
            SyncJob.Reason.UNAVAILABLE,
            "Xero's tax rates changed; reading them again. (Tax rate must be valid. Tax rate "
            "must be valid.)",
        ),
        (
            SyncJob.Reason.SETUP,
            "Choose the revenue account for invoice lines in Settings → Integrations → Xero, "
            "then retry.",
        ),
    ]
    codes = []
    for reason, error in waits:
        explanation = messages.explain(reason, error)
        codes.append(explanation.code)
        for detail in (*TRANSPORT_DETAILS, "85877", "Tax rate must be valid"):
            assert detail not in explanation.user, (reason, explanation.user)
    assert codes == ["xero_server_error", "day_limit", "reference_data_changed", "default_accounts"]


def test_values_caught_by_a_row_fill_its_sentence() -> None:
    explanation = messages.explain(
        SyncJob.Reason.SETUP, "Organisation is not subscribed to currency USD"
    )
    assert "in USD" in explanation.user and "Add USD in Xero" in explanation.user
    taken = messages.explain(SyncJob.Reason.NUMBER_TAKEN, "Invoice # must be unique.", "INV-0042")
    assert "numbered INV-0042" in taken.user


def test_user_sentences_follow_the_active_language() -> None:
    from django.utils.functional import Promise

    # Lazy: each sentence is translated when shown, in the language active then, not once
    # in whichever language was active when the module was imported.
    assert all(isinstance(row.user, Promise) for row in messages.TABLE)


def test_xero_words_strip_our_wrapper_and_paths() -> None:
    assert (
        messages.xero_words(
            "Xero refused the contact: Xero answered 400 to PUT /api.xro/2.0/Contacts "
            "(ValidationException): Email address must be valid. [correlation id x]"
        )
        == "Email address must be valid."
    )
    assert (
        messages.xero_words("[1].LineItems[0]: Account must be valid.") == "Account must be valid."
    )


@pytest.mark.django_db
def test_recent_activity_holds_user_events_only() -> None:
    key = "acct"
    for action, outcome, message in [
        ("PUT /api.xro/2.0/Invoices", SyncLog.Outcome.FAILED, "Invoices INV-1"),
        ("GET /api.xro/2.0/Contacts", SyncLog.Outcome.OK, "contacts page 1"),
        ("invoice_sync", SyncLog.Outcome.INFO, "Invoice INV-1: Xero answered 500 to PUT /Invoices"),
        ("load_accounts", SyncLog.Outcome.OK, ""),
        ("connect", SyncLog.Outcome.OK, "Connected to Demo Company (NZ)."),
        ("invoice_sync", SyncLog.Outcome.OK, "Invoice INV-2"),
        (
            "invoice_sync",
            SyncLog.Outcome.FAILED,
            "Invoice INV-3: Xero answered 400 to PUT /api.xro/2.0/Invoices (ValidationException): "
            "LineItems[0]: Tax rate must be valid. [correlation id 1]",
        ),
    ]:
        SyncLog.objects.create(account_key=key, action=action, outcome=outcome, message=message)
    activity = messages.user_activity(key)
    assert [a.what for a in activity] == [
        "Invoice not sent to Xero",
        "Invoice sent to Xero",
        "Connected to Xero",
    ]
    failed = activity[0]
    assert failed.failed
    assert failed.detail.startswith("Invoice INV-3: A tax on this invoice")
    for item in activity:
        for detail in TRANSPORT_DETAILS:
            assert detail not in item.detail
