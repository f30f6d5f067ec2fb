"""``GET/PUT/POST /Payments`` and ``GET/POST /Payments/{PaymentID}``: payments against
AUTHORISED invoices to accounts that take them, never over the amount due, and deletion by
``{"Status": "DELETED"}`` unless reconciled (Xero's API documentation)."""

from __future__ import annotations

import uuid

from .. import query as q
from ..messages import Response
from ..wire import PostDataInvalid, parse_bool, parse_date, parse_decimal
from . import invoices
from .core import ZERO, Context, Invalid, lock_message, money, not_found

MSG_OVERPAYMENT = "Payment amount exceeds the amount outstanding on this document"
# Xero's wording for this refusal is not documented; this follows its "This document cannot be
# edited as it has ..." pattern (docs/sandbox.md lists the choice).
MSG_PAYMENT_RECONCILED = "This payment cannot be deleted as it has been reconciled."


def handle(ctx: Context, rest: list[str]) -> Response:
    """Read, create, or delete (``{"Status": "DELETED"}``) payments."""
    org = ctx.org
    method = ctx.request.method
    if rest:
        payment = org.payments.get(rest[0].lower()) or org.payments.get(rest[0])
        if payment is None:
            raise not_found("Payment")
        if method == "GET":
            return ctx.ok(Payments=[payment])
        ctx.only("POST")
        items = ctx.items("Payments", bare=True)
        return ctx.batch(items, "Payments", lambda item, i: delete(ctx, payment, item))
    if method == "GET":
        records = q.order(
            ctx.filter(list(org.payments.values()), modified_field="UpdatedDateUTC"),
            ctx.query.get("order"),
        )
        page, pagination = ctx.page(records)
        return ctx.ok(Payments=page, **pagination)
    ctx.only("PUT", "POST")
    items = ctx.items("Payments", bare=True)
    return ctx.batch(items, "Payments", lambda item, i: create(ctx, item, i))


def create(ctx: Context, item: dict, index: int) -> dict:
    """Apply a payment to its invoice (or delete one named by PaymentID with a Status)."""
    org = ctx.org
    path = f"Payments[{index}]"
    if item.get("PaymentID") and item.get("Status"):
        payment = org.payments.get(str(item["PaymentID"]).lower())
        if payment is None:
            raise Invalid("The Payment with the specified PaymentID could not be found.")
        return delete(ctx, payment, item)
    errors = Invalid()
    given_invoice = item.get("Invoice") or {}
    if not isinstance(given_invoice, dict):
        raise PostDataInvalid(f"Path '{path}.Invoice' must be an object.")
    invoice = None
    if given_invoice.get("InvoiceID"):
        invoice = org.invoices.get(str(given_invoice["InvoiceID"]).lower())
    elif given_invoice.get("InvoiceNumber"):
        invoice = invoices.find(org, str(given_invoice["InvoiceNumber"]))
    if invoice is None:
        errors.add("The Invoice could not be found. Provide a valid InvoiceID or InvoiceNumber.")
    given_account = item.get("Account") or {}
    if not isinstance(given_account, dict):
        raise PostDataInvalid(f"Path '{path}.Account' must be an object.")
    account = None
    if given_account.get("AccountID"):
        account = org.account_by(account_id=given_account["AccountID"])
    elif given_account.get("Code"):
        account = org.account_by(code=given_account["Code"])
    if account is None or account["Status"] != "ACTIVE":
        errors.add("Account must be valid.")
    elif account["Type"] != "BANK" and not account.get("EnablePaymentsToAccount"):
        errors.add(
            "Payments can only be made to accounts of type BANK or to accounts with "
            "payments enabled (EnablePaymentsToAccount)."
        )
    if item.get("Amount") is None:
        errors.add("Amount must be specified.")
        amount = ZERO
    else:
        amount = money(parse_decimal(item["Amount"], f"{path}.Amount"))
        if amount <= 0:
            errors.add("The payment amount must be greater than zero.")
    payment_date = parse_date(item["Date"], f"{path}.Date") if item.get("Date") else ctx.now.date()
    lock = org.period_lock_date
    if lock and payment_date <= lock:
        errors.add(lock_message(lock))
    if invoice is not None:
        if invoice["Status"] == "PAID" or (
            invoice["Status"] == "AUTHORISED" and amount > invoice["AmountDue"]
        ):
            errors.add(MSG_OVERPAYMENT)
        elif invoice["Status"] != "AUTHORISED":
            errors.add("Payments can only be made against approved (AUTHORISED) documents.")
    if errors:
        raise errors
    assert invoice is not None and account is not None
    rate = item.get("CurrencyRate")
    payment = {
        "PaymentID": str(uuid.uuid4()),
        "Date": payment_date,
        "BankAmount": amount,
        "Amount": amount,
        "Reference": str(item.get("Reference") or ""),
        "CurrencyRate": parse_decimal(rate, f"{path}.CurrencyRate")
        if rate is not None
        else invoice["CurrencyRate"],
        "PaymentType": "ACCRECPAYMENT" if invoice["Type"] == "ACCREC" else "ACCPAYPAYMENT",
        "Status": "AUTHORISED",
        "UpdatedDateUTC": ctx.now,
        "HasAccount": True,
        "IsReconciled": parse_bool(item["IsReconciled"], f"{path}.IsReconciled")
        if item.get("IsReconciled") is not None
        else False,
        "HasValidationErrors": False,
        "Account": {
            "AccountID": account["AccountID"],
            **({"Code": account["Code"]} if account.get("Code") else {}),
        },
        "Invoice": {
            "Type": invoice["Type"],
            "InvoiceID": invoice["InvoiceID"],
            "InvoiceNumber": invoice.get("InvoiceNumber", ""),
            "Contact": invoice["Contact"],
            "CurrencyCode": invoice["CurrencyCode"],
        },
    }
    org.payments[payment["PaymentID"]] = payment
    invoice["AmountPaid"] = money(invoice["AmountPaid"] + amount)
    invoice["AmountDue"] = money(invoice["AmountDue"] - amount)
    invoice["Payments"].append(_reference(payment))
    if invoice["AmountDue"] == 0:
        invoice["Status"] = "PAID"
        invoice["FullyPaidOnDate"] = payment_date
    invoice["UpdatedDateUTC"] = ctx.now
    ctx.emit("INVOICE", invoice["InvoiceID"], "UPDATE")
    return payment


