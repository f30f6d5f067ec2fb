"""``check(invoice)``: what Xero would refuse in a host invoice, without calling Xero.

For the host's pages (the demo CRM shows the problems on its invoice form and page) and for
the sync job, which waits with these messages instead of sending what Xero would refuse. The
rules are in ``rules.preflight``; this module gathers what they need from the database.
"""

from __future__ import annotations

from typing import Any

from xero_integration.adapters import DefaultXeroAdapter, get_adapter
from xero_integration.data import HostInvoice
from xero_integration.models import InvoiceLink, PaymentLink, XeroConnection
from xero_integration.rules.preflight import InXero, Organisation, Problem, problems

__all__ = ["Problem", "check", "check_data"]


def organisation_facts(connection: XeroConnection) -> Organisation:
    locks = [d for d in (connection.period_lock_date, connection.end_of_year_lock_date) if d]
    return Organisation(
        base_currency=connection.base_currency,
        currencies=tuple(connection.currencies),
        multicurrency=connection.multicurrency,
        lock_date=max(locks) if locks else None,
        revenue_account_code=connection.revenue_account_code,
        payment_account_id=connection.payment_account_id,
    )


def in_xero(connection: XeroConnection, link: InvoiceLink | None) -> InXero:
    if link is None or not link.xero_invoice_id:
        return InXero()
    paid = (
        PaymentLink.objects.of(connection)
        .filter(invoice_host_id=link.host_id, state=PaymentLink.State.LINKED)
        .exists()
    )
    return InXero(exists=True, has_payments=paid, lines_fingerprint=link.lines_fingerprint)


def check_data(
    invoice: HostInvoice, connection: XeroConnection | None, link: InvoiceLink | None = None
) -> list[Problem]:
    """The problems of an invoice already turned into plain data (the sync job's case)."""
    if connection is None or not connection.tenant_id:
        return problems(invoice)
    return problems(invoice, organisation_facts(connection), in_xero(connection, link))


def check(invoice: Any, adapter: DefaultXeroAdapter | None = None) -> list[Problem]:
    """What Xero would refuse in this host invoice, in plain words, each naming its field.
    Empty when nothing is wrong, or when the invoice does not go to Xero at all."""
    adapter = adapter or get_adapter()
    account_key = adapter.get_account_key(invoice)
    if not account_key or not adapter.should_sync(invoice):
        return []
    connection = XeroConnection.objects.filter(account_key=account_key).first()
    data = adapter.to_invoice(invoice)
    link = None
    if connection is not None and connection.tenant_id:
        link = (
            InvoiceLink.objects.of(connection)
            .filter(host_model=invoice._meta.label_lower, host_id=str(invoice.pk))
            .first()
        )
    return check_data(data, connection, link)
