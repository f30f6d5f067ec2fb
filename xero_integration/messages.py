"""What a sync problem means, in two voices.

Users of the CRM read one plain sentence: what is wrong and what to do (translatable). Staff
read the technical meaning in admin, beside Xero's message as it came. One table holds both
texts for each of the integration's own waits and failures and each Xero refusal it knows; a
refusal it does not know is shown to users in Xero's own words, without the transport details.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.utils.functional import Promise
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from xero_integration.models import SyncJob, SyncLog

Reason = SyncJob.Reason


@dataclass(frozen=True)
class Meaning:
    """One row of the table: which texts it covers and what each voice says about them.

    ``pattern`` is searched in the job's error text (None: any text); ``reasons`` limits the row
    to jobs that waited or failed for one of those reasons (empty: any). ``user`` and ``staff``
    may name the pattern's groups and ``{number}`` (the invoice's number) in braces.
    ``examples`` are texts the row is for, exactly as Xero (or the integration) words them.
    """

    code: str
    user: str | Promise
    staff: str
    pattern: re.Pattern[str] | None = None
    reasons: tuple[str, ...] = ()
    examples: tuple[str, ...] = ()
    #: True for refusals in Xero's words; False for the integration's own texts and waits.
    from_xero: bool = False
    #: What the refusal tells the sync to do besides failing (see outcomes.py): ``refresh:…``
    #: (a copy of Xero's reference data is out of date: read it again and retry), or ``done``
    #: (what was asked is so already).
    effect: str = ""

    def matches(self, reason: str, text: str) -> re.Match[str] | bool:
        if self.reasons and reason not in self.reasons:
            return False
        if self.pattern is None:
            return True
        return self.pattern.search(text) or False


def _p(expression: str) -> re.Pattern[str]:
    return re.compile(expression, re.IGNORECASE)


NUMBER_TAKEN_USER = _(
    "Xero already has an invoice numbered {number}. Give this invoice another number and save "
    "it; if Xero's invoice is this one, an admin links the two."
)
NUMBER_TAKEN_STAFF = (
    "Xero holds another sales invoice with this InvoiceNumber (numbers are unique in Xero). If "
    "it is this invoice, made by an earlier create whose answer was lost, choose “Link to the "
    "invoice already in Xero”; otherwise the CRM invoice is renumbered, then Retry."
)

RECONNECT_USER = _(
    "Waiting for the Xero connection: it goes once an owner or admin reconnects in Settings → "
    "Integrations → Xero."
)
RECONNECT_STAFF = (
    "The connection is disconnected or needs re-authorisation (invalid_grant, 403). The job "
    "waits without a time and runs after the reconnect."
)

#: Xero's refusals the integration knows, in Xero's words. Field paths and our transport
#: wrapper around them ("Xero answered 400 to PUT /Invoices …") do not matter: rows search.
XERO_REFUSALS: tuple[Meaning, ...] = (
    Meaning(
        "number_taken",
        NUMBER_TAKEN_USER,
        NUMBER_TAKEN_STAFF,
        _p(r"Invoice # must be unique|Xero already has invoice number"),
        examples=(
            "Invoice # must be unique.",
            "Xero already has invoice number INV-0042: an AUTHORISED invoice to Acme Ltd for "
            "NZD 115.00. It was not sent by this CRM invoice, so it is left as it is.",
        ),
        from_xero=True,
    ),
    Meaning(
        "lock_date",
        _(
            "The invoice's date is in a period that is closed in Xero. Change the invoice date, "
            "or ask your accountant to move the lock date in Xero, then save the invoice."
        ),
        "The document date is on or before the organisation's period or end-of-year lock date "
        "(Xero's Settings → Advanced → Financial settings). Redate the CRM invoice or move the "
        "lock date in Xero, then Retry.",
        _p(r"cannot be before the (?:end of year |period )?lock date"),
        examples=(
            "The document date cannot be before the end of year lock date, currently set at "
            "30-Sep-2021",
            "The document date cannot be before the period lock date, currently set at 31-Mar-2026",
        ),
        from_xero=True,
    ),
    Meaning(
        "tax_rate",
        _(
            "A tax on this invoice has no usable tax rate in Xero. An admin maps the tax to a "
            "Xero tax rate; the invoice is sent after that."
        ),
        "Xero refused the line's TaxType: it is unknown, inactive, or not allowed with the "
        "revenue account. Map the CRM tax to an existing rate (Xero tax rate mappings), then "
        "Retry. (Cached tax rates are read again on the first refusals.)",
        _p(r"Tax rate must be valid|The TaxType code .* cannot be used with account code"),
        examples=(
            "Tax rate must be valid.",
            "The TaxType code 'OUTPUT2' cannot be used with account code '200'.",
        ),
        from_xero=True,
        effect="refresh:tax_rates",
    ),
    Meaning(
        "account_invalid",
        _(
            "An account chosen for Xero is no longer usable there. Choose the default accounts "
            "again in Settings → Integrations → Xero, then press Sync now."
        ),
        "The revenue AccountCode or the payment AccountID is archived, deleted or not allowed "
        "for this document in Xero. Reload the accounts and choose the defaults again, then "
        "Retry.",
        _p(
            r"Account code .* is not a valid code for this document|Account must be valid|"
            r"Payments can only be made to accounts of type BANK"
        ),
        examples=(
            "Account code '4000' is not a valid code for this document.",
            "Account must be valid.",
            "Payments can only be made to accounts of type BANK or to accounts with payments "
            "enabled (EnablePaymentsToAccount).",
        ),
        from_xero=True,
        effect="refresh:accounts",
    ),
    Meaning(
        "currency",
        _(
            "This invoice is in {code}, which the Xero organisation has not added. Add {code} "
            "in Xero (Settings → Currencies; it needs a plan with multi-currency), then press "
            "Sync now."
        ),
        "The organisation is not subscribed to this currency and the integration could not "
        "add it (no multi-currency in the plan, or PUT /Currencies refused). Add it in Xero, "
        "then Retry.",
        _p(r"not subscribed to currency (?P<code>[A-Z]{3})"),
        examples=("Organisation is not subscribed to currency USD",),
        from_xero=True,
        effect="refresh:currencies",
    ),
    Meaning(
        "archived_contact",
        _(
            "The invoice's contact is archived in Xero. Restore the contact in Xero, then press "
            "Sync now."
        ),
        "The linked Xero contact is ARCHIVED; Xero takes no new invoice for it. Un-archive it "
        "in Xero (or relink the CRM contact in Xero contact links), then Retry.",
        _p(r"has been archived\. The contact must be un-archived"),
        examples=(
            "The contact with the specified contact details has been archived. The contact "
            "must be un-archived before creating new invoices or credit notes.",
        ),
        from_xero=True,
        effect="refresh:contacts",
    ),
    Meaning(
        "contact_name_taken",
        _(
            "Another contact in Xero already has this contact's name. Give the contact a "
            "distinct name in the CRM, then save the invoice again."
        ),
        "Creating the Xero contact failed: contact names are unique among ACTIVE contacts. "
        "Rename one, or link the CRM contact to the existing Xero contact (Xero contact "
        "links), then Retry.",
        _p(r"is already assigned to another contact"),
        examples=(
            "The contact name Buzz Lightyear is already assigned to another contact. The "
            "contact name must be unique across all active contacts.",
        ),
        from_xero=True,
    ),
    Meaning(
        "contact_email",
        _(
            "Xero does not accept the contact's email address. Correct it on the contact, then "
            "save the invoice again."
        ),
        "Xero refused the contact's EmailAddress (invalid, or not plain ASCII).",
        _p(r"Email address must be valid"),
        examples=("Email address must be valid.",),
        from_xero=True,
    ),
    Meaning(
        "contact_unidentified",
        _(
            "The invoice's contact could not be found in Xero. An admin checks the contact's "
            "link to Xero, then retries."
        ),
        "The invoice carried no ContactID, ContactNumber or Name Xero could use, or the linked "
        "contact is gone. Check the Xero contact link of the CRM contact, then Retry.",
        _p(
            r"The Contact must contain at least 1 of the following elements|The contact with "
            r"the specified (?:ContactID|ContactNumber) could not be found"
        ),
        examples=(
            "The Contact must contain at least 1 of the following elements to identify the "
            "contact: Name, ContactID, ContactNumber",
            "The contact with the specified ContactID could not be found.",
        ),
        from_xero=True,
    ),
    Meaning(
        "payment_allocated",
        _(
            "This invoice has a payment in Xero, so Xero does not let it change. Remove the "
            "payment in Xero first if the change is needed."
        ),
        "Xero refuses edits to a document with a payment or credit note allocated. Remove the "
        "allocation in Xero, then Retry; or mark the job resolved to keep Xero's version.",
        _p(r"has a payment or credit note allocated"),
        examples=(
            "This document cannot be edited as it has a payment or credit note allocated to it.",
        ),
        from_xero=True,
    ),
    Meaning(
        "not_modifiable",
        _(
            "Xero no longer lets this invoice change (it is paid, voided or deleted there). "
            "Open it in Xero to see why."
        ),
        "The invoice's status in Xero does not allow this change (for example AUTHORISED → "
        "DELETED, or any change to VOIDED/DELETED). The run reads Xero's copy on this refusal.",
        _p(r"not of valid status for modification"),
        examples=("Invoice not of valid status for modification",),
        from_xero=True,
    ),
    Meaning(
        "payment_missing",
        _(
            "A payment the CRM sent is no longer in Xero. An admin checks the invoice's "
            "payments in Xero, then retries."
        ),
        "Deleting or reading a payment by its PaymentID found nothing: someone removed it in "
        "Xero. Check the payment links of the invoice, then Retry.",
        _p(r"Payment with the specified PaymentID could not be found"),
        examples=("The Payment with the specified PaymentID could not be found.",),
        from_xero=True,
    ),
    Meaning(
        "payment_already_deleted",
        _("A payment was already removed in Xero; nothing more to do for it."),
        "Xero says the payment is deleted already (an earlier delete whose answer was lost, or "
        "someone removed it in Xero); the sync counts the delete as done.",
        _p(r"payment has already been deleted"),
        examples=("This payment has already been deleted.",),
        from_xero=True,
        effect="done",
    ),
    Meaning(
        "overpayment",
        _(
            "The payments recorded in the CRM are more than Xero says is still due on this "
            "invoice. Check the invoice's payments in the CRM and in Xero."
        ),
        "A payment's Amount exceeds the invoice's AmountDue in Xero (often a payment recorded "
        "on both sides). Compare the payments, remove the duplicate, then Retry.",
        _p(r"Payment amount exceeds the amount outstanding"),
        examples=("Payment amount exceeds the amount outstanding on this document",),
        from_xero=True,
    ),
    Meaning(
        "payment_unapproved",
        _(
            "Xero takes payments only on sent invoices. Send the invoice in the CRM, then the "
            "payment follows."
        ),
        "PUT /Payments refused: the invoice is not AUTHORISED in Xero (still DRAFT or SUBMITTED).",
        _p(r"Payments can only be made against approved"),
        examples=("Payments can only be made against approved (AUTHORISED) documents.",),
        from_xero=True,
    ),
    Meaning(
        "payment_reconciled",
        _(
            "A payment of this invoice is reconciled in Xero, so the CRM cannot remove it. "
            "Unreconcile it in Xero, then press Sync now."
        ),
        "Deleting the payment was refused: it is reconciled to a bank statement line in Xero.",
        _p(r"cannot be deleted as it has been reconciled"),
        examples=("This payment cannot be deleted as it has been reconciled.",),
        from_xero=True,
    ),
    Meaning(
        "discount",
        _(
            "A line's discount is larger than the line's amount. Correct the discount and save "
            "the invoice."
        ),
        "A line's DiscountRate or DiscountAmount exceeds the line total.",
        _p(r"Discount must not be greater than the line total|The discount rate .* is invalid"),
        examples=(
            "The discount rate '27.83' is invalid. Discount must not be greater than the line "
            "total.",
        ),
        from_xero=True,
    ),
    Meaning(
        "approval_limit",
        _(
            "The Xero plan's limit of approved invoices is reached. Upgrade the plan in Xero or "
            "wait for next month, then ask an admin to retry."
        ),
        "The organisation's plan caps approved invoices per month; AUTHORISED is refused until "
        "the plan changes or the month turns.",
        _p(r"reached the limit of invoices you can approve"),
        examples=("You have reached the limit of invoices you can approve.",),
        from_xero=True,
    ),
    Meaning(
        "due_date",
        _("Xero needs a due date to approve an invoice. Add a due date and save the invoice."),
        "An invoice cannot be AUTHORISED without a DueDate.",
        _p(r"Due Date is required to approve|needs a due date to approve"),
        examples=(
            "Due Date is required to approve an invoice.",
            "Xero needs a due date to approve an invoice.",
        ),
        from_xero=True,
    ),
    Meaning(
        "line_description",
        _(
            "Every line needs an item name or a description in Xero. Fill it in and save the "
            "invoice."
        ),
        "A line item has no Description (the CRM's item name and description are both empty).",
        _p(r"description field is mandatory|needs an item name or a description"),
        examples=(
            "The description field is mandatory for each line item.",
            "Line 2 needs an item name or a description.",
        ),
        from_xero=True,
    ),
    Meaning(
        "no_lines",
        _("Xero needs at least one line on an invoice. Add a line and save the invoice."),
        "The invoice has no line items.",
        _p(r"must have at least one line item|needs at least one line on an invoice"),
        examples=(
            "An invoice must have at least one line item.",
            "Xero needs at least one line on an invoice.",
        ),
        from_xero=True,
    ),
    Meaning(
        "negative_total",
        _(
            "Xero does not take an invoice with a total below zero. Correct the lines, or "
            "record a credit note in Xero instead."
        ),
        "Invoice Total < 0; Xero wants a credit note for that.",
        _p(r"total must be zero or more"),
        examples=("The invoice total must be zero or more.",),
        from_xero=True,
    ),
    Meaning(
        "too_long",
        _(
            "A value on this invoice is longer than Xero allows. Shorten it (the message in "
            "admin says which) and save the invoice."
        ),
        "A field exceeds Xero's maximum length; the message names the field and the limit.",
        _p(r"must not be longer than \d+ characters|Xero allows .*characters"),
        examples=(
            "The InvoiceNumber must not be longer than 255 characters.",
            "Xero allows invoice numbers of 255 characters.",
        ),
        from_xero=True,
    ),
)

#: The integration's own waits and failures, by the job's reason (a pattern picks a variant).
OUR_REASONS: tuple[Meaning, ...] = (
    Meaning(
        "default_accounts",
        _(
            "Waiting for the default accounts: an owner or admin chooses them in Settings → "
            "Integrations → Xero, and the invoice is sent then."
        ),
        "No revenue account (or payment account) is chosen for the connection. Jobs that "
        "failed for it are queued again when the accounts are saved.",
        _p(r"revenue account|account payments go to"),
        reasons=(Reason.SETUP,),
        examples=(
            "Choose the revenue account for invoice lines in Settings → Integrations → Xero, "
            "then retry.",
            "Choose the account payments go to in Settings → Integrations → Xero, then retry.",
        ),
    ),
    Meaning(
        "unmapped_tax",
        _(
            "The tax “{tax}” has no Xero tax rate yet. An admin maps it to one, then the "
            "invoice is sent."
        ),
        "XERO_CREATE_TAX_RATES is off and no Xero rate matches this CRM tax's components. Map "
        "it in admin (Xero tax rate mappings), then Retry.",
        _p(r"No Xero tax rate matches the CRM tax “(?P<tax>[^”]+)”"),
        reasons=(Reason.SETUP,),
        examples=(
            "No Xero tax rate matches the CRM tax “Luxury 33%”. Map it to a Xero tax rate in "
            "admin (Xero tax rate mappings), then retry.",
        ),
    ),
    Meaning(
        "tax_mapping_review",
        _(
            "The tax “{tax}” changed since an admin chose its Xero tax rate. An admin checks "
            "the rate, then the invoice is sent."
        ),
        "Staff mapped this CRM tax by hand at another rate; the mapping is flagged "
        "(needs review) in admin's Xero tax rate mappings. Save it again, then Retry.",
        _p(r"The CRM tax “(?P<tax>[^”]+)” is .* staff mapped it"),
        reasons=(Reason.SETUP,),
        examples=(
            "The CRM tax “VAT” is 12.5% now; staff mapped it to Xero's 15% GST on Income "
            "(OUTPUT2) when it was 15%. Check the mapping in admin (Xero tax rate mappings) and "
            "save it again, then retry.",
        ),
    ),
    Meaning(
        "untaxed_rate",
        _(
            "Xero has no tax rate for untaxed lines in this organisation. An admin chooses one, "
            "then the invoice is sent."
        ),
        "The organisation has no 0% revenue rate that means no tax; choose one on the "
        "connection in admin (tax rate for untaxed lines), then Retry.",
        _p(r"no tax rate for lines without a tax"),
        reasons=(Reason.SETUP,),
        examples=(
            "The organisation has no tax rate for lines without a tax (0%, for revenue). "
            "Choose one in admin (the Xero connection's “tax rate for untaxed lines”), then "
            "retry.",
        ),
    ),
    Meaning(
        "adapter",
        _(
            "The CRM could not read this invoice to send it to Xero ({error}). Its developers "
            "or an admin need to look at it."
        ),
        "The host's adapter raised while reading the invoice (load_invoice, should_sync or "
        "to_invoice); after three tries the job fails. The worker's log has the traceback. "
        "Fix the adapter or the invoice, then save the invoice or Retry.",
        _p(r"The CRM's adapter raised (?P<error>.+?)(?: \(after \d+ tries|$)"),
        reasons=(Reason.ADAPTER,),
        examples=("The CRM's adapter raised ValueError: unknown status 'weird'",),
    ),
    Meaning(
        "adapter",
        _("The CRM could not read this invoice to send it to Xero. An admin can see why."),
        "The host's adapter raised while reading the invoice; the worker's log has the traceback.",
        reasons=(Reason.ADAPTER,),
    ),
    Meaning(
        "needs_fix",
        _("Xero would refuse this invoice as it is: {detail} Fix it in the CRM and save it."),
        "The pre-flight check found what Xero would refuse (no call was made); the fields are "
        "listed with the job. A save of the invoice sends it again.",
        reasons=(Reason.NEEDS_FIX,),
        examples=("Line 1: the discount 45.00 is larger than the line (40.00); Xero refuses it.",),
    ),
    Meaning(
        "setup",
        _("Xero needs something set up before this invoice can go. An admin can see what."),
        "The job failed for want of set-up (reason “setup”); the message says what.",
        reasons=(Reason.SETUP,),
    ),
    Meaning(
        "reconnect",
        RECONNECT_USER,
        RECONNECT_STAFF,
        _p(r"not connected to Xero|to be reconnected to Xero|needs reconnecting"),
        examples=(
            "This CRM account is not connected to Xero.",
            "The Xero connection needs reconnecting.",
        ),
    ),
    Meaning(
        "reconnect",
        RECONNECT_USER,
        RECONNECT_STAFF,
        reasons=(Reason.RECONNECT,),
        examples=("Waiting for the CRM account to be reconnected to Xero.",),
    ),
    Meaning(
        "day_limit",
        _(
            "Xero's daily limit for this organisation is used up. The CRM sends it by itself "
            "when Xero's day resets; nothing to do."
        ),
        "The organisation's daily call budget (5,000, or the plan's) is spent; the job waits "
        "until Xero's day resets (Retry-After, or a probe every 15 minutes).",
        _p(r"\bday\b"),
        reasons=(Reason.RATE_LIMIT,),
        examples=(
            "Waiting for Xero's rate limit: Xero day budget for tenant 894076c8 is used up; "
            "retry after 85877.0 s",
            "Waiting for Xero's rate limit: Xero answered 429: rate limit 'day' exceeded, retry "
            "after 85877 s",
        ),
    ),
    Meaning(
        "rate_limit",
        _("Xero asked the CRM to slow down. It is sent by itself in a few minutes; nothing to do."),
        "The per-minute or concurrent-call limit was reached (429, or the local limiter); the "
        "job waits for Retry-After.",
        reasons=(Reason.RATE_LIMIT,),
        examples=(
            "Waiting for Xero's rate limit: Xero minute budget for tenant 894076c8 is used up; "
            "retry after 12.0 s",
        ),
    ),
    Meaning(
        "reference_data_changed",
        _(
            "Xero's tax rates, accounts or currencies changed. The CRM reads them again and "
            "retries by itself; nothing to do."
        ),
        "Xero refused with a message that means our cached reference data is stale; it was "
        "dropped and the job retries with new Idempotency-Keys (at most twice).",
        _p(r"changed; reading them again"),
        examples=(
            "Xero's tax rates changed; reading them again. (Tax rate must be valid. Tax rate "
            "must be valid.)",
        ),
    ),
    Meaning(
        "settling",
        _("Sending to Xero…"),
        "The run learnt something of Xero's side and goes on at once (adopting an earlier "
        "create, settling a changed copy, voiding instead of deleting).",
        _p(r"updating it next|settling it|voiding it instead"),
        examples=(
            "Found the invoice made earlier; updating it next.",
            "Xero's copy changed; settling it.",
            "The invoice was approved in Xero; voiding it instead.",
        ),
    ),
    Meaning(
        "xero_server_error",
        _("Xero is not answering right now. The CRM tries again by itself; nothing to do."),
        "Xero answered with a server error (5xx); the job retries with backoff (doubling from "
        "XERO_RETRY_BASE_SECONDS to an hour). Xero's correlation id is in the message.",
        _p(r"Xero answered 5\d\d"),
        reasons=(Reason.UNAVAILABLE, Reason.UNANSWERED),
        examples=(
            "Xero answered 500 to PUT /api.xro/2.0/Invoices: HTTP 500 [correlation id 1a2b]",
        ),
    ),
    Meaning(
        "unavailable",
        _("Xero is not answering right now. The CRM tries again by itself; nothing to do."),
        "Xero answered 5xx/503 or refused access for a moment; the job retries with backoff "
        "(doubling from XERO_RETRY_BASE_SECONDS to an hour).",
        reasons=(Reason.UNAVAILABLE,),
        examples=("Xero refused access to the organisation: Xero answered 403: Forbidden",),
    ),
    Meaning(
        "unanswered",
        _(
            "Xero did not answer the last change. The CRM checks what arrived and carries on by "
            "itself; nothing to do."
        ),
        "A write timed out or its answer was lost: the next run settles it from Xero's side "
        "(by number, fingerprint or payment list) before sending anything again.",
        reasons=(Reason.UNANSWERED,),
        examples=("Timed out after 30 s waiting for Xero",),
    ),
    Meaning(
        "deleted_in_xero",
        _(
            "This invoice was deleted in Xero, so changes made in the CRM no longer reach it. "
            "An admin can send it to Xero again as a new invoice."
        ),
        "Xero's copy is DELETED. Use “Send again as a new Xero invoice” to create it afresh, "
        "or mark the job resolved.",
        _p(r"was deleted in Xero"),
        reasons=(Reason.CHANGED_IN_XERO,),
        examples=(
            "This invoice was deleted in Xero, so Xero accepts no change to it; it was changed "
            "in the CRM since.",
        ),
    ),
    Meaning(
        "voided_in_xero",
        _(
            "This invoice was voided in Xero, so changes made in the CRM no longer reach it. If "
            "it is still owed, create a new invoice with another number."
        ),
        "Xero's copy is VOIDED and Xero keeps its number; a new CRM invoice with another "
        "number is needed. Mark the job resolved once handled.",
        _p(r"was voided in Xero"),
        reasons=(Reason.CHANGED_IN_XERO,),
        examples=(
            "This invoice was voided in Xero, so Xero accepts no change to it; it was changed "
            "in the CRM since.",
        ),
    ),
    Meaning(
        "payment_recorded_in_xero",
        _(
            "Someone recorded a payment on this invoice in Xero, so Xero cannot void it. Remove "
            "that payment in Xero, then press Sync now."
        ),
        "Xero holds payments the CRM did not send; the integration never deletes those. They "
        "must be removed (or refunded) in Xero before the void, then Retry.",
        _p(r"did not come from the CRM"),
        reasons=(Reason.CHANGED_IN_XERO,),
        examples=(
            "Xero has a payment on this invoice that did not come from the CRM (50.00 on "
            "2026-11-02).",
        ),
    ),
    Meaning(
        "changed_in_xero",
        _(
            "This invoice was changed in Xero since the CRM sent it, so the CRM's change was not "
            "sent. Open it in Xero to compare, then ask an admin."
        ),
        "Xero's side changed in a way the run will not overwrite; the message says what.",
        reasons=(Reason.CHANGED_IN_XERO,),
    ),
    Meaning("number_taken", NUMBER_TAKEN_USER, NUMBER_TAKEN_STAFF, reasons=(Reason.NUMBER_TAKEN,)),
    Meaning(
        "crashed",
        _(
            "Something went wrong in the CRM while sending this invoice. It tries again by "
            "itself; if it keeps failing, an admin can see the details."
        ),
        "An unexpected exception in the run (a bug); the job retries with backoff and the "
        "worker's log has the traceback.",
        reasons=(Reason.CRASHED,),
        examples=("Unexpected error: KeyError: 'Contact'",),
    ),
)

#: Any refusal the table does not know: Xero's own words are the user's sentence.
UNKNOWN_REFUSAL = Meaning(
    "unknown_refusal",
    _(
        "Xero did not accept this invoice: “{xero}” Correct it in the CRM and save, or ask "
        "an admin."
    ),
    "Xero's refusal is not one the integration knows; Xero's message above is all there is. Fix "
    "the data, then Retry.",
)

#: Every row, in the order they are tried: the integration's own texts first (some quote a
#: refusal of Xero's that they have already dealt with), then Xero's refusals (a known refusal
#: says more than the reason a job was given), then what each reason means by itself.
TABLE: tuple[Meaning, ...] = (
    tuple(row for row in OUR_REASONS if row.pattern is not None)
    + XERO_REFUSALS
    + tuple(row for row in OUR_REASONS if row.pattern is None)
)


@dataclass(frozen=True)
class Explanation:
    """What one job's trouble means: ``user`` (plain, in the active language) and ``staff``."""

    code: str
    user: str
    staff: str
    #: False when the table did not know the text and the user reads Xero's own words.
    known: bool = True


