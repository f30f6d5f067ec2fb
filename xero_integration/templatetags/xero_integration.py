"""``{% xero_tile %}``: the Xero tile for a host's Settings → Integrations page."""

from __future__ import annotations

from typing import Any

from django import template

from xero_integration.adapters import get_adapter
from xero_integration.models import XeroConnection

register = template.Library()


@register.inclusion_tag("xero_integration/_tile.html", takes_context=True)
def xero_tile(context: template.Context) -> dict[str, Any]:
    """The tile's context: the current CRM account's connection, if any."""
    request = context.get("request")
    connection = None
    can_manage = False
    if request is not None and request.user.is_authenticated:
        adapter = get_adapter(request)
        account_key = adapter.account_key_for_request(request)
        if account_key:
            connection = XeroConnection.objects.filter(account_key=account_key).first()
            can_manage = adapter.can_manage_connection(request, account_key)
    return {
        "request": request,
        "connection": connection,
        "can_manage": can_manage,
        "contact_import": connection.contact_imports.first() if connection else None,
    }


@register.inclusion_tag("xero_integration/_invoice_status.html", takes_context=True)
def xero_invoice_status(context: template.Context, invoice: Any) -> dict[str, Any]:
    """The invoice's sync state for the host's invoice page: where it stands in Xero, Xero's
    message in plain words when it failed, a link to open it in Xero, and "Sync now"."""
    from xero_integration import services
    from xero_integration.models import InvoiceLink, SyncJob

    request = context.get("request")
    adapter = get_adapter(request)
    account_key = adapter.get_account_key(invoice)
    connection = XeroConnection.objects.filter(account_key=account_key).first()
    key = {
        "account_key": account_key,
        "host_model": invoice._meta.label_lower,
        "host_id": str(invoice.pk),
    }
    job = SyncJob.objects.filter(**key).first()
    link = (
        InvoiceLink.objects.of(connection)
        .filter(host_model=key["host_model"], host_id=key["host_id"])
        .first()
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
        "xero_url": url,
        "host_model": key["host_model"],
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
