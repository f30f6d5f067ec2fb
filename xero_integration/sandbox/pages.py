"""Human pages: what a demo user looks at to see what arrived "in Xero", and the forms with
which they act as a person working in Xero (record or remove a payment, void, delete)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from html import escape
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .core import Sandbox
    from .state import Organisation

WATCH_SECONDS = 10

_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:0;background:#f4f6f8;color:#1e272e}"
    "header{background:#13b5ea;color:#fff;padding:.8rem 1.5rem}header a{color:#fff}"
    "main{padding:1rem 1.5rem}table{border-collapse:collapse;background:#fff;margin:.5rem 0 1.5rem;"
    "width:100%}th,td{border:1px solid #d5dbe0;padding:.35rem .5rem;text-align:left;"
    "font-size:.9rem;vertical-align:top}th{background:#eef2f5}td.num{text-align:right;"
    "font-variant-numeric:tabular-nums}.status{font-weight:600}.muted{color:#6b7780}"
    "tr:target td,tr.changed td{background:#e6f6ea}"
    ".notice,.refusal{padding:.6rem .9rem;margin:.5rem 0 1rem;border-radius:4px}"
    ".notice{background:#e6f6ea;border:1px solid #9bd3a9}"
    ".refusal{background:#fdecea;border:1px solid #f1a7a1}.refusal ul{margin:.3rem 0 0}"
    "form.act{display:inline-block;margin:0 .3rem .3rem 0}"
    "details summary{cursor:pointer;color:#0b7fa8}"
    "details form{display:grid;grid-template-columns:auto 1fr;gap:.3rem .5rem;margin:.4rem 0;"
    "min-width:18rem}details form button{grid-column:2;justify-self:start}"
    "button{font:inherit;font-size:.85rem;padding:.15rem .6rem;cursor:pointer}"
    "button.danger{color:#b3261e}"
)


def _layout(title: str, body: str, refresh_seconds: int | None = WATCH_SECONDS) -> str:
    refresh = f"<meta http-equiv='refresh' content='{refresh_seconds}'>" if refresh_seconds else ""
    return (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)}"
        f"</title>{refresh}<style>{_STYLE}</style></head><body>"
        f"<header><a href='/_sandbox/'>Xero sandbox</a> · {escape(title)}</header>"
        f"<main>{body}</main></body></html>"
    )


def _table(
    headers: list[str],
    rows: list[list[str]],
    numeric: set[int] | None = None,
    *,
    table_id: str | None = None,
    row_ids: list[str] | None = None,
    highlighted: set[str] | None = None,
) -> str:
    numeric = numeric or set()
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    table = f"<table id='{escape(table_id)}'>" if table_id else "<table>"
    if not rows:
        return (
            f"{table}<tr>{head}</tr><tr><td colspan='{len(headers)}' class='muted'>None yet"
            "</td></tr></table>"
        )
    body = "".join(
        _row_start(row_ids[n] if row_ids else None, highlighted or set())
        + "".join(
            f"<td class='num'>{cell}</td>" if i in numeric else f"<td>{cell}</td>"
            for i, cell in enumerate(row)
        )
        + "</tr>"
        for n, row in enumerate(rows)
    )
    return f"{table}<tr>{head}</tr>{body}</table>"


def _row_start(row_id: str | None, highlighted: set[str]) -> str:
    if row_id is None:
        return "<tr>"
    changed = " class='changed'" if row_id in highlighted else ""
    return f"<tr id='{escape(row_id)}'{changed}>"


def index(sandbox: Sandbox) -> str:
    rows = [
        [
            f"<a href='/_sandbox/org/{escape(o.tenant_id)}'>{escape(o.name)}</a>",
            escape(o.country_code),
            escape(o.base_currency),
            "yes" if o.multicurrency else "no",
            str(len(o.contacts)),
            str(len(o.invoices)),
            escape(o.tenant_id),
        ]
        for o in sandbox.organisations.values()
    ]
    apps = [
        [
            escape(a.name),
            escape(a.client_id),
            "PKCE" if a.is_pkce else "web app",
            str(sum(1 for c in sandbox.connections.values() if c.client_id == a.client_id)),
        ]
        for a in sandbox.apps.values()
    ]
    return _layout(
        "Organisations",
        "<h2>Organisations</h2>"
        + _table(
            [
                "Name",
                "Country",
                "Base currency",
                "Multi-currency",
                "Contacts",
                "Invoices",
                "Tenant id",
            ],
            rows,
        )
        + "<h2>Apps</h2>"
        + _table(["Name", "Client id", "Type", "Connections"], apps)
        + "<p class='muted'>Control API: see docs/sandbox.md. This page refreshes every 10 s.</p>",
    )


def _money(value) -> str:
    return escape(f"{value:,.2f}")


# ---- acting as a person in Xero ------------------------------------------------------------


@dataclass
class Refusal:
    """A change Xero refused, shown on the organisation page instead of saved."""

    action: str
    messages: list[str]
    #: The invoice whose payment form is shown open again, with what was typed in it.
    invoice_id: str | None = None
    typed: dict[str, str] = field(default_factory=dict)


def refusal_messages(body: Any) -> list[str]:
    """Every message of a refusal in Xero's words: the ``ValidationErrors`` of its elements
    (nested ones included) or, for a value Xero cannot read, its ``Message``."""
    messages: list[str] = []

    def collect(value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if key == "ValidationErrors" and isinstance(item, list):
                    messages.extend(
                        str(e["Message"]) for e in item if isinstance(e, dict) and e.get("Message")
                    )
                else:
                    collect(item)
        elif isinstance(value, list):
            for item in value:
                collect(item)

    if isinstance(body, dict):
        collect(body.get("Elements"))
        if not messages:
            message = body.get("Message") or body.get("error") or body.get("Detail")
            if message:
                messages.append(str(message))
    return messages or ["Xero refused the change."]


def _invoice_label(invoice: dict) -> str:
    number = invoice.get("InvoiceNumber")
    if number:
        return str(number)
    return f"the invoice to {invoice['Contact'].get('Name', '')}".rstrip()


def _notice(org: Organisation, done: str, object_id: str) -> str:
    """What the change just made did, told from the organisation's state."""
    if done in ("paid", "removed", "reconciled", "unreconciled"):
        payment = org.payments.get(object_id.lower())
        if payment is None:
            return ""
        invoice = org.invoices.get(payment["Invoice"]["InvoiceID"])
        label = (
            _invoice_label(invoice)
            if invoice
            else payment["Invoice"].get("InvoiceNumber") or "its invoice"
        )
        amount = f"{_money(payment['Amount'])} {escape(payment['Invoice'].get('CurrencyCode', ''))}"
        state = (
            f" {escape(label)} is {escape(invoice['Status'])} with {_money(invoice['AmountDue'])}"
            " due."
            if invoice
            else ""
        )
        if done == "paid":
            reconciled = " (reconciled)" if payment.get("IsReconciled") else ""
            return (
                f"Payment of {amount} recorded against {escape(label)}{reconciled}.{state} "
                "Xero sends the INVOICE UPDATE webhook event."
            )
        if done == "removed":
            return (
                f"Payment of {amount} against {escape(label)} removed.{state} "
                "Xero sends the INVOICE UPDATE webhook event."
            )
        return (
            f"Payment of {amount} against {escape(label)} marked {done} (Xero sends no webhook "
            "event for this)."
        )
    if done in ("voided", "deleted"):
        invoice = org.invoices.get(object_id.lower())
        if invoice is None:
            return ""
        label = _invoice_label(invoice)
        return (
            f"{escape(label[:1].upper() + label[1:])} {done}. "
            "Xero sends the INVOICE UPDATE webhook event."
        )
    return ""


