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