def delete(ctx: Context, payment: dict, item: dict) -> dict:
    """Delete a payment: its invoice is due again and AUTHORISED if it was PAID."""
    extra = set(item) - {"Status", "PaymentID", "HasValidationErrors", "HasAccount"}
    if extra:
        raise Invalid("Only Status accepted for updates.")
    status = item.get("Status")
    if not isinstance(status, str) or status.upper() != "DELETED":
        raise Invalid("Only Status accepted for updates.")
    if payment["Status"] == "DELETED":
        raise Invalid("This payment has already been deleted.")
    if payment.get("IsReconciled"):
        raise Invalid(MSG_PAYMENT_RECONCILED)
    invoice = ctx.org.invoices.get(payment["Invoice"]["InvoiceID"])
    lock = ctx.org.period_lock_date
    if lock and payment["Date"] <= lock:
        raise Invalid(lock_message(lock))
    payment["Status"] = "DELETED"
    payment["UpdatedDateUTC"] = ctx.now
    if invoice is not None:
        invoice["AmountPaid"] = money(invoice["AmountPaid"] - payment["Amount"])
        invoice["AmountDue"] = money(invoice["AmountDue"] + payment["Amount"])
        invoice["Payments"] = [
            p for p in invoice["Payments"] if p["PaymentID"] != payment["PaymentID"]
        ]
        if invoice["Status"] == "PAID":
            invoice["Status"] = "AUTHORISED"
            invoice.pop("FullyPaidOnDate", None)
        invoice["UpdatedDateUTC"] = ctx.now
        ctx.emit("INVOICE", invoice["InvoiceID"], "UPDATE")
    return payment


def _reference(payment: dict) -> dict:
    return {
        "PaymentID": payment["PaymentID"],
        "Date": payment["Date"],
        "Amount": payment["Amount"],
        "Reference": payment["Reference"],
        "CurrencyRate": payment["CurrencyRate"],
        "HasAccount": True,
        "HasValidationErrors": False,
    }
