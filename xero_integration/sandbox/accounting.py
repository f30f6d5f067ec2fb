"""The Accounting API under ``/api.xro/2.0``: Organisation, Accounts, Contacts, Invoices,
Payments, TaxRates and Currencies with Xero's rules, messages and arithmetic (xero-api.md §2-3)."""

from __future__ import annotations

import copy
import re
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

from . import query as q
from . import seed
from .messages import Request, Response
from .state import Organisation
from .wire import (
    ApiError,
    PostDataInvalid,
    envelope,
    iso_out,
    parse_bool,
    parse_date,
    parse_decimal,
    query_bool,
    validation_exception,
)

if TYPE_CHECKING:
    from .core import Sandbox

CENT = Decimal("0.01")
FOUR = Decimal("0.0001")
ZERO = Decimal("0.00")
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100

INVOICE_TYPES = {"ACCREC", "ACCPAY"}
INVOICE_STATUSES = {"DRAFT", "SUBMITTED", "AUTHORISED", "PAID", "VOIDED", "DELETED"}
LINE_AMOUNT_TYPES = {"EXCLUSIVE": "Exclusive", "INCLUSIVE": "Inclusive", "NOTAX": "NoTax"}
CONTACT_STATUSES = {"ACTIVE", "ARCHIVED", "GDPRREQUEST"}
TAX_STATUSES = {"ACTIVE", "DELETED", "ARCHIVED", "PENDING"}
# Allowed invoice status changes (xero-api.md §3.2).
TRANSITIONS = {
    "DRAFT": {"DRAFT", "SUBMITTED", "AUTHORISED", "DELETED"},
    "SUBMITTED": {"SUBMITTED", "DRAFT", "AUTHORISED", "DELETED"},
    "AUTHORISED": {"AUTHORISED", "VOIDED"},
    "PAID": {"PAID"},
    "VOIDED": set(),
    "DELETED": set(),
}
CONTACT_LIMITS = {
    "Name": 255,
    "FirstName": 255,
    "LastName": 255,
    "EmailAddress": 255,
    "ContactNumber": 50,
    "AccountNumber": 50,
    "CompanyNumber": 50,
    "TaxNumber": 50,
}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_ASCII_EMAIL = re.compile(r"^[\x00-\x7f]*$")

MSG_CONTACT_IDENTITY = (
    "The Contact must contain at least 1 of the following elements to identify the contact: "
    "Name, ContactID, ContactNumber"
)
MSG_ARCHIVED_CONTACT = (
    "The contact with the specified contact details has been archived. The contact must be "
    "un-archived before creating new invoices or credit notes."
)
MSG_NOT_MODIFIABLE = "Invoice not of valid status for modification"
MSG_PAYMENT_ALLOCATED = (
    "This document cannot be edited as it has a payment or credit note allocated to it."
)
MSG_OVERPAYMENT = "Payment amount exceeds the amount outstanding on this document"
# Xero's wording for this refusal is not documented; this follows its "This document cannot be
# edited as it has ..." pattern (docs/sandbox.md lists the choice).
MSG_PAYMENT_RECONCILED = "This payment cannot be deleted as it has been reconciled."


def money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def four(value: Decimal) -> Decimal:
    return value.quantize(FOUR, rounding=ROUND_HALF_UP)


