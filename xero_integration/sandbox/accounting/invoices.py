"""``GET/PUT/POST /Invoices``, ``GET/POST /Invoices/{InvoiceID|InvoiceNumber}`` and
``POST /Invoices/{InvoiceID}/Email``: lines, taxes and totals computed as Xero does, unique
numbers, status transitions, and no edit once a payment is allocated (Xero's API documentation)."""

from __future__ import annotations

import copy
import uuid
from decimal import Decimal
from typing import Any

from .. import query as q
from .. import seed
from ..messages import Response
from ..state import Organisation
from ..wire import (
    PostDataInvalid,
    iso_out,
    parse_bool,
    parse_date,
    parse_decimal,
    query_bool,
    validation_exception,
)
from . import contacts
from .core import (
    ZERO,
    Context,
    Invalid,
    enum_value,
    four,
    lock_message,
    money,
    not_found,
    text_value,
)

INVOICE_TYPES = {"ACCREC", "ACCPAY"}
INVOICE_STATUSES = {"DRAFT", "SUBMITTED", "AUTHORISED", "PAID", "VOIDED", "DELETED"}
LINE_AMOUNT_TYPES = {"EXCLUSIVE": "Exclusive", "INCLUSIVE": "Inclusive", "NOTAX": "NoTax"}
# Allowed invoice status changes (Xero's API documentation).
TRANSITIONS = {
    "DRAFT": {"DRAFT", "SUBMITTED", "AUTHORISED", "DELETED"},
    "SUBMITTED": {"SUBMITTED", "DRAFT", "AUTHORISED", "DELETED"},
    "AUTHORISED": {"AUTHORISED", "VOIDED"},
    "PAID": {"PAID"},
    "VOIDED": set(),
    "DELETED": set(),
}
MSG_NOT_MODIFIABLE = "Invoice not of valid status for modification"
MSG_PAYMENT_ALLOCATED = (
    "This document cannot be edited as it has a payment or credit note allocated to it."
)


def handle(ctx: Context, rest: list[str]) -> Response:
    """Read, create (PUT), create-or-update (POST) or email invoices."""
    org = ctx.org
    method = ctx.request.method
    if rest:
        invoice = find(org, rest[0])
        if invoice is None:
            raise not_found("Invoice")
        if len(rest) > 1 and rest[1].lower() == "email":
            ctx.only("POST")
            return _email(ctx, invoice)
        if len(rest) > 1:
            raise not_found("Endpoint")
        if method == "GET":
            return ctx.ok(Invoices=[view(ctx, invoice, lines=True)])
        ctx.only("POST")
        items = ctx.items("Invoices")
        for item in items:
            item["InvoiceID"] = invoice["InvoiceID"]
        return ctx.batch(
            items,
            "Invoices",
            lambda item, i: save(ctx, item, i),
            out=lambda r: view(ctx, r, lines=True),
        )
    if method == "GET":
        records = list(org.invoices.values())
        ids = ctx.id_list("ids")
        if ids:
            records = [r for r in records if r["InvoiceID"].lower() in ids]
        numbers = ctx.id_list("invoicenumbers")
        if numbers:
            records = [r for r in records if str(r.get("InvoiceNumber", "")).lower() in numbers]
        contact_ids = ctx.id_list("contactids")
        if contact_ids:
            records = [r for r in records if r["Contact"]["ContactID"].lower() in contact_ids]
        statuses = {s.upper() for s in ctx.id_list("statuses")}
        if statuses:
            records = [r for r in records if r["Status"] in statuses]
        if query_bool(ctx.query.get("createdbymyapp")):
            records = [r for r in records if r.get("_created_by") == ctx.client_id]
        term = (ctx.query.get("searchterm") or "").lower()
        if term:
            records = [
                r
                for r in records
                if term in str(r.get("InvoiceNumber", "")).lower()
                or term in str(r.get("Reference", "")).lower()
            ]
        records = q.order(
            ctx.filter(records, modified_field="UpdatedDateUTC"), ctx.query.get("order")
        )
        page, pagination = ctx.page(records)
        # Xero includes line items only in paged results or when asked for by IDs.
        lines = bool(pagination) or bool(ids)
        if query_bool(ctx.query.get("summaryonly")):
            lines = False
        return ctx.ok(Invoices=[view(ctx, r, lines) for r in page], **pagination)
    ctx.only("PUT", "POST")
    items = ctx.items("Invoices")
    create_only = method == "PUT"
    return ctx.batch(
        items,
        "Invoices",
        lambda item, i: save(ctx, item, i, create_only=create_only),
        out=lambda r: view(ctx, r, lines=True),
    )