def _changed_rows(org: Organisation, object_id: str) -> set[str]:
    """The rows of the invoice or payment just changed (a payment's invoice too)."""
    payment = org.payments.get(object_id.lower())
    if payment is not None:
        return {f"payment-{payment['PaymentID']}", f"invoice-{payment['Invoice']['InvoiceID']}"}
    invoice = org.invoices.get(object_id.lower())
    return {f"invoice-{invoice['InvoiceID']}"} if invoice is not None else set()


def _button(action: str, label: str, danger: bool = False) -> str:
    css = " class='danger'" if danger else ""
    return (
        f"<form class='act' method='post' action='{escape(action)}'>"
        f"<button type='submit'{css}>{escape(label)}</button></form>"
    )


def _payment_form(
    base: str, invoice: dict, accounts: list[dict], today: date, typed: dict[str, str] | None
) -> str:
    """Xero's "Record a payment" box: amount (the amount due), date (today), paid to,
    reference and whether it is reconciled already (from the bank feed)."""
    values = typed or {}
    amount = values.get("amount", f"{invoice['AmountDue']:.2f}")
    paid_on = values.get("date", today.isoformat())
    reference = values.get("reference", "")
    chosen = values.get("account_id", accounts[0]["AccountID"] if accounts else "")
    reconciled = " checked" if values.get("reconciled") else ""
    options = "".join(
        f"<option value='{escape(a['AccountID'])}'"
        f"{' selected' if a['AccountID'] == chosen else ''}>"
        f"{escape(' '.join(filter(None, [a.get('Code'), a['Name']])))}</option>"
        for a in accounts
    )
    key = escape(invoice["InvoiceID"])
    return (
        f"<details{' open' if typed is not None else ''}><summary>Record a payment</summary>"
        f"<form method='post' action='{escape(base)}/invoices/{key}/payments'>"
        f"<label for='amount-{key}'>Amount paid</label>"
        f"<input id='amount-{key}' name='amount' type='number' step='0.01' "
        f"value='{escape(amount)}'>"
        f"<label for='date-{key}'>Date paid</label>"
        f"<input id='date-{key}' name='date' type='date' value='{escape(paid_on)}'>"
        f"<label for='account-{key}'>Paid to</label>"
        f"<select id='account-{key}' name='account_id'>{options}</select>"
        f"<label for='reference-{key}'>Reference</label>"
        f"<input id='reference-{key}' name='reference' value='{escape(reference)}'>"
        f"<label for='reconciled-{key}'>Reconciled</label>"
        f"<span><input id='reconciled-{key}' name='reconciled' type='checkbox' value='true'"
        f"{reconciled}> matched to the bank statement</span>"
        "<button type='submit'>Record payment</button></form></details>"
    )


