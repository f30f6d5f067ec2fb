"""The organisation page's forms: a demo user acts as a person working in Xero.

Each form posts to ``/_sandbox/org/{tenant_id}/invoices/{InvoiceID}/payments | void | delete``
or ``/_sandbox/org/{tenant_id}/payments/{PaymentID}/remove | reconcile | unreconcile`` and goes
through ``XeroUser``, as the control API's person endpoints do: Xero's rules and messages apply
and the same webhook events follow. A change Xero accepts redirects back to the page (303) with
a notice; one it refuses shows the page again with Xero's messages and what was typed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from . import pages
from .messages import Request, Response
from .state import Organisation
from .wire import ApiError
from .xero_user import Refused, XeroUser

if TYPE_CHECKING:
    from .core import Sandbox

#: Form field names of the "Record a payment" box.
PAYMENT_FIELDS = ("amount", "date", "account_id", "reference", "reconciled")


@dataclass(frozen=True)
class Done:
    """A change Xero accepted: the notice to show, ``outcome`` about ``object_id``."""

    outcome: str
    object_id: str


_Action = Callable[[Organisation, Request, str], Done]


class PageActions:
    """Turns the organisation page's form posts into a person's changes in Xero."""

    def __init__(self, sandbox: Sandbox, xero_user: XeroUser) -> None:
        self.sandbox = sandbox
        self.xero_user = xero_user
        self._actions: dict[tuple[str, str], tuple[str, _Action]] = {
            ("invoices", "payments"): ("record the payment", self.record_payment),
            ("invoices", "void"): ("void the invoice", self.void),
            ("invoices", "delete"): ("delete the invoice", self.delete),
            ("payments", "remove"): ("remove the payment", self.remove_payment),
            ("payments", "reconcile"): ("reconcile the payment", self.reconcile),
            ("payments", "unreconcile"): ("unreconcile the payment", self.unreconcile),
        }

    def handle(
        self, organisation: Organisation, request: Request, kind: str, object_id: str, action: str
    ) -> Response:
        """Apply one form's change; redirect back to the page, or show Xero's refusal."""
        entry = self._actions.get((kind, action))
        if entry is None:
            raise ApiError(404, {"error": f"No page action {kind}/{action}"})
        if request.method != "POST":
            response = Response.text("Use the buttons on the organisation page (POST).", 405)
            response.headers["Allow"] = "POST"
            return response
        description, act = entry
        try:
            done = act(organisation, request, object_id)
        except Refused as refused:
            return self._refused(organisation, request, kind, object_id, description, refused.error)
        except ApiError as error:
            return self._refused(organisation, request, kind, object_id, description, error)
        finally:
            self.sandbox.save()
        query = urlencode({"done": done.outcome, "id": done.object_id})
        location = f"/_sandbox/org/{organisation.tenant_id}?{query}"
        return Response(status=303, content_type="text/plain", headers={"Location": location})

    def _refused(
        self,
        organisation: Organisation,
        request: Request,
        kind: str,
        object_id: str,
        description: str,
        error: ApiError,
    ) -> Response:
        typed: dict[str, str] = {}
        if kind == "invoices" and request.form_value("amount") is not None:
            typed = {name: request.form_value(name) or "" for name in PAYMENT_FIELDS}
        refusal = pages.Refusal(
            action=f"could not {description}",
            messages=pages.refusal_messages(error.body),
            invoice_id=object_id if typed else None,
            typed=typed,
        )
        html = pages.organisation(self.sandbox, organisation, refusal=refusal)
        return Response.html(html, error.status)

    # ---- the changes -------------------------------------------------------------------
    def record_payment(self, organisation: Organisation, request: Request, invoice_id: str) -> Done:
        """Xero's "Record a payment" box, as typed."""
        form = {name: (request.form_value(name) or "").strip() for name in PAYMENT_FIELDS}
        payment: dict = {
            "Invoice": {"InvoiceID": invoice_id},
            "Account": {"AccountID": form["account_id"]} if form["account_id"] else {},
            "Amount": form["amount"] or None,
            "Reference": form["reference"],
            "IsReconciled": form["reconciled"] == "true",
        }
        if form["date"]:
            payment["Date"] = form["date"]
        (recorded,) = self.xero_user.save_payments(organisation, request, [payment])
        return Done("paid", recorded["PaymentID"])

    def void(self, organisation: Organisation, request: Request, invoice_id: str) -> Done:
        return self._invoice_status(organisation, request, invoice_id, "VOIDED", "voided")

    def delete(self, organisation: Organisation, request: Request, invoice_id: str) -> Done:
        return self._invoice_status(organisation, request, invoice_id, "DELETED", "deleted")

    def _invoice_status(
        self,
        organisation: Organisation,
        request: Request,
        invoice_id: str,
        status: str,
        outcome: str,
    ) -> Done:
        (invoice,) = self.xero_user.save_invoices(
            organisation, request, [{"InvoiceID": invoice_id, "Status": status}]
        )
        return Done(outcome, invoice["InvoiceID"])

    def remove_payment(self, organisation: Organisation, request: Request, payment_id: str) -> Done:
        removed = self.xero_user.remove_payment(organisation, request, payment_id)
        return Done("removed", removed["PaymentID"])

    def reconcile(self, organisation: Organisation, request: Request, payment_id: str) -> Done:
        return self._reconciled(organisation, request, payment_id, True)

    def unreconcile(self, organisation: Organisation, request: Request, payment_id: str) -> Done:
        return self._reconciled(organisation, request, payment_id, False)

    def _reconciled(
        self, organisation: Organisation, request: Request, payment_id: str, reconciled: bool
    ) -> Done:
        (payment,) = self.xero_user.save_payments(
            organisation, request, [{"PaymentID": payment_id, "IsReconciled": reconciled}]
        )
        outcome = "reconciled" if reconciled else "unreconciled"
        return Done(outcome, payment["PaymentID"])