def find(org: Organisation, key: str) -> dict | None:
    """The invoice with this InvoiceID, else the one (not deleted) with this number."""
    invoice = org.invoices.get(key.lower()) or org.invoices.get(key)
    if invoice:
        return invoice
    return next(
        (
            i
            for i in org.invoices.values()
            if str(i.get("InvoiceNumber", "")).lower() == key.lower() and i["Status"] != "DELETED"
        ),
        None,
    )


def view(ctx: Context, invoice: dict, lines: bool) -> dict:
    """The invoice as the API returns it; ``lines`` includes its line items."""
    out = {k: v for k, v in invoice.items() if not k.startswith("_")}
    out["DateString"] = iso_out(invoice["Date"])
    if invoice.get("DueDate"):
        out["DueDateString"] = iso_out(invoice["DueDate"])
    out["UpdatedDateUTCString"] = invoice["UpdatedDateUTC"].strftime("%Y-%m-%dT%H:%M:%SZ")
    if not lines:
        out.pop("LineItems", None)
    else:
        unitdp4 = ctx.query.get("unitdp") == "4"
        out["LineItems"] = [
            {**line, "UnitAmount": line["UnitAmount"] if unitdp4 else money(line["UnitAmount"])}
            for line in invoice["LineItems"]
        ]
    return out


def _email(ctx: Context, invoice: dict) -> Response:
    if invoice["Status"] not in ("AUTHORISED", "PAID"):
        raise validation_exception(
            [{"ValidationErrors": [{"Message": "Only approved invoices can be emailed."}]}]
        )
    contact = ctx.org.contacts.get(invoice["Contact"]["ContactID"], {})
    if not contact.get("EmailAddress"):
        raise validation_exception(
            [{"ValidationErrors": [{"Message": "The contact does not have an email address."}]}]
        )
    invoice["SentToContact"] = True
    invoice["UpdatedDateUTC"] = ctx.now
    return Response(status=204, body=b"")


def save(ctx: Context, item: dict, index: int, create_only: bool = False) -> dict:
    """Create the invoice, or (unless ``create_only``) update the one its InvoiceID or ACCREC
    InvoiceNumber names; ``Invalid`` with Xero's messages when it refuses."""
    org = ctx.org
    existing = None
    if not create_only:
        if item.get("InvoiceID"):
            existing = org.invoices.get(str(item["InvoiceID"]).lower()) or org.invoices.get(
                str(item["InvoiceID"])
            )
            if existing is None:
                raise Invalid("The Invoice with the specified InvoiceID could not be found.")
        elif item.get("InvoiceNumber"):
            existing = find(org, str(item["InvoiceNumber"]))
            if existing and existing["Type"] != "ACCREC":
                existing = None
    elif item.get("InvoiceID"):
        raise Invalid("An invoice cannot be created with an InvoiceID; use POST to update it.")
    parsed = _parse(ctx, item, index, existing)
    if existing is None:
        return _create(ctx, parsed)
    return _update(ctx, existing, parsed, item)