def _invoice_actions(
    base: str,
    invoice: dict,
    accounts: list[dict],
    today: date,
    refusal: Refusal | None,
) -> str:
    """The changes Xero's invoice screen offers for this invoice's status."""
    key = escape(invoice["InvoiceID"])
    status = invoice["Status"]
    actions = []
    if status == "AUTHORISED" and invoice["AmountDue"] > 0:
        typed = (
            refusal.typed
            if refusal is not None
            and (refusal.invoice_id or "").lower() == invoice["InvoiceID"].lower()
            else None
        )
        actions.append(_payment_form(base, invoice, accounts, today, typed))
    if status == "AUTHORISED" and not invoice.get("Payments"):
        actions.append(_button(f"{base}/invoices/{key}/void", "Void", danger=True))
    if status in ("DRAFT", "SUBMITTED"):
        actions.append(_button(f"{base}/invoices/{key}/delete", "Delete", danger=True))
    return "".join(actions) or "<span class='muted'>—</span>"


def _payment_actions(base: str, payment: dict) -> str:
    if payment["Status"] == "DELETED":
        return "<span class='muted'>—</span>"
    key = escape(payment["PaymentID"])
    if payment.get("IsReconciled"):
        toggle = _button(f"{base}/payments/{key}/unreconcile", "Unreconcile")
    else:
        toggle = _button(f"{base}/payments/{key}/reconcile", "Reconcile")
    return _button(f"{base}/payments/{key}/remove", "Remove payment", danger=True) + toggle


def payment_accounts(org: Organisation) -> list[dict]:
    """The accounts a payment can be paid to: active bank accounts first, then the others
    that take payments."""
    accounts = [
        a
        for a in org.accounts
        if a["Status"] == "ACTIVE" and (a["Type"] == "BANK" or a.get("EnablePaymentsToAccount"))
    ]
    return sorted(accounts, key=lambda a: a["Type"] != "BANK")


