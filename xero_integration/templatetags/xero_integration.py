"""Template tags for the host's pages: the Xero tile, an invoice's Xero box, the Xero column of
an invoice list, and what voiding an invoice does in Xero."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django import template
from django.utils.translation import gettext as _

from xero_integration import health
from xero_integration.adapters import get_adapter, host_key
from xero_integration.models import InvoiceLink, SyncJob, XeroConnection

register = template.Library()


@register.inclusion_tag("xero_integration/_tile.html", takes_context=True)
def xero_tile(context: template.Context) -> dict[str, Any]:
    """The tile's context: the current CRM account's connection, if any, and its health."""
    request = context.get("request")
    connection = None
    can_manage = False
    sync_health = None
    if request is not None and request.user.is_authenticated:
        adapter = get_adapter(request)
        account_key = adapter.account_key_for_request(request)
        if account_key:
            connection = XeroConnection.objects.filter(account_key=account_key).first()
            can_manage = adapter.can_manage_connection(request, account_key)
            sync_health = health.account_health(account_key, connection, listed=0)
    return {
        "request": request,
        "connection": connection,
        "can_manage": can_manage,
        "health": sync_health,
        "contact_import": connection.contact_imports.first() if connection else None,
    }


@register.inclusion_tag("xero_integration/_invoice_status.html", takes_context=True)
def xero_invoice_status(context: template.Context, invoice: Any) -> dict[str, Any]:
    """The invoice's sync state for the host's invoice page: where it stands in Xero, what is
    wrong in one plain sentence when it failed or waits, a link to open it in Xero, and "Sync
    now"."""
    from xero_integration import services

    request = context.get("request")
    adapter = get_adapter(request)
    account_key = adapter.get_account_key(invoice)
    connection = XeroConnection.objects.filter(account_key=account_key).first()
    host_model, host_id = host_key(invoice)
    job = (
        health.with_failing_since(
            SyncJob.objects.filter(account_key=account_key, host_model=host_model, host_id=host_id)
        ).first()
        if connection
        else None
    )
    link = (
        InvoiceLink.objects.of(connection).filter(host_model=host_model, host_id=host_id).first()
        if connection
        else None
    )
    url = ""
    if connection and link and link.xero_invoice_id:
        url = services.xero_invoice_url(
            connection.tenant_id, connection.short_code, link.xero_invoice_id
        )
    return {
        "request": request,
        "invoice": invoice,
        "connection": connection,
        "job": job,
        "link": link,
        "sync": health.invoice_sync(job, link, connection) if connection else None,
        "xero_url": url,
        "host_model": host_model,
    }


@register.inclusion_tag("xero_integration/_preflight.html", takes_context=True)
def xero_preflight(context: template.Context, invoice: Any) -> dict[str, Any]:
    """What Xero would refuse in the invoice, for the host's invoice form and page: found
    without calling Xero, from what is known of the connected organisation."""
    from xero_integration.preflight import check

    request = context.get("request")
    problems = []
    if invoice is not None and getattr(invoice, "pk", None):
        connection = XeroConnection.objects.filter(
            account_key=get_adapter(request).get_account_key(invoice)
        ).first()
        if connection is not None and connection.status != "disconnected":
            problems = check(invoice, get_adapter(request))
    return {"problems": problems}


@register.simple_tag(takes_context=True)
def xero_sync_states(context: template.Context, invoices: Iterable[Any]) -> dict[str, Any]:
    """Where each invoice of a list stands with Xero, for ``xero_sync_cell``; use it as
    ``{% xero_sync_states invoices as xero_states %}`` before the list (a few queries for the
    whole list). Empty when the account has no Xero connection."""
    invoices = list(invoices)
    if not invoices:
        return {}
    adapter = get_adapter(context.get("request"))
    account_key = adapter.get_account_key(invoices[0])
    by_model: dict[str, list[str]] = {}
    for invoice in invoices:
        host_model, host_id = host_key(invoice)
        by_model.setdefault(host_model, []).append(host_id)
    states: dict[str, Any] = {}
    for host_model, ids in by_model.items():
        for host_id, sync in health.invoice_syncs(account_key or "", host_model, ids).items():
            states[f"{host_model}:{host_id}"] = sync
    return states


@register.inclusion_tag("xero_integration/_sync_cell.html")
def xero_sync_cell(states: dict[str, Any], invoice: Any) -> dict[str, Any]:
    """One invoice's Xero state for a list's cell: synced, sending, waiting, failed or not sent,
    with the reason as its title (shown on hover)."""
    host_model, host_id = host_key(invoice)
    return {"sync": (states or {}).get(f"{host_model}:{host_id}")}


@register.simple_tag(takes_context=True)
def xero_void_consequence(context: template.Context, invoice: Any) -> str:
    """What voiding this invoice in the CRM does in Xero, in one sentence (for a confirmation)."""
    adapter = get_adapter(context.get("request"))
    connection = XeroConnection.objects.filter(account_key=adapter.get_account_key(invoice)).first()
    if connection is None or connection.status == "disconnected":
        return _("This CRM is not connected to Xero: nothing changes there.")
    host_model, host_id = host_key(invoice)
    link = InvoiceLink.objects.of(connection).filter(host_model=host_model, host_id=host_id).first()
    if link is None or not link.xero_invoice_id:
        return _("It is not in Xero yet, so nothing changes there.")
    if link.removed_in_xero:
        return _("It is already voided or deleted in Xero: nothing changes there.")
    if link.xero_status in ("DRAFT", "SUBMITTED"):
        return _("The draft is deleted there.")
    return _(
        "The invoice is voided there too: payments sent from the CRM are removed from it "
        "first, and Xero keeps its number. A payment someone recorded in Xero stops the void "
        "until it is removed there."
    )