def _parse(ctx: Context, item: dict, index: int, existing: dict | None) -> dict:
    """Type-check an invoice element (PostDataInvalid on what Xero cannot deserialise)."""
    path = f"Invoices[{index}]"
    parsed: dict[str, Any] = {"_present": set(item)}
    if "Type" in item:
        parsed["Type"] = enum_value(item["Type"], INVOICE_TYPES, f"{path}.Type", "InvoiceType")
    if "Status" in item:
        parsed["Status"] = enum_value(
            item["Status"], INVOICE_STATUSES, f"{path}.Status", "InvoiceStatus"
        )
    if "LineAmountTypes" in item:
        value = item["LineAmountTypes"]
        if not isinstance(value, str) or value.upper() not in LINE_AMOUNT_TYPES:
            raise PostDataInvalid(
                f'Error converting value "{value}" to type '
                "'Xero.API.Library.DataContracts.LineAmountType'. "
                f"Path '{path}.LineAmountTypes'."
            )
        parsed["LineAmountTypes"] = LINE_AMOUNT_TYPES[value.upper()]
    for key in ("Date", "DueDate", "ExpectedPaymentDate"):
        if item.get(key) not in (None, ""):
            parsed[key] = parse_date(item[key], f"{path}.{key}")
    for key in ("InvoiceNumber", "Reference", "CurrencyCode", "BrandingThemeID", "Url"):
        if key in item and item[key] is not None:
            parsed[key] = (text_value(item, key) or "").strip()
    if item.get("CurrencyRate") is not None:
        parsed["CurrencyRate"] = parse_decimal(item["CurrencyRate"], f"{path}.CurrencyRate")
    if "SentToContact" in item and item["SentToContact"] is not None:
        parsed["SentToContact"] = parse_bool(item["SentToContact"], f"{path}.SentToContact")
    if "Contact" in item:
        if not isinstance(item["Contact"], dict):
            raise PostDataInvalid(f"Path '{path}.Contact' must be an object.")
        parsed["Contact"] = item["Contact"]
    if "LineItems" in item:
        lines = item["LineItems"]
        if not isinstance(lines, list) or not all(isinstance(x, dict) for x in lines):
            raise PostDataInvalid(f"Path '{path}.LineItems' must be a list of objects.")
        unitdp4 = ctx.query.get("unitdp") == "4"
        parsed["LineItems"] = [
            _parse_line(line, f"{path}.LineItems[{n}]", unitdp4) for n, line in enumerate(lines)
        ]
    return parsed


def _parse_line(line: dict, path: str, unitdp4: bool) -> dict:
    parsed: dict[str, Any] = {}
    for key in ("Description", "AccountCode", "AccountID", "TaxType", "ItemCode", "LineItemID"):
        if line.get(key) is not None:
            parsed[key] = str(line[key]).strip() if key != "Description" else str(line[key])
    for key in (
        "Quantity",
        "UnitAmount",
        "DiscountRate",
        "DiscountAmount",
        "LineAmount",
        "TaxAmount",
    ):
        if line.get(key) is not None:
            parsed[key] = parse_decimal(line[key], f"{path}.{key}")
    if "UnitAmount" in parsed:
        parsed["UnitAmount"] = (
            four(parsed["UnitAmount"]) if unitdp4 else money(parsed["UnitAmount"])
        )
    if "Quantity" in parsed:
        parsed["Quantity"] = four(parsed["Quantity"])
    if "DiscountRate" in parsed:
        parsed["DiscountRate"] = money(parsed["DiscountRate"])
    if isinstance(line.get("Tracking"), list):
        parsed["Tracking"] = line["Tracking"][:2]
    return parsed