def meaning_of(reason: str, error: str) -> tuple[Meaning, dict[str, str]]:
    """The table's row for a reason and an error text, with the values its pattern caught."""
    for row in TABLE:
        found = row.matches(reason, error)
        if found:
            groups = found.groupdict() if isinstance(found, re.Match) else {}
            return row, {k: v for k, v in groups.items() if v}
    return UNKNOWN_REFUSAL, {}


def explain(reason: str, error: str, number: str = "") -> Explanation:
    """Both voices for a job that waited or failed for ``reason`` with ``error``."""
    row, values = meaning_of(reason, error)
    values = {"number": number or gettext("this number"), "detail": error.strip(), **values}
    if row is UNKNOWN_REFUSAL:
        values["xero"] = xero_words(error) or gettext("no message")
    return Explanation(
        code=row.code,
        user=_format(row.user, values),
        staff=_format(row.staff, values),
        known=row is not UNKNOWN_REFUSAL,
    )


def explain_job(job: SyncJob) -> Explanation:
    """Both voices for a sync job's current trouble."""
    return explain(job.reason, job.error, job.number)


def _format(text: str | Promise, values: Mapping[str, str]) -> str:
    return str(text).format_map(_Missing(values))


class _Missing(dict):
    """Leaves a placeholder the text names but the values lack as it is, rather than failing."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


_TRANSPORT = re.compile(
    r"^(?:Xero refused the contact: |Xero refused access to the organisation: |Waiting for "
    r"Xero's rate limit: |Unexpected error: )*Xero answered \d{3}(?: to [A-Z]+ \S+)?"
    r"(?: \([A-Za-z]+\))?: "
)
_CORRELATION = re.compile(r"\s*\[correlation id [^\]]*\]")
# A field path before a message: "LineItems[0]: ", "[1].Contact: ", "[2]: ".
_PATH = re.compile(
    r"^(?:\[\d+\](?:\.[A-Z]\w*(?:\[\d+\])?)*|[A-Z]\w*(?:\[\d+\])?(?:\.[A-Z]\w*(?:\[\d+\])?)*): "
)


def xero_words(error: str) -> str:
    """Xero's own message out of a recorded error: without our transport wrapper ("Xero
    answered 400 to PUT /Invoices (ValidationException): "), the correlation id, the field
    paths, and the repeats of one message for several lines."""
    text = _TRANSPORT.sub("", error.strip())
    text = _CORRELATION.sub("", text)
    text = re.sub(r"^Xero refused the contact: ", "", text)
    seen: list[str] = []
    for part in text.split("; "):
        part = _PATH.sub("", part, count=1).strip()
        if part and part not in seen:
            seen.append(part)
    return " ".join(seen)


# ---- recent activity: what users did and what happened to their invoices ---------------------


@dataclass(frozen=True)
class Activity:
    """One line of a user's recent activity."""

    when: Any
    what: str
    detail: str
    failed: bool


