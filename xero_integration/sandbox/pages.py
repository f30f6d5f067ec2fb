"""Human pages: what a demo user looks at to see what arrived "in Xero"."""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .core import Sandbox
    from .state import Organisation

_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:0;background:#f4f6f8;color:#1e272e}"
    "header{background:#13b5ea;color:#fff;padding:.8rem 1.5rem}header a{color:#fff}"
    "main{padding:1rem 1.5rem}table{border-collapse:collapse;background:#fff;margin:.5rem 0 1.5rem;"
    "width:100%}th,td{border:1px solid #d5dbe0;padding:.35rem .5rem;text-align:left;"
    "font-size:.9rem}th{background:#eef2f5}td.num{text-align:right;font-variant-numeric:"
    "tabular-nums}.status{font-weight:600}.muted{color:#6b7780}"
)


def _layout(title: str, body: str) -> str:
    return (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)}"
        f"</title><meta http-equiv='refresh' content='10'><style>{_STYLE}</style></head><body>"
        f"<header><a href='/_sandbox/'>Xero sandbox</a> · {escape(title)}</header>"
        f"<main>{body}</main></body></html>"
    )


def _table(headers: list[str], rows: list[list[str]], numeric: set[int] | None = None) -> str:
    numeric = numeric or set()
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    if not rows:
        return (
            f"<table><tr>{head}</tr><tr><td colspan='{len(headers)}' class='muted'>None yet"
            "</td></tr></table>"
        )
    body = "".join(
        "<tr>"
        + "".join(
            f"<td class='num'>{cell}</td>" if i in numeric else f"<td>{cell}</td>"
            for i, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


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


def organisation(sandbox: Sandbox, org: Organisation) -> str:
    with org.lock:
        invoices = sorted(org.invoices.values(), key=lambda i: i["UpdatedDateUTC"], reverse=True)
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
            for i in invoices[:500]
        ]
        payments = [
            [
                escape(p["Invoice"].get("InvoiceNumber", "")),
                escape(p["Date"].isoformat()),
                _money(p["Amount"]),
                escape(p["Status"]),
                escape(p.get("Reference", "")),
            ]
            for p in sorted(org.payments.values(), key=lambda p: p["UpdatedDateUTC"], reverse=True)
        ][:500]
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
    return _layout(
        org.name,
        f"<h1>{escape(org.name)}</h1><p class='muted'>{escape(org.country_code)} · base "
        f"currency {escape(org.base_currency)} · multi-currency "
        f"{'allowed' if org.multicurrency else 'not allowed'} · daily limit {org.per_day}"
        f" · tenant {escape(org.tenant_id)}</p>"
        f"<h2>Invoices ({len(invoices)})</h2>"
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
            ],
            invoice_rows,
            {5, 6, 7, 8, 9},
        )
        + f"<h2>Payments ({len(org.payments)})</h2>"
        + _table(["Invoice", "Date", "Amount", "Status", "Reference"], payments, {2})
        + f"<h2>Contacts ({len(org.contacts)}; latest 200)</h2>"
        + _table(["Name", "Email", "Contact number", "Status"], contact_rows)
        + "<h2>Tax rates</h2>"
        + _table(["Name", "TaxType", "Effective rate", "Components", "Status"], taxes)
        + "<h2>Currencies</h2>"
        + _table(["Code", "Description"], currencies),
    )