def _build_lines(
    ctx: Context,
    invoice_type: str,
    status: str,
    amount_types: str,
    lines: list[dict],
    errors: Invalid,
    warnings: list[str],
    previous: list[dict] | None,
) -> list[dict]:
    org = ctx.org
    previous_ids = {line["LineItemID"] for line in previous or []}
    built = []
    approved = status in ("SUBMITTED", "AUTHORISED")
    for n, given in enumerate(lines):
        line: dict[str, Any] = {}
        description = given.get("Description", "")
        if not description.strip() and not given.get("ItemCode"):
            errors.add("The description field is mandatory for each line item.", line=n)
        line["Description"] = description
        if given.get("ItemCode"):
            errors.add(f"Item code '{given['ItemCode']}' is not valid.", line=n)
        quantity = given.get("Quantity")
        unit = given.get("UnitAmount")
        if quantity is None and unit is None and "LineAmount" in given:
            quantity, unit = Decimal("1.0000"), money(given["LineAmount"])
        quantity = Decimal("1.0000") if quantity is None else quantity
        unit = ZERO if unit is None else unit
        line["Quantity"] = quantity
        line["UnitAmount"] = unit
        gross = quantity * unit
        rate = given.get("DiscountRate")
        discount_amount = given.get("DiscountAmount")
        if rate is not None and discount_amount is not None:
            errors.add("A line item can have a DiscountRate or a DiscountAmount, not both.", line=n)
        if (rate or discount_amount) and invoice_type != "ACCREC":
            errors.add("Discounts can only be applied to sales invoices.", line=n)
        amount = gross
        if rate is not None:
            if rate < 0 or rate > 100:
                errors.add(
                    f"The discount rate '{rate}' is invalid. Discount must not be greater "
                    "than the line total.",
                    line=n,
                )
            amount = gross * (100 - rate) / 100
            line["DiscountRate"] = rate
        elif discount_amount is not None:
            if discount_amount < 0 or discount_amount > abs(gross):
                errors.add(
                    f"The discount amount '{money(discount_amount)}' is invalid. Discount "
                    "must not be greater than the line total.",
                    line=n,
                )
            amount = gross - discount_amount
            line["DiscountAmount"] = money(discount_amount)
        line["LineAmount"] = money(amount)
        account = None
        if given.get("AccountID"):
            account = org.account_by(account_id=given["AccountID"])
            label = given["AccountID"]
        elif given.get("AccountCode"):
            account = org.account_by(code=given["AccountCode"])
            label = given["AccountCode"]
        if given.get("AccountID") or given.get("AccountCode"):
            if account is None and not approved:
                warnings.append(
                    f"Account code '{label}' has been removed as it does not match a "
                    "recognised account."
                )
            elif (
                account is None
                or account["Status"] != "ACTIVE"
                or (invoice_type == "ACCREC" and account["Class"] != "REVENUE")
                or account["Type"] == "BANK"
            ):
                errors.add(f"Account code '{label}' is not a valid code for this document.", line=n)
                account = None
        elif approved:
            errors.add("Account must be valid.", line=n)
        if account is not None:
            if account.get("Code"):
                line["AccountCode"] = account["Code"]
            line["AccountID"] = account["AccountID"]
        tax_type = (
            given.get("TaxType")
            or (account or {}).get("TaxType")
            or seed.default_sales_tax(org.country_code)
        )
        if amount_types == "NoTax":
            tax_type = "NONE"
        tax_rate = org.tax_rate(tax_type)
        if tax_rate is None or tax_rate["Status"] != "ACTIVE":
            errors.add("Tax rate must be valid.", line=n)
            effective = Decimal(0)
        else:
            if invoice_type == "ACCREC" and not tax_rate.get("CanApplyToRevenue", True):
                errors.add(
                    f"The TaxType code '{tax_type}' cannot be used with account code "
                    f"'{line.get('AccountCode', '')}'.",
                    line=n,
                )
            effective = tax_rate["EffectiveRate"]
        line["TaxType"] = tax_type
        if amount_types == "Exclusive":
            tax = money(line["LineAmount"] * effective / 100)
        elif amount_types == "Inclusive":
            tax = money(line["LineAmount"] * effective / (100 + effective))
        else:
            tax = ZERO
        line["TaxAmount"] = tax
        line["Tracking"] = given.get("Tracking", [])
        line["LineItemID"] = (
            given["LineItemID"] if given.get("LineItemID") in previous_ids else str(uuid.uuid4())
        )
        line["_gross"] = money(gross)
        built.append(line)
    return built