#: Sync log actions that are user events, and how each is named (when it worked, when it did
#: not). Calls to Xero (``GET /…``), waits and internal steps are for staff only.
USER_EVENTS: dict[str, tuple[str | Promise, str | Promise]] = {
    "connect": (_("Connected to Xero"), _("Connecting to Xero failed")),
    "disconnect_requested": (_("Disconnected"), _("Disconnected")),
    "disconnect": (_("Disconnected in Xero"), _("Telling Xero about the disconnect failed")),
    "needs_reconnect": (_("Xero asks for a reconnect"), _("Xero asks for a reconnect")),
    "connect_expired": (_("Unfinished connection cancelled"), _("Unfinished connection cancelled")),
    "load_accounts": (_("Accounts read from Xero"), _("Reading the accounts from Xero failed")),
    "default_accounts": (_("Default accounts saved"), _("Default accounts saved")),
    "contact_import": (_("Contacts imported from Xero"), _("Importing contacts failed")),
    "invoice_sync": (_("Invoice sent to Xero"), _("Invoice not sent to Xero")),
    "invoice_adopted": (_("Invoice found in Xero"), _("Invoice found in Xero")),
    "invoice_removed": (_("Invoice removed in Xero"), _("Invoice removed in Xero")),
    "payments_removed": (_("Payments removed in Xero"), _("Payments removed in Xero")),
    "invoice_linked_by_staff": (_("Invoice linked by staff"), _("Invoice linked by staff")),
    "invoice_sent_again": (_("Invoice sent again"), _("Invoice sent again")),
    "xero_changes": (_("Change made in Xero"), _("Change made in Xero not applied")),
    "backfill": (_("Earlier invoices"), _("Earlier invoices")),
    "alert": (_("Email alert sent"), _("Email alert sent")),
}