class Invalid(Exception):
    """Validation errors of one element: its own messages and those of nested parts."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message)
        self.messages: list[str] = [message] if message else []
        self.lines: dict[int, list[str]] = {}
        self.contact: list[str] = []

    def add(self, message: str, line: int | None = None, contact: bool = False) -> None:
        self.messages.append(message)
        if line is not None:
            self.lines.setdefault(line, []).append(message)
        if contact:
            self.contact.append(message)

    def __bool__(self) -> bool:
        return bool(self.messages)

    def echo(self, element: Any) -> dict:
        """The failing element as sent, with ValidationErrors at every level (§5)."""
        echo = copy.deepcopy(element) if isinstance(element, dict) else {}
        echo["ValidationErrors"] = [{"Message": m} for m in self.messages]
        lines = echo.get("LineItems")
        if isinstance(lines, list):
            for index, line in enumerate(lines):
                if isinstance(line, dict):
                    line["ValidationErrors"] = [{"Message": m} for m in self.lines.get(index, [])]
        if isinstance(echo.get("Contact"), dict):
            echo["Contact"]["ValidationErrors"] = [{"Message": m} for m in self.contact]
        return echo


def not_found(what: str) -> ApiError:
    return ApiError(404, {"Title": "Not Found", "Status": 404, "Detail": f"{what} not found"})


def _text(item: dict, key: str) -> str | None:
    value = item.get(key)
    if value is None:
        return None
    if isinstance(value, dict | list):
        raise PostDataInvalid(f"Unexpected value for '{key}'.")
    return str(value)


def _enum(value: Any, allowed: set[str], field: str, type_name: str) -> str:
    if isinstance(value, str) and value.upper() in allowed:
        return value.upper()
    raise PostDataInvalid(
        f"Error converting value \"{value}\" to type 'Xero.API.Library.DataContracts.{type_name}'."
        f" Path '{field}'."
    )


def _lock_message(lock: date) -> str:
    return (
        "The document date cannot be before the period lock date, currently set at "
        f"{lock.strftime('%d-%b-%Y')}"
    )


class Accounting:
    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    # ---- dispatch ----------------------------------------------------------------------
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
        handlers = {
            "organisation": self._organisation,
            "accounts": self._accounts,
            "contacts": self._contacts,
            "invoices": self._invoices,
            "payments": self._payments,
            "taxrates": self._taxrates,
            "currencies": self._currencies,
        }
        handler = handlers.get(parts[0].lower()) if parts else None
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
        )
        with organisation.lock:
            return handler(context, parts[1:])

    def person_context(self, request: Request, organisation: Organisation) -> Context:
        """The context of a change a person makes in Xero's own screens: no app is involved."""
        return Context(request, organisation, "Xero", None, self.sandbox.clock.now())

    # ---- Organisation ------------------------------------------------------------------
    def _organisation(self, ctx: Context, rest: list[str]) -> Response:
        ctx.only("GET")
        if rest and rest[0].lower() == "actions":
            return ctx.ok(Actions=ctx.org.actions())
        if rest:
            raise not_found("Endpoint")
        return ctx.ok(Organisations=[ctx.org.organisation_record()])

    # ---- Accounts ----------------------------------------------------------------------
    def _accounts(self, ctx: Context, rest: list[str]) -> Response:
        org = ctx.org
        if rest:
            account = org.account_by(account_id=rest[0])
            if account is None:
                raise not_found("Account")
            if ctx.request.method == "POST":
                self._update_account(ctx, account)
            else:
                ctx.only("GET")
            return ctx.ok(Accounts=[account])
        ctx.only("GET")
        records = ctx.filter(org.accounts, modified_field="UpdatedDateUTC")
        return ctx.ok(Accounts=q.order(records, ctx.query.get("order")))

    def _update_account(self, ctx: Context, account: dict) -> None:
        body = ctx.body()
        item = (
            body["Accounts"][0]
            if isinstance(body.get("Accounts"), list) and body["Accounts"]
            else body
        )
        if "Status" in item:
            account["Status"] = _enum(
                item["Status"], {"ACTIVE", "ARCHIVED"}, "Status", "AccountStatus"
            )
        if "EnablePaymentsToAccount" in item:
            account["EnablePaymentsToAccount"] = parse_bool(
                item["EnablePaymentsToAccount"], "EnablePaymentsToAccount"
            )
        if item.get("Name"):
            name = str(item["Name"])
            if any(
                a is not account and a["Name"].lower() == name.lower() for a in ctx.org.accounts
            ):
                raise validation_exception(
                    [{**item, "ValidationErrors": [{"Message": "Please enter a unique Name."}]}]
                )
            account["Name"] = name
        account["UpdatedDateUTC"] = ctx.now

    # ---- Currencies --------------------------------------------------------------------
    def _currencies(self, ctx: Context, rest: list[str]) -> Response:
        org = ctx.org
        if ctx.request.method == "GET":
            return ctx.ok(Currencies=ctx.filter(org.currencies))
        ctx.only("PUT", "POST")
        body = ctx.body()
        code = body.get("Code") if isinstance(body, dict) else None
        if not code:
            # Xero reads a single object; a wrapped {"Currencies": [...]} has no Code.
            raise validation_exception(
                [{"ValidationErrors": [{"Message": "A currency code must be provided."}]}]
            )
        code = str(code).upper()
        if not re.fullmatch(r"[A-Z]{3}", code):
            raise validation_exception(
                [{**body, "ValidationErrors": [{"Message": f"Currency code {code} is not valid."}]}]
            )
        if code not in org.currency_codes():
            if not org.multicurrency:
                message = (
                    f"Unable to add currency {code}: this organisation's Xero plan does not "
                    "include multi-currency."
                )
                raise validation_exception([{**body, "ValidationErrors": [{"Message": message}]}])
            org.currencies.append(
                {"Code": code, "Description": seed.CURRENCY_NAMES.get(code, code)}
            )
        currency = next(c for c in org.currencies if c["Code"] == code)
        return ctx.ok(Currencies=[currency])

    # ---- TaxRates ----------------------------------------------------------------------
    def _taxrates(self, ctx: Context, rest: list[str]) -> Response:
        org = ctx.org
        if ctx.request.method == "GET":
            if rest:
                rate = org.tax_rate(rest[0].upper())
                if rate is None:
                    raise not_found("Tax rate")
                return ctx.ok(TaxRates=[rate])
            records = [r for r in org.tax_rates if r["Status"] != "DELETED"]
            tax_type = ctx.query.get("taxtype")
            if tax_type:
                records = [r for r in records if r["TaxType"] == tax_type.upper()]
            return ctx.ok(TaxRates=q.order(ctx.filter(records), ctx.query.get("order")))
        ctx.only("PUT", "POST")
        items = ctx.items("TaxRates")
        if ctx.request.method == "PUT" and len(items) != 1:
            raise validation_exception(
                [
                    {
                        "ValidationErrors": [
                            {"Message": "Only one tax rate can be created per request."}
                        ]
                    }
                ]
            )
        return ctx.batch(items, "TaxRates", lambda item, i: self._save_tax_rate(ctx, item, i))

    def _save_tax_rate(self, ctx: Context, item: dict, index: int) -> dict:
        org = ctx.org
        existing = None
        if ctx.request.method == "POST":
            if item.get("TaxType"):
                existing = org.tax_rate(str(item["TaxType"]).upper())
            elif item.get("Name"):
                existing = next(
                    (
                        r
                        for r in org.tax_rates
                        if r["Name"] == item["Name"] and r["Status"] != "DELETED"
                    ),
                    None,
                )
        errors = Invalid()
        components = None
        if "TaxComponents" in item:
            raw_components = item["TaxComponents"]
            if not isinstance(raw_components, list):
                raise PostDataInvalid(f"Path 'TaxRates[{index}].TaxComponents' must be a list.")
            components = []
            for position, component in enumerate(raw_components):
                path = f"TaxRates[{index}].TaxComponents[{position}]"
                rate = parse_decimal(component.get("Rate", 0), f"{path}.Rate")
                if rate < 0 or rate > 100:
                    errors.add("The tax component rate must be between 0 and 100.")
                if rate != four(rate):
                    errors.add("Tax component rates can have at most 4 decimal places.")
                components.append(
                    {
                        "Name": str(component.get("Name") or "").strip(),
                        "Rate": four(rate),
                        "IsCompound": parse_bool(
                            component.get("IsCompound", False), f"{path}.IsCompound"
                        ),
                        "IsNonRecoverable": parse_bool(
                            component.get("IsNonRecoverable", False), f"{path}.IsNonRecoverable"
                        ),
                    }
                )
                if not components[-1]["Name"]:
                    errors.add("A tax component name must be provided.")
        name = str(item.get("Name") or "").strip()
        report = item.get("ReportTaxType")
        status = item.get("Status")
        if status is not None:
            status = _enum(status, TAX_STATUSES, f"TaxRates[{index}].Status", "TaxRateStatus")
        if existing is None:
            if not name:
                errors.add("The tax rate name must be provided.")
            if not components:
                errors.add("At least one tax component must be provided.")
        elif re.fullmatch(r"TAX\d{3}", existing["TaxType"]) is None and (
            components is not None or (name and name != existing["Name"])
        ):
            errors.add("System tax rates cannot be edited.")
        clash = name and any(
            r is not existing and r["Status"] != "DELETED" and r["Name"].lower() == name.lower()
            for r in org.tax_rates
        )
        if clash:
            errors.add(
                f"The tax rate name '{name}' is already in use. Tax rate names must be unique."
            )
        if org.country_code in seed.REPORT_TAX_TYPE_REFUSED and report:
            errors.add("ReportTaxType is not supported for organisations in the United States.")
        if org.country_code in seed.REPORT_TAX_TYPE_REQUIRED and existing is None and not report:
            errors.add("ReportTaxType is mandatory for tax rates in this organisation's country.")
        if errors:
            raise errors
        record = existing or {
            "Name": name,
            "TaxType": org.next_tax_type(),
            "ReportTaxType": None,
            "CanApplyToAssets": True,
            "CanApplyToEquity": True,
            "CanApplyToExpenses": True,
            "CanApplyToLiabilities": True,
            "CanApplyToRevenue": True,
            "Status": "ACTIVE",
            "TaxComponents": [],
        }
        if name:
            record["Name"] = name
        if report:
            record["ReportTaxType"] = str(report)
        if status:
            record["Status"] = status
        if components is not None:
            record["TaxComponents"] = components
            simple = sum((c["Rate"] for c in components if not c["IsCompound"]), Decimal(0))
            compound = sum(
                (c["Rate"] * (100 + simple) / 100 for c in components if c["IsCompound"]),
                Decimal(0),
            )
            record["DisplayTaxRate"] = four(sum((c["Rate"] for c in components), Decimal(0)))
            record["EffectiveRate"] = four(simple + compound)
        if existing is None:
            org.tax_rates.append(record)
        return record

    # ---- Contacts ----------------------------------------------------------------------
    def _contacts(self, ctx: Context, rest: list[str]) -> Response:
        org = ctx.org
        method = ctx.request.method
        if rest:
            contact = self._find_contact(org, rest[0])
            if contact is None:
                raise not_found("Contact")
            if method == "GET":
                return ctx.ok(Contacts=[contact])
            ctx.only("POST")
            items = ctx.items("Contacts")
            for item in items:
                item.setdefault("ContactID", contact["ContactID"])
            return ctx.batch(items, "Contacts", lambda item, i: self._upsert_contact(ctx, item, i))
        if method == "GET":
            records = list(org.contacts.values())
            if not query_bool(ctx.query.get("includearchived")):
                records = [c for c in records if c["ContactStatus"] == "ACTIVE"]
            ids = ctx.id_list("ids")
            if ids:
                records = [c for c in records if c["ContactID"].lower() in ids]
            term = (ctx.query.get("searchterm") or "").lower()
            if term:
                fields = ("Name", "FirstName", "LastName", "ContactNumber", "EmailAddress")
                records = [
                    c for c in records if any(term in str(c.get(f) or "").lower() for f in fields)
                ]
            records = q.order(
                ctx.filter(records, modified_field="UpdatedDateUTC"), ctx.query.get("order")
            )
            page, pagination = ctx.page(records)
            if query_bool(ctx.query.get("summaryonly")):
                page = [_contact_summary(c) for c in page]
            return ctx.ok(Contacts=page, **pagination)
        ctx.only("PUT", "POST")
        items = ctx.items("Contacts")
        if method == "PUT":
            return ctx.batch(items, "Contacts", lambda item, i: self._create_contact(ctx, item, i))
        return ctx.batch(items, "Contacts", lambda item, i: self._upsert_contact(ctx, item, i))

    def _find_contact(self, org: Organisation, key: str) -> dict | None:
        contact = org.contacts.get(key) or org.contacts.get(key.lower())
        if contact:
            return contact
        return next((c for c in org.contacts.values() if c.get("ContactNumber") == key), None)

    def _active_named(self, org: Organisation, name: str, except_id: str | None = None):
        wanted = name.strip().lower()
        return next(
            (
                c
                for c in org.contacts.values()
                if c["ContactStatus"] == "ACTIVE"
                and c["ContactID"] != except_id
                and c["Name"].strip().lower() == wanted
            ),
            None,
        )

    def _contact_fields(self, item: dict, index: int) -> dict:
        """The writable contact fields of a request element, type-checked."""
        path = f"Contacts[{index}]"
        fields: dict[str, Any] = {}
        for key in (
            "Name",
            "FirstName",
            "LastName",
            "EmailAddress",
            "ContactNumber",
            "AccountNumber",
            "CompanyNumber",
            "TaxNumber",
            "BankAccountDetails",
            "DefaultCurrency",
            "Website",
        ):
            if key in item:
                fields[key] = (_text(item, key) or "").strip()
        if "ContactStatus" in item:
            fields["ContactStatus"] = _enum(
                item["ContactStatus"], CONTACT_STATUSES, f"{path}.ContactStatus", "ContactStatus"
            )
        for key in ("Addresses", "Phones", "ContactPersons"):
            if key in item:
                if not isinstance(item[key], list) or not all(
                    isinstance(x, dict) for x in item[key]
                ):
                    raise PostDataInvalid(f"Path '{path}.{key}' must be a list of objects.")
                fields[key] = copy.deepcopy(item[key])
        for address in fields.get("Addresses", []):
            if "AddressType" in address:
                address["AddressType"] = _enum(
                    address["AddressType"],
                    {"POBOX", "STREET", "DELIVERY"},
                    f"{path}.Addresses",
                    "AddressType",
                )
        for phone in fields.get("Phones", []):
            if "PhoneType" in phone:
                phone["PhoneType"] = _enum(
                    phone["PhoneType"],
                    {"DEFAULT", "DDI", "MOBILE", "FAX", "OFFICE"},
                    f"{path}.Phones",
                    "PhoneType",
                )
        return fields

    def _check_contact(self, ctx: Context, fields: dict, contact_id: str | None) -> Invalid:
        errors = Invalid()
        for key, limit in CONTACT_LIMITS.items():
            if len(fields.get(key) or "") > limit:
                errors.add(f"The {key} must not be longer than {limit} characters.")
        email = fields.get("EmailAddress")
        if email and (not _EMAIL.match(email) or not _ASCII_EMAIL.match(email)):
            errors.add("Email address must be valid.")
        if len(fields.get("ContactPersons") or []) > 5:
            errors.add("A contact can have at most 5 contact persons.")
        name = fields.get("Name")
        status = fields.get("ContactStatus", "ACTIVE")
        if name and status == "ACTIVE" and self._active_named(ctx.org, name, contact_id):
            errors.add(
                f"The contact name {name} is already assigned to another contact. The contact "
                "name must be unique across all active contacts."
            )
        number = fields.get("AccountNumber")
        if number and any(
            c.get("AccountNumber") == number and c["ContactID"] != contact_id
            for c in ctx.org.contacts.values()
        ):
            errors.add(
                "The Account Number already exists. Please enter a different Account Number."
            )
        currency = fields.get("DefaultCurrency")
        if currency and currency.upper() not in ctx.org.currency_codes():
            errors.add(f"Organisation is not subscribed to currency {currency.upper()}")
        return errors

    def _create_contact(self, ctx: Context, item: dict, index: int) -> dict:
        if item.get("ContactID"):
            raise Invalid("A contact cannot be created with a ContactID; use POST to update it.")
        fields = self._contact_fields(item, index)
        errors = self._check_contact(ctx, fields, None)
        if not fields.get("Name"):
            errors.add("The contact name must be specified.")
        if errors:
            raise errors
        return self._insert_contact(ctx, fields)

    def _insert_contact(self, ctx: Context, fields: dict) -> dict:
        contact = {
            "ContactID": str(uuid.uuid4()),
            "ContactStatus": "ACTIVE",
            "Name": "",
            "FirstName": "",
            "LastName": "",
            "EmailAddress": "",
            "BankAccountDetails": "",
            "Addresses": [],
            "Phones": [],
            "ContactGroups": [],
            "ContactPersons": [],
            "IsSupplier": False,
            "IsCustomer": False,
            "HasAttachments": False,
            "HasValidationErrors": False,
        }
        contact.update(fields)
        contact["UpdatedDateUTC"] = ctx.now
        ctx.org.contacts[contact["ContactID"]] = contact
        self.sandbox.webhooks.emit(ctx.org, "CONTACT", contact["ContactID"], "CREATE")
        return contact

    def _upsert_contact(self, ctx: Context, item: dict, index: int) -> dict:
        org = ctx.org
        contact = None
        if item.get("ContactID"):
            contact = org.contacts.get(str(item["ContactID"]).lower()) or org.contacts.get(
                str(item["ContactID"])
            )
            if contact is None:
                raise Invalid("The contact with the specified ContactID could not be found.")
        elif item.get("Name"):
            contact = self._active_named(org, str(item["Name"]))
        if contact is None:
            return self._create_contact(ctx, item, index)
        fields = self._contact_fields(item, index)
        errors = self._check_contact(ctx, {**contact, **fields}, contact["ContactID"])
        if errors:
            raise errors
        self._apply_contact(ctx, contact, fields)
        return contact

    def _apply_contact(self, ctx: Context, contact: dict, fields: dict) -> None:
        for key in ("Addresses", "Phones"):
            if key in fields:
                kind = "AddressType" if key == "Addresses" else "PhoneType"
                merged = {entry.get(kind): entry for entry in contact.get(key, [])}
                for entry in fields.pop(key):
                    merged[entry.get(kind)] = {**merged.get(entry.get(kind), {}), **entry}
                contact[key] = list(merged.values())
        contact.update(fields)
        contact["UpdatedDateUTC"] = ctx.now
        self.sandbox.webhooks.emit(ctx.org, "CONTACT", contact["ContactID"], "UPDATE")

    # ---- Invoices ----------------------------------------------------------------------
    def _invoices(self, ctx: Context, rest: list[str]) -> Response:
        org = ctx.org
        method = ctx.request.method
        if rest:
            invoice = self._find_invoice(org, rest[0])
            if invoice is None:
                raise not_found("Invoice")
            if len(rest) > 1 and rest[1].lower() == "email":
                ctx.only("POST")
                return self._email_invoice(ctx, invoice)
            if len(rest) > 1:
                raise not_found("Endpoint")
            if method == "GET":
                return ctx.ok(Invoices=[self.invoice_out(ctx, invoice, lines=True)])
            ctx.only("POST")
            items = ctx.items("Invoices")
            for item in items:
                item["InvoiceID"] = invoice["InvoiceID"]
            return ctx.batch(
                items,
                "Invoices",
                lambda item, i: self.save_invoice(ctx, item, i),
                out=lambda r: self.invoice_out(ctx, r, lines=True),
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
            return ctx.ok(Invoices=[self.invoice_out(ctx, r, lines) for r in page], **pagination)
        ctx.only("PUT", "POST")
        items = ctx.items("Invoices")
        create_only = method == "PUT"
        return ctx.batch(
            items,
            "Invoices",
            lambda item, i: self.save_invoice(ctx, item, i, create_only=create_only),
            out=lambda r: self.invoice_out(ctx, r, lines=True),
        )

    def _find_invoice(self, org: Organisation, key: str) -> dict | None:
        invoice = org.invoices.get(key.lower()) or org.invoices.get(key)
        if invoice:
            return invoice
        return next(
            (
                i
                for i in org.invoices.values()
                if str(i.get("InvoiceNumber", "")).lower() == key.lower()
                and i["Status"] != "DELETED"
            ),
            None,
        )

    def invoice_out(self, ctx: Context, invoice: dict, lines: bool) -> dict:
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

    def _email_invoice(self, ctx: Context, invoice: dict) -> Response:
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

    def save_invoice(self, ctx: Context, item: dict, index: int, create_only: bool = False):
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
                existing = self._find_invoice(org, str(item["InvoiceNumber"]))
                if existing and existing["Type"] != "ACCREC":
                    existing = None
        elif item.get("InvoiceID"):
            raise Invalid("An invoice cannot be created with an InvoiceID; use POST to update it.")
        parsed = self._parse_invoice(ctx, item, index, existing)
        if existing is None:
            return self._create_invoice(ctx, parsed)
        return self._update_invoice(ctx, existing, parsed, item)

    def _parse_invoice(self, ctx: Context, item: dict, index: int, existing: dict | None) -> dict:
        """Type-check an invoice element (PostDataInvalid on what Xero cannot deserialise)."""
        path = f"Invoices[{index}]"
        parsed: dict[str, Any] = {"_present": set(item)}
        if "Type" in item:
            parsed["Type"] = _enum(item["Type"], INVOICE_TYPES, f"{path}.Type", "InvoiceType")
        if "Status" in item:
            parsed["Status"] = _enum(
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
                parsed[key] = (_text(item, key) or "").strip()
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
                self._parse_line(line, f"{path}.LineItems[{n}]", unitdp4)
                for n, line in enumerate(lines)
            ]
        return parsed

    def _parse_line(self, line: dict, path: str, unitdp4: bool) -> dict:
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

    def _resolve_contact(self, ctx: Context, given: dict, errors: Invalid) -> dict | None:
        org = ctx.org
        contact = None
        if given.get("ContactID"):
            contact = org.contacts.get(str(given["ContactID"]).lower()) or org.contacts.get(
                str(given["ContactID"])
            )
            if contact is None:
                errors.add(
                    "The contact with the specified ContactID could not be found.", contact=True
                )
                return None
        elif given.get("ContactNumber"):
            contact = next(
                (
                    c
                    for c in org.contacts.values()
                    if c.get("ContactNumber") == str(given["ContactNumber"])
                ),
                None,
            )
        if contact is None and given.get("Name") and not given.get("ContactID"):
            contact = self._active_named(org, str(given["Name"]))
            if contact is None:
                # Xero creates a contact from an unknown Name (xero-api.md §3.2, documented
                # in docs/sandbox.md).
                fields = self._contact_fields(given, 0)
                fields.pop("ContactStatus", None)
                check = self._check_contact(ctx, fields, None)
                if check:
                    for message in check.messages:
                        errors.add(message, contact=True)
                    return None
                return self._insert_contact(ctx, fields)
        if contact is None:
            if given.get("ContactNumber"):
                errors.add(
                    "The contact with the specified ContactNumber could not be found.", contact=True
                )
            else:
                errors.add(MSG_CONTACT_IDENTITY, contact=True)
            return None
        if contact["ContactStatus"] != "ACTIVE":
            errors.add(MSG_ARCHIVED_CONTACT, contact=True)
            return None
        extra = {
            k: v
            for k, v in given.items()
            if k not in ("ContactID", "ContactNumber", "ValidationErrors", "HasValidationErrors")
            and v not in (None, "", [])
        }
        if extra and given.get("ContactID"):
            # Fields beside ContactID update the contact, as in Xero.
            fields = self._contact_fields(extra, 0)
            fields.pop("ContactStatus", None)
            check = self._check_contact(ctx, {**contact, **fields}, contact["ContactID"])
            if check:
                for message in check.messages:
                    errors.add(message, contact=True)
                return None
            changed = {k: v for k, v in fields.items() if contact.get(k) != v}
            if changed:
                self._apply_contact(ctx, contact, changed)
        return contact

    def _build_lines(
        self,
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
                errors.add(
                    "A line item can have a DiscountRate or a DiscountAmount, not both.", line=n
                )
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
                    errors.add(
                        f"Account code '{label}' is not a valid code for this document.", line=n
                    )
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
                given["LineItemID"]
                if given.get("LineItemID") in previous_ids
                else str(uuid.uuid4())
            )
            line["_gross"] = money(gross)
            built.append(line)
        return built

    def _totals(self, invoice: dict) -> None:
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

    def _check_header(self, ctx: Context, invoice: dict, errors: Invalid) -> None:
        org = ctx.org
        if invoice["CurrencyCode"] not in org.currency_codes():
            errors.add(f"Organisation is not subscribed to currency {invoice['CurrencyCode']}")
        lock = org.period_lock_date
        if lock and invoice["Date"] <= lock:
            errors.add(_lock_message(lock))
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

    def _create_invoice(self, ctx: Context, parsed: dict) -> dict:
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
            errors.add(MSG_CONTACT_IDENTITY)
        else:
            contact = self._resolve_contact(ctx, parsed["Contact"], errors)
        if "LineItems" not in parsed:
            errors.add("An invoice must have at least one line item.")
        warnings: list[str] = []
        amount_types = parsed.get("LineAmountTypes", "Exclusive")
        invoice = {
            "Type": invoice_type,
            "InvoiceID": str(uuid.uuid4()),
            "InvoiceNumber": parsed.get("InvoiceNumber") or "",
            "Reference": parsed.get("Reference", "") if invoice_type == "ACCREC" else "",
            "Contact": _contact_ref(contact) if contact else {},
            "Date": parsed.get("Date") or ctx.now.date(),
            "DueDate": parsed.get("DueDate"),
            "Status": status,
            "LineAmountTypes": amount_types,
            "LineItems": self._build_lines(
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
        self._check_header(ctx, invoice, errors)
        if errors:
            raise errors
        if invoice_type == "ACCREC" and not invoice["InvoiceNumber"]:
            invoice["InvoiceNumber"] = org.next_invoice_number()
        self._totals(invoice)
        if invoice["Total"] < 0:
            raise Invalid("The invoice total must be zero or more.")
        invoice["UpdatedDateUTC"] = ctx.now
        org.invoices[invoice["InvoiceID"]] = invoice
        if contact is not None and invoice_type == "ACCREC" and status == "AUTHORISED":
            contact["IsCustomer"] = True
        if warnings:
            invoice["_warnings"] = warnings
        self.sandbox.webhooks.emit(org, "INVOICE", invoice["InvoiceID"], "CREATE")
        return invoice

    def _update_invoice(self, ctx: Context, invoice: dict, parsed: dict, raw: dict) -> dict:
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
            contact = self._resolve_contact(ctx, parsed["Contact"], errors)
            if contact is not None:
                updated["Contact"] = _contact_ref(contact)
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
            updated["LineItems"] = self._build_lines(
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
            self._check_header(ctx, updated, errors)
        if (
            status in ("DELETED", "VOIDED")
            and ctx.org.period_lock_date
            and invoice["Date"] <= ctx.org.period_lock_date
        ):
            errors.add(_lock_message(ctx.org.period_lock_date))
        if errors:
            raise errors
        for line in updated["LineItems"]:
            line.setdefault("_gross", money(line["Quantity"] * line["UnitAmount"]))
        self._totals(updated)
        if updated["Total"] < 0:
            raise Invalid("The invoice total must be zero or more.")
        updated["UpdatedDateUTC"] = ctx.now
        invoice.clear()
        invoice.update(updated)
        if warnings:
            invoice["_warnings"] = warnings
        self.sandbox.webhooks.emit(ctx.org, "INVOICE", invoice["InvoiceID"], "UPDATE")
        return invoice

    # ---- Payments ----------------------------------------------------------------------
    def _payments(self, ctx: Context, rest: list[str]) -> Response:
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
            return ctx.batch(
                items, "Payments", lambda item, i: self.delete_payment(ctx, payment, item)
            )
        if method == "GET":
            records = q.order(
                ctx.filter(list(org.payments.values()), modified_field="UpdatedDateUTC"),
                ctx.query.get("order"),
            )
            page, pagination = ctx.page(records)
            return ctx.ok(Payments=page, **pagination)
        ctx.only("PUT", "POST")
        items = ctx.items("Payments", bare=True)
        return ctx.batch(items, "Payments", lambda item, i: self.create_payment(ctx, item, i))

    def create_payment(self, ctx: Context, item: dict, index: int) -> dict:
        org = ctx.org
        path = f"Payments[{index}]"
        if item.get("PaymentID") and item.get("Status"):
            payment = org.payments.get(str(item["PaymentID"]).lower())
            if payment is None:
                raise Invalid("The Payment with the specified PaymentID could not be found.")
            return self.delete_payment(ctx, payment, item)
        errors = Invalid()
        given_invoice = item.get("Invoice") or {}
        if not isinstance(given_invoice, dict):
            raise PostDataInvalid(f"Path '{path}.Invoice' must be an object.")
        invoice = None
        if given_invoice.get("InvoiceID"):
            invoice = org.invoices.get(str(given_invoice["InvoiceID"]).lower())
        elif given_invoice.get("InvoiceNumber"):
            invoice = self._find_invoice(org, str(given_invoice["InvoiceNumber"]))
        if invoice is None:
            errors.add(
                "The Invoice could not be found. Provide a valid InvoiceID or InvoiceNumber."
            )
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
        payment_date = (
            parse_date(item["Date"], f"{path}.Date") if item.get("Date") else ctx.now.date()
        )
        lock = org.period_lock_date
        if lock and payment_date <= lock:
            errors.add(_lock_message(lock))
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
        invoice["Payments"].append(_payment_ref(payment))
        if invoice["AmountDue"] == 0:
            invoice["Status"] = "PAID"
            invoice["FullyPaidOnDate"] = payment_date
        invoice["UpdatedDateUTC"] = ctx.now
        self.sandbox.webhooks.emit(org, "INVOICE", invoice["InvoiceID"], "UPDATE")
        return payment

    def delete_payment(self, ctx: Context, payment: dict, item: dict) -> dict:
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
            raise Invalid(_lock_message(lock))
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
            self.sandbox.webhooks.emit(ctx.org, "INVOICE", invoice["InvoiceID"], "UPDATE")
        return payment


def _contact_ref(contact: dict) -> dict:
    ref = {
        "ContactID": contact["ContactID"],
        "Name": contact["Name"],
        "ContactStatus": contact["ContactStatus"],
        "EmailAddress": contact.get("EmailAddress", ""),
        "HasValidationErrors": False,
    }
    if contact.get("ContactNumber"):
        ref["ContactNumber"] = contact["ContactNumber"]
    return ref


def _contact_summary(contact: dict) -> dict:
    keys = (
        "ContactID",
        "ContactNumber",
        "AccountNumber",
        "ContactStatus",
        "Name",
        "FirstName",
        "LastName",
        "EmailAddress",
        "UpdatedDateUTC",
        "IsSupplier",
        "IsCustomer",
        "HasAttachments",
        "HasValidationErrors",
        "MergedToContactID",
    )
    return {key: contact[key] for key in keys if key in contact}


def _payment_ref(payment: dict) -> dict:
    return {
        "PaymentID": payment["PaymentID"],
        "Date": payment["Date"],
        "Amount": payment["Amount"],
        "Reference": payment["Reference"],
        "CurrencyRate": payment["CurrencyRate"],
        "HasAccount": True,
        "HasValidationErrors": False,
    }


class Context:
    """One Accounting API request being answered, or one change a person makes in Xero
    (``client_id`` None: no app made it)."""

    def __init__(
        self,
        request: Request,
        org: Organisation,
        provider: str,
        client_id: str | None,
        now: datetime,
    ) -> None:
        self.request = request
        self.org = org
        self.provider = provider
        self.client_id = client_id
        self.now = now
        self.query = request.query

    def only(self, *methods: str) -> None:
        if self.request.method not in methods:
            raise ApiError(
                405 if self.request.method != "DELETE" else 405,
                {
                    "Title": "Method Not Allowed",
                    "Status": 405,
                    "Detail": f"{self.request.method} is not supported on this endpoint",
                },
            )

    def ok(self, **collections: Any) -> Response:
        return Response.json(envelope(self.provider, self.now, **collections))

    def body(self) -> Any:
        return self.request.json()

    def items(self, collection: str, bare: bool = False) -> list[dict]:
        """The elements of a write: ``{"<Collection>": [...]}``, or one bare object where Xero
        accepts that (Payments, as the SDK sends it)."""
        body = self.body()
        if isinstance(body, dict) and collection in body:
            items = body[collection]
            if not isinstance(items, list) or not all(isinstance(x, dict) for x in items):
                raise PostDataInvalid(f"Path '{collection}' must be a list of objects.")
            return items
        if bare and isinstance(body, dict):
            return [body]
        raise PostDataInvalid(f"The request body must be a JSON object with a '{collection}' list.")

    def id_list(self, name: str) -> set[str]:
        value = self.query.get(name) or ""
        return {part.strip().lower() for part in value.split(",") if part.strip()}

    def modified_since(self) -> datetime | None:
        raw = self.request.headers.get("If-Modified-Since")
        if not raw:
            return None
        try:
            return parsedate_to_datetime(raw).astimezone(UTC)
        except (TypeError, ValueError):
            pass
        try:
            moment = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
        except ValueError:
            raise PostDataInvalid(
                f"The If-Modified-Since header '{raw}' is not a valid date."
            ) from None
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)

    def filter(self, records: list[dict], modified_field: str | None = None) -> list[dict]:
        since = self.modified_since() if modified_field else None
        if since is not None:
            records = [r for r in records if r.get(modified_field) and r[modified_field] > since]
        predicate = q.where(self.query.get("where"))
        if predicate is not None:
            records = [r for r in records if predicate(r)]
        return records

    def page(self, records: list[dict]) -> tuple[list[dict], dict]:
        if "page" not in self.query:
            return records, {}
        try:
            page = int(self.query["page"] or 1)
            size = int(self.query.get("pagesize") or DEFAULT_PAGE_SIZE)
        except ValueError:
            raise PostDataInvalid("page and pageSize must be whole numbers.") from None
        if size < 1 or size > MAX_PAGE_SIZE:
            raise ApiError(
                400,
                {
                    "ErrorNumber": 10,
                    "Type": "ValidationException",
                    "Message": f"pageSize must be between 1 and {MAX_PAGE_SIZE}.",
                    "Elements": [],
                },
            )
        page = max(page, 1)
        count = len(records)
        page_count = (count + size - 1) // size
        chunk = records[(page - 1) * size : page * size]
        return chunk, {
            "pagination": {
                "page": page,
                "pageSize": size,
                "pageCount": page_count,
                "itemCount": count,
            }
        }

    def batch(
        self,
        items: list[dict],
        collection: str,
        save: Callable[[dict, int], dict],
        out: Callable[[dict], dict] | None = None,
    ) -> Response:
        """Apply each element; Xero's summarizeErrors rules decide the answer (§2.4)."""
        summarize = (self.query.get("summarizeerrors") or "true").lower() != "false"
        results: list[tuple[dict | None, Invalid | None, dict]] = []
        for index, item in enumerate(items):
            try:
                record = save(item, index)
                results.append((record, None, item))
            except Invalid as errors:
                results.append((None, errors, item))
        failures = [errors.echo(item) for record, errors, item in results if errors]
        if summarize and failures:
            raise validation_exception(failures)
        elements = []
        for record, errors, item in results:
            if errors:
                element = errors.echo(item)
                element["StatusAttributeString"] = "ERROR"
                element["HasErrors"] = True
                element["HasValidationErrors"] = True
            else:
                assert record is not None
                element = (
                    out(record)
                    if out
                    else {k: v for k, v in record.items() if not k.startswith("_")}
                )
                warnings = record.pop("_warnings", None)
                if not summarize:
                    element["StatusAttributeString"] = "WARNING" if warnings else "OK"
                    element["ValidationErrors"] = []
                if warnings:
                    element["Warnings"] = [{"Message": w} for w in warnings]
            elements.append(element)
        return self.ok(**{collection: elements})