def _totals(invoice: dict) -> None:
    lines = invoice["LineItems"]
    total_tax = sum((line["TaxAmount"] for line in lines), ZERO)
    line_total = sum((line["LineAmount"] for line in lines), ZERO)
    if invoice["LineAmountTypes"] == "Inclusive":
        sub_total, total = line_total - total_tax, line_total
    else:
        sub_total, total = line_total, line_total + total_tax
    invoice["SubTotal"] = money(sub_total)
    invoice["TotalTax"] = money(total_tax)
    invoice["Total"] = money(total)
    discount = sum((line.pop("_gross") - line["LineAmount"] for line in lines), ZERO)
    invoice["TotalDiscount"] = money(discount)
    invoice["IsDiscounted"] = discount != 0
    paid = invoice.get("AmountPaid", ZERO)
    credited = invoice.get("AmountCredited", ZERO)
    if invoice["Status"] in ("VOIDED", "DELETED"):
        invoice["AmountDue"] = ZERO
    else:
        invoice["AmountDue"] = money(invoice["Total"] - paid - credited)


def _check_header(ctx: Context, invoice: dict, errors: Invalid) -> None:
    org = ctx.org
    if invoice["CurrencyCode"] not in org.currency_codes():
        errors.add(f"Organisation is not subscribed to currency {invoice['CurrencyCode']}")
    lock = org.period_lock_date
    if lock and invoice["Date"] <= lock:
        errors.add(lock_message(lock))
    if invoice["Status"] in ("SUBMITTED", "AUTHORISED") and not invoice.get("DueDate"):
        errors.add("Due Date is required to approve an invoice.")
    if invoice.get("SentToContact") and invoice["Status"] not in ("AUTHORISED", "PAID"):
        errors.add("Invoice must be approved before it can be marked as sent to the contact.")
    if not invoice["LineItems"]:
        errors.add("An invoice must have at least one line item.")
    number = invoice.get("InvoiceNumber")
    if (
        invoice["Type"] == "ACCREC"
        and number
        and org.invoice_number_taken(number, invoice.get("InvoiceID"))
    ):
        errors.add("Invoice # must be unique.")
    if len(number or "") > 255:
        errors.add("The InvoiceNumber must not be longer than 255 characters.")


def _create(ctx: Context, parsed: dict) -> dict:
    org = ctx.org
    errors = Invalid()
    invoice_type = parsed.get("Type")
    if not invoice_type:
        errors.add("Invoice Type must be specified.")
        invoice_type = "ACCREC"
    status = parsed.get("Status", "DRAFT")
    if status not in ("DRAFT", "SUBMITTED", "AUTHORISED"):
        errors.add("Invoice not of valid status for creation")
    contact = None
    if "Contact" not in parsed:
        errors.add(contacts.MSG_CONTACT_IDENTITY)
    else:
        contact = contacts.resolve_for_document(ctx, parsed["Contact"], errors)
    if "LineItems" not in parsed:
        errors.add("An invoice must have at least one line item.")
    warnings: list[str] = []
    amount_types = parsed.get("LineAmountTypes", "Exclusive")
    invoice = {
        "Type": invoice_type,
        "InvoiceID": str(uuid.uuid4()),
        "InvoiceNumber": parsed.get("InvoiceNumber") or "",
        "Reference": parsed.get("Reference", "") if invoice_type == "ACCREC" else "",
        "Contact": contacts.reference(contact) if contact else {},
        "Date": parsed.get("Date") or ctx.now.date(),
        "DueDate": parsed.get("DueDate"),
        "Status": status,
        "LineAmountTypes": amount_types,
        "LineItems": _build_lines(
            ctx,
            invoice_type,
            status,
            amount_types,
            parsed.get("LineItems", []),
            errors,
            warnings,
            None,
        ),
        "CurrencyCode": (parsed.get("CurrencyCode") or org.base_currency).upper(),
        "CurrencyRate": parsed.get("CurrencyRate") or Decimal("1.000000"),
        "SentToContact": parsed.get("SentToContact", False),
        "AmountPaid": ZERO,
        "AmountCredited": ZERO,
        "Payments": [],
        "CreditNotes": [],
        "Prepayments": [],
        "Overpayments": [],
        "HasAttachments": False,
        "HasErrors": False,
        "_created_by": ctx.client_id,
    }
    for key in ("BrandingThemeID", "Url", "ExpectedPaymentDate"):
        if parsed.get(key):
            invoice[key] = parsed[key]
    if invoice["CurrencyCode"] == org.base_currency:
        invoice["CurrencyRate"] = Decimal("1.000000")
    _check_header(ctx, invoice, errors)
    if errors:
        raise errors
    if invoice_type == "ACCREC" and not invoice["InvoiceNumber"]:
        invoice["InvoiceNumber"] = org.next_invoice_number()
    _totals(invoice)
    if invoice["Total"] < 0:
        raise Invalid("The invoice total must be zero or more.")
    invoice["UpdatedDateUTC"] = ctx.now
    org.invoices[invoice["InvoiceID"]] = invoice
    if contact is not None and invoice_type == "ACCREC" and status == "AUTHORISED":
        contact["IsCustomer"] = True
    if warnings:
        invoice["_warnings"] = warnings
    ctx.emit("INVOICE", invoice["InvoiceID"], "CREATE")
    return invoice