#: Outcomes that are not user events for an action (a sync that waits will run again).
QUIET: dict[str, tuple[str, ...]] = {
    "invoice_sync": (SyncLog.Outcome.INFO,),
    "load_accounts": (SyncLog.Outcome.OK, SyncLog.Outcome.INFO),
}

_INVOICE_PREFIX = re.compile(r"^(Invoices? [^:]*): (.*)$", re.DOTALL)


def user_activity(account_key: str, limit: int = 10) -> list[Activity]:
    """The account's latest user events, newest first, in plain words."""
    from django.db.models import Q

    quiet = Q()
    for action, outcomes in QUIET.items():
        quiet |= Q(action=action, outcome__in=outcomes)
    logs = (
        SyncLog.objects.filter(account_key=account_key, action__in=list(USER_EVENTS))
        .exclude(quiet)
        .only("created_at", "action", "outcome", "message")[:limit]
    )
    return [describe(log) for log in logs]


def describe(log: SyncLog) -> Activity:
    """One sync log entry as a user event: its name and a plain detail."""
    worked, failed_name = USER_EVENTS.get(log.action, (log.action, log.action))
    failed = log.outcome == SyncLog.Outcome.FAILED
    detail = log.message
    if log.action == "invoice_sync" and failed:
        match = _INVOICE_PREFIX.match(log.message)
        subject, error = (match.group(1), match.group(2)) if match else ("", log.message)
        number = subject.split(" ", 1)[1] if " " in subject else ""
        reason = (log.details or {}).get("reason") or _reason_of_text(error)
        sentence = explain(reason, error, number).user
        detail = f"{subject}: {sentence}" if subject else sentence
    elif failed:
        detail = xero_words(log.message)
    return Activity(
        when=log.created_at,
        what=str(failed_name if failed else worked),
        detail=detail,
        failed=failed,
    )


def _reason_of_text(error: str) -> str:
    """A failed run's log keeps the text, not the reason: the rows that need one get it back
    from the text (these are the only failures our own code words)."""
    for row in OUR_REASONS:
        if row.pattern is not None and row.reasons and row.pattern.search(error):
            return row.reasons[0]
    return Reason.REFUSED


def every_text(rows: Iterable[Meaning] = TABLE) -> list[tuple[Meaning, str]]:
    """Each row with each of its examples (for tests and documentation)."""
    return [(row, example) for row in rows for example in row.examples]