def organisation(
    sandbox: Sandbox,
    org: Organisation,
    *,
    watch: bool = False,
    done: str = "",
    done_id: str = "",
    refusal: Refusal | None = None,
) -> str:
    """The organisation's page. Unless ``watch`` (which refreshes every 10 s and so offers no
    forms), each invoice and payment offers what a person can do to it in Xero."""
    acting = not watch
    base = f"/_sandbox/org/{org.tenant_id}"
    today = sandbox.clock.now().date()
    with org.lock:
        accounts = payment_accounts(org)
        invoices = sorted(org.invoices.values(), key=lambda i: i["UpdatedDateUTC"], reverse=True)
        shown_invoices = invoices[:500]
        invoice_rows = [
            [
                escape(str(i.get("InvoiceNumber", ""))),
                escape(i["Contact"].get("Name", "")),
                escape(i["Date"].isoformat()),
                f"<span class='status'>{escape(i['Status'])}</span>"
                + (" · sent" if i.get("SentToContact") else ""),
                escape(i["CurrencyCode"]),
                _money(i["SubTotal"]),
                _money(i["TotalTax"]),
                _money(i["Total"]),
                _money(i["AmountPaid"]),
                _money(i["AmountDue"]),
                "<br>".join(
                    escape(
                        f"{line['Description'][:40]} × {line['Quantity']:g} @ "
                        f"{line['UnitAmount']} ({line['TaxType']})"
                    )
                    for line in i.get("LineItems", [])
                ),
            ]
            + ([_invoice_actions(base, i, accounts, today, refusal)] if acting else [])
            for i in shown_invoices
        ]
        payments = sorted(org.payments.values(), key=lambda p: p["UpdatedDateUTC"], reverse=True)[
            :500
        ]
        payment_rows = [
            [
                escape(p["Invoice"].get("InvoiceNumber", "")),
                escape(p["Date"].isoformat()),
                _money(p["Amount"]),
                escape(p["Status"]),
                escape(p.get("Reference", "")),
                "yes" if p.get("IsReconciled") else "no",
            ]
            + ([_payment_actions(base, p)] if acting else [])
            for p in payments
        ]
        contacts = sorted(org.contacts.values(), key=lambda c: c["UpdatedDateUTC"], reverse=True)
        contact_rows = [
            [
                escape(c["Name"]),
                escape(c.get("EmailAddress", "")),
                escape(c.get("ContactNumber", "") or ""),
                escape(c["ContactStatus"]),
            ]
            for c in contacts[:200]
        ]
        taxes = [
            [
                escape(t["Name"]),
                escape(t["TaxType"]),
                escape(f"{t['EffectiveRate']}"),
                escape(
                    " + ".join(
                        f"{c['Name']} {c['Rate']}%{' (compound)' if c['IsCompound'] else ''}"
                        for c in t["TaxComponents"]
                    )
                ),
                escape(t["Status"]),
            ]
            for t in org.tax_rates
        ]
        currencies = [[escape(c["Code"]), escape(c["Description"])] for c in org.currencies]
        notice = _notice(org, done, done_id) if done and refusal is None else ""
        changed = _changed_rows(org, done_id) if notice else set()
    if watch:
        mode = (
            f"<p class='muted'>This page refreshes every {WATCH_SECONDS} s. "
            f"<a href='{escape(base)}'>Stop refreshing</a> to act as a person in Xero "
            "(record or remove payments, void, delete).</p>"
        )
    else:
        mode = (
            "<p class='muted'>Act as a person working in Xero with the buttons beside each "
            "invoice and payment: Xero's rules apply and apps subscribed to webhooks hear of "
            f"the change. This page keeps still while you type; <a href='{escape(base)}"
            f"?watch=1'>watch it</a> to have it refresh every {WATCH_SECONDS} s.</p>"
        )
    messages = ""
    if refusal is not None:
        messages = (
            f"<div class='refusal' role='alert'><strong>Xero refused: {escape(refusal.action)}"
            "</strong><ul>"
            + "".join(f"<li>{escape(m)}</li>" for m in refusal.messages)
            + "</ul></div>"
        )
    elif notice:
        messages = f"<div class='notice' role='status'>{notice}</div>"
    action_header = ["Act in Xero"] if acting else []
    return _layout(
        org.name,
        f"<h1>{escape(org.name)}</h1><p class='muted'>{escape(org.country_code)} · base "
        f"currency {escape(org.base_currency)} · multi-currency "
        f"{'allowed' if org.multicurrency else 'not allowed'} · daily limit {org.per_day}"
        f" · tenant {escape(org.tenant_id)}</p>"
        + mode
        + messages
        + f"<h2>Invoices ({len(invoices)})</h2>"
        + _table(
            [
                "Number",
                "Contact",
                "Date",
                "Status",
                "Currency",
                "Subtotal",
                "Tax",
                "Total",
                "Paid",
                "Due",
                "Lines",
                *action_header,
            ],
            invoice_rows,
            {5, 6, 7, 8, 9},
            table_id="invoices",
            row_ids=[f"invoice-{i['InvoiceID']}" for i in shown_invoices],
            highlighted=changed,
        )
        + f"<h2>Payments ({len(org.payments)})</h2>"
        + _table(
            ["Invoice", "Date", "Amount", "Status", "Reference", "Reconciled", *action_header],
            payment_rows,
            {2},
            table_id="payments",
            row_ids=[f"payment-{p['PaymentID']}" for p in payments],
            highlighted=changed,
        )
        + f"<h2>Contacts ({len(org.contacts)}; latest 200)</h2>"
        + _table(["Name", "Email", "Contact number", "Status"], contact_rows)
        + "<h2>Tax rates</h2>"
        + _table(["Name", "TaxType", "Effective rate", "Components", "Status"], taxes)
        + "<h2>Currencies</h2>"
        + _table(["Code", "Description"], currencies),
        refresh_seconds=WATCH_SECONDS if watch else None,
    )
