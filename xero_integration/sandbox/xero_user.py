"""A person working in Xero's own screens: invoices typed, edited, approved, voided or deleted,
payments recorded (e.g. from the bank feed), reconciled and removed. Xero's rules and messages
apply as they do to the Accounting API, with no app, token or API limits involved, and the
INVOICE and CONTACT webhook events follow as Xero sends them."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .accounting import Invalid
from .accounting import invoices as invoice_api
from .accounting import payments as payment_api
from .messages import Request
from .state import Organisation
from .wire import ApiError, parse_bool, validation_exception

if TYPE_CHECKING:
    from .accounting import Context
    from .core import Sandbox

# Recording a payment is Xero's own screen; once recorded a payment is only reconciled,
# unreconciled or removed (Xero offers no edit of a payment).
_RECONCILE_FIELDS = {"PaymentID", "IsReconciled"}
MSG_ONLY_RECONCILE = (
    "A recorded payment can only be reconciled or unreconciled (IsReconciled); remove it and "
    "record it again to change anything else."
)


class Refused(Exception):
    """Xero refused one of the person's changes. The changes before it were saved."""

    def __init__(self, error: ApiError, applied: list[dict]) -> None:
        super().__init__(error.body)
        self.error = error
        self.applied = applied


class XeroUser:
    """The changes a person makes in Xero, each checked as Xero checks it."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    def save_invoices(
        self, organisation: Organisation, request: Request, invoices: list[dict]
    ) -> list[dict]:
        """Create each invoice, or edit the one its ``InvoiceID`` names (including a change of
        ``Status`` to AUTHORISED, VOIDED or DELETED); the invoices as the API returns them."""
        accounting = self.sandbox.accounting
        with organisation.lock:
            ctx = accounting.person_context(request, organisation)

            def save(item: dict, index: int) -> dict:
                record = invoice_api.save(ctx, item, index, create_only=not item.get("InvoiceID"))
                view = invoice_api.view(ctx, record, lines=True)
                warnings = record.pop("_warnings", None)
                if warnings:
                    view["Warnings"] = [{"Message": w} for w in warnings]
                return view

            return self._each(invoices, save)

    def save_payments(
        self, organisation: Organisation, request: Request, payments: list[dict]
    ) -> list[dict]:
        """Record each payment, or reconcile/unreconcile the one its ``PaymentID`` names."""
        accounting = self.sandbox.accounting
        with organisation.lock:
            ctx = accounting.person_context(request, organisation)

            def save(item: dict, index: int) -> dict:
                if item.get("PaymentID"):
                    return _payment_view(self._reconcile(ctx, item, index))
                return _payment_view(payment_api.create(ctx, item, index))

            return self._each(payments, save)

    def remove_payment(self, organisation: Organisation, request: Request, payment_id: str) -> dict:
        """Remove a payment as Xero's "Remove and Redo" does: its invoice is due again."""
        accounting = self.sandbox.accounting
        with organisation.lock:
            payment = organisation.payments.get(payment_id.lower())
            if payment is None:
                raise ApiError(404, {"error": f"No payment {payment_id}"})
            ctx = accounting.person_context(request, organisation)
            return self._each(
                [{"PaymentID": payment["PaymentID"], "Status": "DELETED"}],
                lambda item, index: _payment_view(payment_api.delete(ctx, payment, item)),
            )[0]

    @staticmethod
    def _each(items: list[dict], save: Callable[[dict, int], dict]) -> list[dict]:
        """Apply the changes in order, as a person saves one screen after another; the first
        one Xero refuses stops the rest."""
        applied: list[dict] = []
        for index, item in enumerate(items):
            try:
                applied.append(save(item, index))
            except Invalid as errors:
                raise Refused(validation_exception([errors.echo(item)]), applied) from None
            except ApiError as error:
                raise Refused(error, applied) from None
        return applied

    def _reconcile(self, ctx: Context, item: dict, index: int) -> dict:
        payment = ctx.org.payments.get(str(item["PaymentID"]).lower())
        if payment is None:
            raise Invalid("The Payment with the specified PaymentID could not be found.")
        if set(item) - _RECONCILE_FIELDS or "IsReconciled" not in item:
            raise Invalid(MSG_ONLY_RECONCILE)
        if payment["Status"] == "DELETED":
            raise Invalid("This payment has already been deleted.")
        reconciled = parse_bool(item["IsReconciled"], f"payments[{index}].IsReconciled")
        if payment.get("IsReconciled") != reconciled:
            payment["IsReconciled"] = reconciled
            payment["UpdatedDateUTC"] = ctx.now
        return payment


def _payment_view(payment: dict) -> dict:
    return {key: value for key, value in payment.items() if not key.startswith("_")}