def _update(ctx: Context, invoice: dict, parsed: dict, raw: dict) -> dict:
    present = parsed["_present"] - {
        "InvoiceID",
        "ValidationErrors",
        "HasErrors",
        "HasAttachments",
        "StatusAttributeString",
        "Warnings",
    }
    current = invoice["Status"]
    status = parsed.get("Status", current)
    if current in ("VOIDED", "DELETED"):
        raise Invalid(MSG_NOT_MODIFIABLE)
    changes = {
        key
        for key in present
        if key != "InvoiceNumber" or parsed.get("InvoiceNumber") != invoice.get("InvoiceNumber")
    }
    if invoice["AmountPaid"] > 0 or current == "PAID":
        harmless = {"SentToContact"} | ({"Status"} if status == current else set())
        if changes - harmless:
            raise Invalid(MSG_PAYMENT_ALLOCATED)
    if status not in TRANSITIONS[current]:
        raise Invalid(MSG_NOT_MODIFIABLE)
    errors = Invalid()
    warnings: list[str] = []
    updated = copy.deepcopy(invoice)
    updated["Status"] = status
    for key in (
        "InvoiceNumber",
        "Reference",
        "Date",
        "DueDate",
        "CurrencyCode",
        "SentToContact",
        "BrandingThemeID",
        "Url",
        "ExpectedPaymentDate",
        "LineAmountTypes",
        "CurrencyRate",
    ):
        if key in parsed:
            updated[key] = parsed[key]
    if "Type" in parsed and parsed["Type"] != invoice["Type"]:
        errors.add("The invoice Type cannot be changed.")
    if "Contact" in parsed:
        contact = contacts.resolve_for_document(ctx, parsed["Contact"], errors)
        if contact is not None:
            updated["Contact"] = contacts.reference(contact)
    if status in ("DELETED", "VOIDED") and present <= {"Status", "InvoiceNumber"}:
        # A status-only change: the document itself is not re-validated.
        pass
    else:
        lines = parsed.get("LineItems")
        if lines is None:
            lines = [
                {k: v for k, v in line.items() if k not in ("LineAmount", "TaxAmount")}
                for line in invoice["LineItems"]
            ]
        updated["LineItems"] = _build_lines(
            ctx,
            updated["Type"],
            status,
            updated["LineAmountTypes"],
            lines,
            errors,
            warnings,
            invoice["LineItems"],
        )
        updated["CurrencyCode"] = updated["CurrencyCode"].upper()
        _check_header(ctx, updated, errors)
    if (
        status in ("DELETED", "VOIDED")
        and ctx.org.period_lock_date
        and invoice["Date"] <= ctx.org.period_lock_date
    ):
        errors.add(lock_message(ctx.org.period_lock_date))
    if errors:
        raise errors
    for line in updated["LineItems"]:
        line.setdefault("_gross", money(line["Quantity"] * line["UnitAmount"]))
    _totals(updated)
    if updated["Total"] < 0:
        raise Invalid("The invoice total must be zero or more.")
    updated["UpdatedDateUTC"] = ctx.now
    invoice.clear()
    invoice.update(updated)
    if warnings:
        invoice["_warnings"] = warnings
    ctx.emit("INVOICE", invoice["InvoiceID"], "UPDATE")
    return invoice
