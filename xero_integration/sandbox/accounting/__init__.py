"""The Accounting API under ``/api.xro/2.0``: Organisation, Accounts, Contacts, Invoices,
Payments, TaxRates and Currencies with Xero's rules, messages and arithmetic.

One module per resource answers its endpoints; ``core`` holds what they share."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..messages import Request, Response
from ..state import Organisation
from ..wire import ApiError
from . import accounts, contacts, currencies, invoices, organisation, payments, tax_rates
from .core import Context, Invalid

if TYPE_CHECKING:
    from ..core import Sandbox

__all__ = ["Accounting", "Context", "Invalid"]

_RESOURCES: dict[str, Callable[[Context, list[str]], Response]] = {
    "organisation": organisation.handle,
    "accounts": accounts.handle,
    "contacts": contacts.handle,
    "invoices": invoices.handle,
    "payments": payments.handle,
    "taxrates": tax_rates.handle,
    "currencies": currencies.handle,
}


class Accounting:
    """Routes an Accounting API call to its resource and saves the state after a write."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    def handle(self, request: Request, organisation: Organisation) -> Response:
        """Answer one Accounting API call; errors come back as responses (so that they get
        rate headers and are replayed for their Idempotency-Key, as Xero's are)."""
        try:
            response = self._dispatch(request, organisation)
        except ApiError as error:
            return Response.from_error(error)
        if request.method in ("PUT", "POST", "DELETE"):
            self.sandbox.save()
        return response

    def _dispatch(self, request: Request, organisation: Organisation) -> Response:
        path = re.sub(r"^/api\.xro/2\.0", "", request.path, flags=re.IGNORECASE)
        parts = [p for p in path.strip("/").split("/") if p]
        handler = _RESOURCES.get(parts[0].lower()) if parts else None
        if handler is None:
            raise ApiError(
                404, {"Title": "Not Found", "Status": 404, "Detail": "The endpoint does not exist"}
            )
        _, family = self.sandbox.oauth.bearer(request)
        app = self.sandbox.apps.get(family.client_id)
        context = Context(
            request,
            organisation,
            app.name if app else family.client_id,
            family.client_id,
            self.sandbox.clock.now(),
            self.sandbox.webhooks,
        )
        with organisation.lock:
            return handler(context, parts[1:])

    def person_context(self, request: Request, organisation: Organisation) -> Context:
        """The context of a change a person makes in Xero's own screens: no app is involved."""
        return Context(
            request, organisation, "Xero", None, self.sandbox.clock.now(), self.sandbox.webhooks
        )
