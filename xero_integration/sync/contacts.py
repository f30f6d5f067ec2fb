"""Contact rules: Xero contacts as CRM data, CRM contacts as Xero payloads, and how a CRM
contact is matched to an existing Xero contact (ContactNumber, then email, then exact name)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from xero_integration.data import HostAddress, HostContact, ImportedContact
from xero_integration.xero.wire import parse_datetime

#: Xero's field lengths (xero-api.md §3.1).
NAME_MAX = 255
CONTACT_NUMBER_MAX = 50
EMAIL_MAX = 255
PHONE_MAX = 50


def _text(value: Any) -> str:
    return str(value).strip() if value is not None else ""


def _phone(phones: list[dict[str, Any]]) -> str:
    """The contact's main phone in one string ("+64 9 5550000"); DEFAULT before MOBILE."""
    by_type = {p.get("PhoneType"): p for p in phones or [] if _text(p.get("PhoneNumber"))}
    for kind in ("DEFAULT", "MOBILE", "DDI", "OFFICE"):
        phone = by_type.get(kind)
        if phone:
            country = _text(phone.get("PhoneCountryCode"))
            parts = [
                f"+{country.lstrip('+')}" if country else "",
                _text(phone.get("PhoneAreaCode")),
                _text(phone.get("PhoneNumber")),
            ]
            return " ".join(part for part in parts if part)
    return ""


def _address(addresses: list[dict[str, Any]]) -> HostAddress:
    """The postal (POBOX) address, or the street address when there is no postal one."""
    by_type = {a.get("AddressType"): a for a in addresses or []}
    for kind in ("POBOX", "STREET"):
        address = by_type.get(kind)
        if address and any(_text(address.get(k)) for k in ("AddressLine1", "City", "PostalCode")):
            second = ", ".join(
                _text(address.get(k))
                for k in ("AddressLine2", "AddressLine3", "AddressLine4")
                if _text(address.get(k))
            )
            return HostAddress(
                line1=_text(address.get("AddressLine1")),
                line2=second,
                city=_text(address.get("City")),
                region=_text(address.get("Region")),
                postal_code=_text(address.get("PostalCode")),
                country=_text(address.get("Country")),
            )
    return HostAddress()


def imported_contact(contact: dict[str, Any]) -> ImportedContact:
    """A Xero contact (as GET /Contacts returns it) as plain data for the host's adapter."""
    return ImportedContact(
        xero_contact_id=_text(contact.get("ContactID")),
        name=_text(contact.get("Name")),
        first_name=_text(contact.get("FirstName")),
        last_name=_text(contact.get("LastName")),
        email=_text(contact.get("EmailAddress")),
        phone=_phone(contact.get("Phones") or []),
        company_number=_text(contact.get("CompanyNumber")),
        contact_number=_text(contact.get("ContactNumber")),
        address=_address(contact.get("Addresses") or []),
        archived=contact.get("ContactStatus") not in (None, "ACTIVE"),
    )


def merged_into(contact: dict[str, Any]) -> str:
    """The ContactID a contact was merged into ("" when it was not merged)."""
    return _text(contact.get("MergedToContactID"))


def updated_at(contact: dict[str, Any]):
    return parse_datetime(contact.get("UpdatedDateUTC"))


def contact_number(host: HostContact, prefix: str) -> str:
    """What we write into Xero's ContactNumber for a CRM contact, to find it again later."""
    return f"{prefix}{host.host_id}"[:CONTACT_NUMBER_MAX]


def contact_payload(host: HostContact, prefix: str, name: str | None = None) -> dict[str, Any]:
    """The Xero contact to create for a CRM contact."""
    payload: dict[str, Any] = {
        "Name": (name or host.name).strip()[:NAME_MAX],
        "ContactNumber": contact_number(host, prefix),
    }
    if host.first_name:
        payload["FirstName"] = host.first_name[:NAME_MAX]
    if host.last_name:
        payload["LastName"] = host.last_name[:NAME_MAX]
    if host.email:
        payload["EmailAddress"] = host.email[:EMAIL_MAX]
    if host.phone:
        payload["Phones"] = [{"PhoneType": "DEFAULT", "PhoneNumber": host.phone[:PHONE_MAX]}]
    if not host.address.is_empty():
        address = host.address
        payload["Addresses"] = [
            {
                "AddressType": "POBOX",
                "AddressLine1": address.line1[:500],
                "AddressLine2": address.line2[:500],
                "City": address.city[:255],
                "Region": address.region[:255],
                "PostalCode": address.postal_code[:50],
                "Country": address.country[:50],
            }
        ]
    return payload


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def candidates_filter(host: HostContact, prefix: str) -> str:
    """One ``where`` that finds every ACTIVE Xero contact the CRM contact could match."""
    clauses = [f"ContactNumber=={_quoted(contact_number(host, prefix))}"]
    if host.email:
        clauses.append(f"EmailAddress!=null&&EmailAddress.ToLower()=={_quoted(host.email.lower())}")
    if host.name.strip():
        clauses.append(f"Name=={_quoted(host.name.strip())}")
    return " OR ".join(f"({clause})" for clause in clauses)


@dataclass(frozen=True)
class Match:
    """Which Xero contact a CRM contact is, and why."""

    contact: dict[str, Any] | None
    reason: str
    #: "contact_number", "email" or "name" for a match; "create" or "create_renamed" otherwise.
    rule: str
    name: str = ""


def _same(a: str, b: str) -> bool:
    return a.strip().lower() == b.strip().lower()


def choose(host: HostContact, candidates: list[dict[str, Any]], prefix: str) -> Match:
    """Decide which of Xero's ACTIVE ``candidates`` the CRM contact is, or what to create.

    In order: our ContactNumber; the email (case-insensitive); the exact name, when that
    contact's email is empty or the same (Xero keeps names unique among ACTIVE contacts, so a
    different person of the same name is created under a readable disambiguated name).
    """
    active = [c for c in candidates if c.get("ContactStatus", "ACTIVE") == "ACTIVE"]
    number = contact_number(host, prefix)
    for contact in active:
        if _text(contact.get("ContactNumber")) == number:
            return Match(
                contact, f"Xero contact has our contact number {number}.", "contact_number"
            )
    if host.email:
        same_email = sorted(
            (c for c in active if _same(_text(c.get("EmailAddress")), host.email)),
            key=lambda c: (not _same(_text(c.get("Name")), host.name), _text(c.get("Name"))),
        )
        if same_email:
            chosen = same_email[0]
            extra = f" ({len(same_email)} Xero contacts share it)" if len(same_email) > 1 else ""
            return Match(chosen, f"Same email address {host.email}{extra}.", "email")
    name = host.name.strip()
    named = next((c for c in active if _same(_text(c.get("Name")), name)), None)
    if named is not None:
        xero_email = _text(named.get("EmailAddress"))
        if not xero_email or (host.email and _same(xero_email, host.email)):
            return Match(named, f"Same name {name!r} and no conflicting email.", "name")
        renamed = disambiguated_name(host, prefix)
        return Match(
            None,
            f"The name {name!r} belongs to another Xero contact ({xero_email}); creating "
            f"{renamed!r}.",
            "create_renamed",
            renamed,
        )
    return Match(None, "No Xero contact matches; creating it.", "create", name)


def disambiguated_name(host: HostContact, prefix: str) -> str:
    """A readable name Xero has not given to anyone: "Jane Smith (jane@x.com)", or with the
    contact number when there is no email."""
    suffix = f" ({host.email})" if host.email else f" ({contact_number(host, prefix)})"
    return host.name.strip()[: NAME_MAX - len(suffix)] + suffix
