"""``GET/PUT/POST /Contacts`` and ``GET/POST /Contacts/{ContactID|ContactNumber}``: unique
names among ACTIVE contacts, field limits, ASCII email addresses, ``searchTerm``, and how an
invoice's ``Contact`` finds (or creates) its contact (Xero's API documentation)."""

from __future__ import annotations

import copy
import re
import uuid
from typing import Any

from .. import query as q
from ..messages import Response
from ..state import Organisation
from ..wire import PostDataInvalid, query_bool
from .core import Context, Invalid, enum_value, not_found, text_value

CONTACT_STATUSES = {"ACTIVE", "ARCHIVED", "GDPRREQUEST"}
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


def handle(ctx: Context, rest: list[str]) -> Response:
    """Read, create (PUT) or create-or-update (POST) contacts."""
    org = ctx.org
    method = ctx.request.method
    if rest:
        contact = find(org, rest[0])
        if contact is None:
            raise not_found("Contact")
        if method == "GET":
            return ctx.ok(Contacts=[contact])
        ctx.only("POST")
        items = ctx.items("Contacts")
        for item in items:
            item.setdefault("ContactID", contact["ContactID"])
        return ctx.batch(items, "Contacts", lambda item, i: _upsert(ctx, item, i))
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
            page = [_summary(c) for c in page]
        return ctx.ok(Contacts=page, **pagination)
    ctx.only("PUT", "POST")
    items = ctx.items("Contacts")
    if method == "PUT":
        return ctx.batch(items, "Contacts", lambda item, i: _create(ctx, item, i))
    return ctx.batch(items, "Contacts", lambda item, i: _upsert(ctx, item, i))


def find(org: Organisation, key: str) -> dict | None:
    """The contact with this ContactID, else the one with this ContactNumber."""
    contact = org.contacts.get(key) or org.contacts.get(key.lower())
    if contact:
        return contact
    return next((c for c in org.contacts.values() if c.get("ContactNumber") == key), None)


def active_named(org: Organisation, name: str, except_id: str | None = None) -> dict | None:
    """The ACTIVE contact holding this name, ignoring case and surrounding spaces."""
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


def writable_fields(item: dict, index: int) -> dict:
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
            fields[key] = (text_value(item, key) or "").strip()
    if "ContactStatus" in item:
        fields["ContactStatus"] = enum_value(
            item["ContactStatus"], CONTACT_STATUSES, f"{path}.ContactStatus", "ContactStatus"
        )
    for key in ("Addresses", "Phones", "ContactPersons"):
        if key in item:
            if not isinstance(item[key], list) or not all(isinstance(x, dict) for x in item[key]):
                raise PostDataInvalid(f"Path '{path}.{key}' must be a list of objects.")
            fields[key] = copy.deepcopy(item[key])
    for address in fields.get("Addresses", []):
        if "AddressType" in address:
            address["AddressType"] = enum_value(
                address["AddressType"],
                {"POBOX", "STREET", "DELIVERY"},
                f"{path}.Addresses",
                "AddressType",
            )
    for phone in fields.get("Phones", []):
        if "PhoneType" in phone:
            phone["PhoneType"] = enum_value(
                phone["PhoneType"],
                {"DEFAULT", "DDI", "MOBILE", "FAX", "OFFICE"},
                f"{path}.Phones",
                "PhoneType",
            )
    return fields


def check(ctx: Context, fields: dict, contact_id: str | None) -> Invalid:
    """Xero's validation of a contact's fields; ``contact_id`` is the contact being edited."""
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
    if name and status == "ACTIVE" and active_named(ctx.org, name, contact_id):
        errors.add(
            f"The contact name {name} is already assigned to another contact. The contact "
            "name must be unique across all active contacts."
        )
    number = fields.get("AccountNumber")
    if number and any(
        c.get("AccountNumber") == number and c["ContactID"] != contact_id
        for c in ctx.org.contacts.values()
    ):
        errors.add("The Account Number already exists. Please enter a different Account Number.")
    currency = fields.get("DefaultCurrency")
    if currency and currency.upper() not in ctx.org.currency_codes():
        errors.add(f"Organisation is not subscribed to currency {currency.upper()}")
    return errors


def _create(ctx: Context, item: dict, index: int) -> dict:
    if item.get("ContactID"):
        raise Invalid("A contact cannot be created with a ContactID; use POST to update it.")
    fields = writable_fields(item, index)
    errors = check(ctx, fields, None)
    if not fields.get("Name"):
        errors.add("The contact name must be specified.")
    if errors:
        raise errors
    return insert(ctx, fields)


def insert(ctx: Context, fields: dict) -> dict:
    """Add a contact made of checked ``fields``."""
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
    ctx.emit("CONTACT", contact["ContactID"], "CREATE")
    return contact


def _upsert(ctx: Context, item: dict, index: int) -> dict:
    org = ctx.org
    contact = None
    if item.get("ContactID"):
        contact = org.contacts.get(str(item["ContactID"]).lower()) or org.contacts.get(
            str(item["ContactID"])
        )
        if contact is None:
            raise Invalid("The contact with the specified ContactID could not be found.")
    elif item.get("Name"):
        contact = active_named(org, str(item["Name"]))
    if contact is None:
        return _create(ctx, item, index)
    fields = writable_fields(item, index)
    errors = check(ctx, {**contact, **fields}, contact["ContactID"])
    if errors:
        raise errors
    apply_changes(ctx, contact, fields)
    return contact


def apply_changes(ctx: Context, contact: dict, fields: dict) -> None:
    """Write checked ``fields`` into a contact (addresses and phones merged by type)."""
    for key in ("Addresses", "Phones"):
        if key in fields:
            kind = "AddressType" if key == "Addresses" else "PhoneType"
            merged = {entry.get(kind): entry for entry in contact.get(key, [])}
            for entry in fields.pop(key):
                merged[entry.get(kind)] = {**merged.get(entry.get(kind), {}), **entry}
            contact[key] = list(merged.values())
    contact.update(fields)
    contact["UpdatedDateUTC"] = ctx.now
    ctx.emit("CONTACT", contact["ContactID"], "UPDATE")


def resolve_for_document(ctx: Context, given: dict, errors: Invalid) -> dict | None:
    """The contact an invoice's ``Contact`` names (by ContactID, ContactNumber or Name; an
    unknown Name creates it), or None with the reason added to ``errors``."""
    org = ctx.org
    contact = None
    if given.get("ContactID"):
        contact = org.contacts.get(str(given["ContactID"]).lower()) or org.contacts.get(
            str(given["ContactID"])
        )
        if contact is None:
            errors.add("The contact with the specified ContactID could not be found.", contact=True)
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
        contact = active_named(org, str(given["Name"]))
        if contact is None:
            # Xero creates a contact from an unknown Name (Xero's API documentation, documented
            # in docs/sandbox.md).
            fields = writable_fields(given, 0)
            fields.pop("ContactStatus", None)
            problems = check(ctx, fields, None)
            if problems:
                for message in problems.messages:
                    errors.add(message, contact=True)
                return None
            return insert(ctx, fields)
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
        fields = writable_fields(extra, 0)
        fields.pop("ContactStatus", None)
        problems = check(ctx, {**contact, **fields}, contact["ContactID"])
        if problems:
            for message in problems.messages:
                errors.add(message, contact=True)
            return None
        changed = {k: v for k, v in fields.items() if contact.get(k) != v}
        if changed:
            apply_changes(ctx, contact, changed)
    return contact


def reference(contact: dict) -> dict:
    """The contact as an invoice's ``Contact`` element shows it."""
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


def _summary(contact: dict) -> dict:
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
