"""Contact rules: Xero contacts as CRM data, CRM contacts as Xero payloads, and how a CRM
contact is matched to an existing Xero contact (ContactNumber, then email, then the name as Xero
compares names). No user text ever goes into a ``where`` string: contacts are found by our own
ContactNumber, then by Xero's ``searchTerm``, and the decision is made here."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from xero_integration.data import ContactLookup, HostAddress, HostContact, ImportedContact
from xero_integration.xero.wire import parse_datetime

#: Xero's field lengths (Xero's API documentation).
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
    """The Xero contact to create for a CRM contact (without an email Xero would refuse)."""
    payload: dict[str, Any] = {
        "Name": (name or host.name).strip()[:NAME_MAX],
        "ContactNumber": contact_number(host, prefix),
    }
    if host.first_name:
        payload["FirstName"] = host.first_name[:NAME_MAX]
    if host.last_name:
        payload["LastName"] = host.last_name[:NAME_MAX]
    email = email_for_xero(host.email)
    if email:
        payload["EmailAddress"] = email
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


# ---- lookups ----------------------------------------------------------------------------------

#: What a ContactNumber may hold to be written into a ``where`` string: Xero's filter strings
#: have no working escape for a quote (Xero's API documentation), so only these characters go there.
_WHERE_SAFE = re.compile(r"^[A-Za-z0-9_\-./: ]+$")
#: An address Xero takes: plain ASCII, something@domain.tld, no spaces (Xero's API documentation).
_XERO_EMAIL = re.compile(r"^[\x21-\x7e]+@[\x21-\x7e]+\.[\x21-\x7e]+$")


def where_safe(number: str) -> bool:
    """Whether a contact number can go into a ``where`` string as it is."""
    return bool(_WHERE_SAFE.match(number))


def contact_numbers_filter(numbers: list[str]) -> str:
    """One ``where`` that finds the contacts holding any of our contact numbers. Only numbers
    that are ``where_safe`` may be given: no user text ever goes into a filter."""
    unsafe = [number for number in numbers if not where_safe(number)]
    if unsafe or not numbers:
        raise ValueError(f"Not for a where string: {unsafe or numbers!r}")
    return " OR ".join(f'(ContactNumber=="{number}")' for number in numbers)


def email_for_xero(email: str) -> str:
    """The address as Xero takes it, or "" when Xero would refuse it ("Email address must be
    valid."): Xero takes only ASCII addresses, so ``jurgen@müller.de`` cannot go."""
    email = email.strip()
    if len(email) > EMAIL_MAX or email.count("@") != 1:
        return ""
    return email if _XERO_EMAIL.match(email) else ""


# ---- choosing -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Match:
    """Which Xero contact a CRM contact is, and why."""

    contact: dict[str, Any] | None
    reason: str
    #: "contact_number", "email" or "name" for a match; "create" or "create_renamed" otherwise.
    rule: str
    name: str = ""


def same_name(a: str, b: str) -> bool:
    """Xero's rule for names: the same whatever the case and surrounding spaces."""
    return a.strip().lower() == b.strip().lower()


def is_active(contact: dict[str, Any]) -> bool:
    return contact.get("ContactStatus", "ACTIVE") == "ACTIVE"


def others_number(contact: dict[str, Any], host: HostContact, prefix: str) -> str:
    """The contact number of another CRM contact that this Xero contact carries ("" when it
    carries ours, none, or one that is not ours to give)."""
    number = _text(contact.get("ContactNumber"))
    if not number or number == contact_number(host, prefix) or not number.startswith(prefix):
        return ""
    return number


def choose(
    host: HostContact,
    candidates: list[dict[str, Any]],
    prefix: str,
    distinct_name: str = "",
    name_taken: bool = False,
) -> Match:
    """Decide which of Xero's ``candidates`` the CRM contact is, or what to create.

    In order: our ContactNumber; the email (case-insensitive); the name, compared as Xero
    compares names for uniqueness (ignoring case), when that contact's email is empty or the
    same. A contact carrying another CRM contact's number is never a match. When the name is
    taken (seen among the candidates, or ``name_taken`` because Xero said so), the contact is
    created under ``distinct_name`` or, when that is taken too or not given, a readable name of
    our own.
    """
    active = [c for c in candidates if is_active(c)]
    number = contact_number(host, prefix)
    for contact in active:
        if _text(contact.get("ContactNumber")) == number:
            return Match(
                contact, f"Xero contact has our contact number {number}.", "contact_number"
            )
    eligible = [c for c in active if not others_number(c, host, prefix)]
    email = email_for_xero(host.email)
    if email:
        same_email = sorted(
            (c for c in eligible if same_name(_text(c.get("EmailAddress")), email)),
            key=lambda c: (not same_name(_text(c.get("Name")), host.name), _text(c.get("Name"))),
        )
        if same_email:
            chosen = same_email[0]
            extra = f" ({len(same_email)} Xero contacts share it)" if len(same_email) > 1 else ""
            return Match(chosen, f"Same email address {email}{extra}.", "email")
    name = host.name.strip()
    holder = next((c for c in active if same_name(_text(c.get("Name")), name)), None)
    if holder is None and not name_taken:
        return Match(None, "No Xero contact matches; creating it.", "create", name)
    if holder is not None:
        xero_email = _text(holder.get("EmailAddress"))
        taken_by = others_number(holder, host, prefix)
        if not taken_by and (not xero_email or (email and same_name(xero_email, email))):
            shown = _text(holder.get("Name"))
            spelt = "" if shown == name else f" (spelt {shown!r} in Xero)"
            return Match(holder, f"Same name {name!r}{spelt} and no conflicting email.", "name")
        if taken_by:
            why = f"belongs to the Xero contact of another CRM contact ({taken_by})"
        else:
            why = f"belongs to another Xero contact ({xero_email})"
    else:
        why = "is taken in Xero by another contact"
    renamed = _free_name(host, prefix, distinct_name, active)
    return Match(
        None,
        f"The name {name!r} {why}; Xero keeps names unique, so creating {renamed!r}.",
        "create_renamed",
        renamed,
    )


def _free_name(host: HostContact, prefix: str, proposed: str, active: list[dict[str, Any]]) -> str:
    """The first of the proposed name, ours, and the name with our contact number that no
    ACTIVE candidate holds (Xero refuses a taken one)."""
    taken = [_text(c.get("Name")) for c in active]
    options = [proposed, disambiguated_name(host, prefix), numbered_name(host, prefix)]
    for option in options:
        option = option.strip()[:NAME_MAX]
        if (
            option
            and not same_name(option, host.name)
            and not any(same_name(option, name) for name in taken)
        ):
            return option
    return numbered_name(host, prefix)


def numbered_name(host: HostContact, prefix: str) -> str:
    """The name followed by our contact number: "John Smith (CRM-123)"."""
    suffix = f" ({contact_number(host, prefix)})"
    return host.name.strip()[: NAME_MAX - len(suffix)] + suffix


def disambiguated_name(host: HostContact, prefix: str) -> str:
    """A readable name Xero has not given to anyone: "Jane Smith (jane@x.com)", or with the
    contact number when there is no email Xero could take."""
    email = email_for_xero(host.email)
    if not email:
        return numbered_name(host, prefix)
    suffix = f" ({email})"
    return host.name.strip()[: NAME_MAX - len(suffix)] + suffix


# ---- linking on import ---------------------------------------------------------------------

#: The rules that link a CRM contact to a Xero contact, strongest first.
LINK_RULES = ("contact_number", "email", "name")


def host_id_in(number: str, prefix: str) -> str:
    """The CRM contact's primary key our contact number names ("" for a number not ours)."""
    number = number.strip()
    return number[len(prefix) :] if prefix and number.startswith(prefix) else ""


def contact_lookup(contacts: list[ImportedContact], prefix: str) -> ContactLookup:
    """What the adapter needs to find the CRM contacts that may be these Xero contacts."""
    return ContactLookup(
        contacts=tuple(contacts),
        emails=frozenset(c.email.strip().lower() for c in contacts if c.email.strip()),
        names=frozenset(c.name.strip().lower() for c in contacts if c.name.strip()),
        host_ids=frozenset(filter(None, (host_id_in(c.contact_number, prefix) for c in contacts))),
    )


def pair_imported(
    hosts: list[HostContact], xero_contacts: list[dict[str, Any]], prefix: str
) -> list[tuple[HostContact, Match]]:
    """Which of the Xero contacts being imported are CRM contacts the CRM already has, by the
    rules an invoice's contact is matched with (``choose``): our contact number, then the
    email, then the name. Stronger evidence is served first, and each CRM contact and each Xero
    contact is paired at most once, so an import never links two CRM contacts to one Xero
    contact. The others are left to be created."""
    index: dict[str, list[int]] = {}
    for position, contact in enumerate(xero_contacts):
        for key in _keys(
            _text(contact.get("ContactNumber")),
            _text(contact.get("EmailAddress")),
            _text(contact.get("Name")),
        ):
            index.setdefault(key, []).append(position)
    taken: set[int] = set()
    pairs: list[tuple[HostContact, Match]] = []
    pending = list(hosts)
    for rule in LINK_RULES:
        waiting = []
        for host in pending:
            related = sorted(_related(host, index, prefix) - taken)
            match = choose(host, [xero_contacts[n] for n in related], prefix)
            if match.contact is not None and match.rule == rule:
                taken.add(next(n for n in related if xero_contacts[n] is match.contact))
                pairs.append((host, match))
            else:
                waiting.append(host)
        pending = waiting
    return pairs


def _related(host: HostContact, index: dict[str, list[int]], prefix: str) -> set[int]:
    """The positions of the Xero contacts ``choose`` could pick for ``host`` (the same number,
    email or name): choosing among them, in their order, decides as choosing among all would."""
    keys = _keys(contact_number(host, prefix), email_for_xero(host.email), host.name)
    return {position for key in keys for position in index.get(key, ())}


def _keys(number: str, email: str, name: str) -> list[str]:
    """What a contact can be found by: its contact number, email and name as compared."""
    keys = [("number", number.strip()), ("email", email.strip().lower())]
    keys.append(("name", name.strip().lower()))
    return [f"{kind}:{value}" for kind, value in keys if value]
