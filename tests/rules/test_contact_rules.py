"""The pure contact rules: Xero contacts as CRM data, CRM contacts as Xero payloads, and which
Xero contact a CRM contact is (ContactNumber, then email, then the unique name)."""

from __future__ import annotations

from typing import Any

import pytest

from xero_integration.data import HostAddress, HostContact
from xero_integration.rules import contacts as rules
from xero_integration.sandbox import query
from xero_integration.sandbox.wire import QueryParseError

PREFIX = "CRM-"


def host(**overrides: Any) -> HostContact:
    values: dict[str, Any] = {
        "host_model": "crm.contact",
        "host_id": "42",
        "name": "Jane Smith",
        "email": "jane@example.com",
    }
    values.update(overrides)
    return HostContact(**values)


def xero(name: str, **fields: Any) -> dict[str, Any]:
    """A Xero contact as GET /Contacts returns it (only the fields the rules read)."""
    return {
        "ContactID": fields.pop("ContactID", f"id-{name}"),
        "ContactStatus": "ACTIVE",
        "Name": name,
        "EmailAddress": "",
        **fields,
    }


# ---- Xero contact → ImportedContact ------------------------------------------------------


def test_a_contact_without_email_imports_with_an_empty_email() -> None:
    imported = rules.imported_contact({"ContactID": "c1", "Name": "No Mail Ltd"})

    assert imported.xero_contact_id == "c1"
    assert imported.name == "No Mail Ltd"
    assert imported.email == ""
    assert imported.phone == ""
    assert imported.address.is_empty()
    assert imported.archived is False


def test_phones_in_xeros_shape_become_one_readable_number() -> None:
    contact = xero(
        "Phone Co",
        Phones=[
            {"PhoneType": "FAX", "PhoneNumber": "5559999", "PhoneAreaCode": "9"},
            {"PhoneType": "MOBILE", "PhoneNumber": "211234567", "PhoneCountryCode": ""},
            {
                "PhoneType": "DEFAULT",
                "PhoneNumber": "5550000",
                "PhoneAreaCode": "9",
                "PhoneCountryCode": "64",
            },
        ],
    )

    assert rules.imported_contact(contact).phone == "+64 9 5550000"


def test_an_empty_default_phone_falls_back_to_the_mobile() -> None:
    contact = xero(
        "Mobile Only",
        Phones=[
            {
                "PhoneType": "DEFAULT",
                "PhoneNumber": "",
                "PhoneAreaCode": "",
                "PhoneCountryCode": "",
            },
            {"PhoneType": "MOBILE", "PhoneNumber": "211234567", "PhoneCountryCode": "+64"},
            {"PhoneType": "FAX", "PhoneNumber": ""},
        ],
    )

    assert rules.imported_contact(contact).phone == "+64 211234567"


POBOX = {
    "AddressType": "POBOX",
    "AddressLine1": "PO Box 123",
    "AddressLine2": "Shortland St",
    "AddressLine3": "",
    "AddressLine4": "Level 2",
    "City": "Auckland",
    "Region": "Auckland",
    "PostalCode": "1140",
    "Country": "New Zealand",
    "AttentionTo": "Accounts",
}
STREET = {
    "AddressType": "STREET",
    "AddressLine1": "1 Queen Street",
    "City": "Wellington",
    "Region": "",
    "PostalCode": "6011",
    "Country": "",
}


def test_the_postal_address_is_preferred_to_the_street_address() -> None:
    imported = rules.imported_contact(xero("Addr Co", Addresses=[STREET, POBOX]))

    assert imported.address == HostAddress(
        line1="PO Box 123",
        line2="Shortland St, Level 2",
        city="Auckland",
        region="Auckland",
        postal_code="1140",
        country="New Zealand",
    )


def test_the_street_address_is_used_when_the_postal_one_is_blank() -> None:
    blank_pobox = {"AddressType": "POBOX", "AddressLine1": "", "City": "", "PostalCode": ""}
    imported = rules.imported_contact(xero("Street Co", Addresses=[blank_pobox, STREET]))

    assert imported.address == HostAddress(
        line1="1 Queen Street", city="Wellington", postal_code="6011"
    )


@pytest.mark.parametrize(
    "name",
    [
        "株式会社さくら",
        "Ωμέγα Ελληνική Εταιρεία",
        "Łódź Spółka z o.o. — Zürich",
        ("The Extraordinarily Long Named Cooperative of Independent Artisans " * 4)[:255],
    ],
)
def test_non_latin_and_255_character_names_come_through_unchanged(name: str) -> None:
    imported = rules.imported_contact(xero(name, FirstName="名", LastName="山田"))

    assert imported.name == name
    assert len(imported.name) == len(name)
    assert (imported.first_name, imported.last_name) == ("名", "山田")


def test_archived_and_merged_contacts_import_as_archived() -> None:
    archived = rules.imported_contact(xero("Gone Ltd", ContactStatus="ARCHIVED"))
    merged = xero("Dup Ltd", ContactStatus="ARCHIVED", MergedToContactID="survivor")

    assert archived.archived is True
    assert rules.imported_contact(merged).archived is True
    assert rules.merged_into(merged) == "survivor"
    assert rules.merged_into(xero("Fine Ltd")) == ""


# ---- CRM contact → Xero payload -------------------------------------------------------------


def test_contact_payload_carries_every_field_and_our_contact_number() -> None:
    contact = host(
        first_name="Jane",
        last_name="Smith",
        phone="+64 9 555 0000",
        address=HostAddress(
            line1="1 Queen Street", city="Auckland", postal_code="1010", country="NZ"
        ),
    )

    payload = rules.contact_payload(contact, PREFIX)

    assert payload == {
        "Name": "Jane Smith",
        "ContactNumber": "CRM-42",
        "FirstName": "Jane",
        "LastName": "Smith",
        "EmailAddress": "jane@example.com",
        "Phones": [{"PhoneType": "DEFAULT", "PhoneNumber": "+64 9 555 0000"}],
        "Addresses": [
            {
                "AddressType": "POBOX",
                "AddressLine1": "1 Queen Street",
                "AddressLine2": "",
                "City": "Auckland",
                "Region": "",
                "PostalCode": "1010",
                "Country": "NZ",
            }
        ],
    }


def test_contact_payload_leaves_out_what_the_crm_does_not_have() -> None:
    payload = rules.contact_payload(host(email="", name="  Bare Ltd  "), "ACME-")

    assert payload == {"Name": "Bare Ltd", "ContactNumber": "ACME-42"}


def test_contact_payload_uses_the_disambiguated_name_when_given() -> None:
    payload = rules.contact_payload(host(), PREFIX, "Jane Smith (jane@example.com)")

    assert payload["Name"] == "Jane Smith (jane@example.com)"
    assert payload["ContactNumber"] == "CRM-42"


def test_contact_payload_fits_xeros_lengths() -> None:
    payload = rules.contact_payload(host(name="N" * 400, host_id="9" * 80), PREFIX)

    assert len(payload["Name"]) == 255
    assert len(payload["ContactNumber"]) <= 50


# ---- choose() ---------------------------------------------------------------------------------


def test_contact_number_beats_email_beats_name() -> None:
    by_name = xero("Jane Smith", ContactID="by-name")
    by_email = xero("J. Smith Consulting", ContactID="by-email", EmailAddress="jane@example.com")
    by_number = xero("Smith, Jane", ContactID="by-number", ContactNumber="CRM-42")

    everything = rules.choose(host(), [by_name, by_email, by_number], PREFIX)
    no_number = rules.choose(host(), [by_name, by_email], PREFIX)
    only_name = rules.choose(host(), [by_name], PREFIX)

    assert (everything.contact["ContactID"], everything.rule) == ("by-number", "contact_number")
    assert (no_number.contact["ContactID"], no_number.rule) == ("by-email", "email")
    assert (only_name.contact["ContactID"], only_name.rule) == ("by-name", "name")
    assert "CRM-42" in everything.reason


def test_email_matches_whatever_its_case() -> None:
    candidate = xero("Other Name", EmailAddress="  JANE@Example.COM ")

    match = rules.choose(host(email="Jane@example.com"), [candidate], PREFIX)

    assert match.contact is candidate
    assert match.rule == "email"


def test_two_xero_contacts_with_one_email_pick_the_same_one_whatever_the_order() -> None:
    first = xero("Beta Holdings", ContactID="b", EmailAddress="accounts@example.com")
    second = xero("Alpha Trading", ContactID="a", EmailAddress="accounts@example.com")
    contact = host(name="Someone Else", email="accounts@example.com")

    one = rules.choose(contact, [first, second], PREFIX)
    other = rules.choose(contact, [second, first], PREFIX)

    assert one.contact["ContactID"] == other.contact["ContactID"] == "a"
    assert "2 Xero contacts share it" in one.reason


def test_two_xero_contacts_with_one_email_prefer_the_one_with_the_same_name() -> None:
    first = xero("Alpha Trading", ContactID="a", EmailAddress="accounts@example.com")
    second = xero("Jane Smith", ContactID="j", EmailAddress="accounts@example.com")

    for candidates in ([first, second], [second, first]):
        match = rules.choose(host(email="accounts@example.com"), candidates, PREFIX)
        assert match.contact["ContactID"] == "j"


def test_name_taken_with_another_email_creates_under_a_readable_name() -> None:
    taken = xero("Jane Smith", EmailAddress="someone.else@example.com")

    match = rules.choose(host(), [taken], PREFIX)

    assert match.contact is None
    assert match.rule == "create_renamed"
    assert match.name == "Jane Smith (jane@example.com)"
    assert "someone.else@example.com" in match.reason
    # Deterministic: the same CRM contact always gets the same name.
    assert rules.choose(host(), [taken], PREFIX).name == match.name


def test_disambiguated_name_without_email_uses_the_contact_number_and_fits_255() -> None:
    assert rules.disambiguated_name(host(email=""), PREFIX) == "Jane Smith (CRM-42)"
    long_name = rules.disambiguated_name(host(name="L" * 300), PREFIX)
    assert len(long_name) == 255
    assert long_name.endswith(" (jane@example.com)")


def test_name_taken_without_email_is_linked() -> None:
    taken = xero("Jane Smith", EmailAddress="")

    match = rules.choose(host(), [taken], PREFIX)

    assert match.contact is taken
    assert match.rule == "name"


def test_crm_contact_without_email_links_to_the_same_name_without_email() -> None:
    taken = xero("Jane Smith")

    assert rules.choose(host(email=""), [taken], PREFIX).contact is taken


def test_nothing_matches_create_under_the_crm_name() -> None:
    match = rules.choose(host(), [xero("Someone Else", EmailAddress="x@example.com")], PREFIX)

    assert (match.contact, match.rule, match.name) == (None, "create", "Jane Smith")


def test_archived_candidates_are_ignored() -> None:
    archived = [
        xero("Old 1", ContactStatus="ARCHIVED", ContactNumber="CRM-42"),
        xero("Old 2", ContactStatus="ARCHIVED", EmailAddress="jane@example.com"),
        xero("Jane Smith", ContactStatus="ARCHIVED", EmailAddress="other@example.com"),
    ]

    match = rules.choose(host(), archived, PREFIX)

    assert match.contact is None
    assert match.rule == "create"
    assert match.name == "Jane Smith"


# ---- what Xero is asked ------------------------------------------------------------------------


def test_names_with_quotes_are_never_put_into_a_filter_and_are_matched_by_their_name() -> None:
    name = 'Bob "The Builder" O\'Brien \\ Sons'
    contact = host(name=name, email="")
    # Xero has no escape for a quote in a filter string: what we used to send is refused.
    with pytest.raises(QueryParseError):
        query.where('Name=="Bob \\"The Builder\\" O\'Brien \\\\ Sons"')

    where = rules.contact_numbers_filter([rules.contact_number(contact, PREFIX)])
    # What searchTerm answers for the name, decided here: the same name whatever its case.
    found = [xero(name.upper()), xero("Bob The Builder O'Brien Sons")]
    match = rules.choose(contact, found, PREFIX)

    assert where == '(ContactNumber=="CRM-42")'
    assert "Bob" not in where
    assert (match.contact, match.rule) == (found[0], "name")


def test_our_contact_numbers_are_looked_up_many_in_one_filter_xero_can_read() -> None:
    where = rules.contact_numbers_filter(["CRM-1", "CRM-42", "ACME-7/b"])
    predicate = query.where(where)
    records = {
        "one": xero("One", ContactNumber="CRM-1"),
        "forty-two": xero("Forty Two", ContactNumber="CRM-42"),
        "slash": xero("Slash", ContactNumber="ACME-7/b"),
        "other": xero("Other", ContactNumber="CRM-420"),
        "none": xero("None"),
    }

    assert predicate is not None
    assert {key for key, record in records.items() if predicate(record)} == {
        "one",
        "forty-two",
        "slash",
    }


@pytest.mark.parametrize("number", ['CRM-"1', "CRM-1\\", "CRM-1&x", "CRM-ü", ""])
def test_a_contact_number_a_filter_cannot_hold_is_refused_for_a_filter(number: str) -> None:
    assert not rules.where_safe(number)
    with pytest.raises(ValueError):
        rules.contact_numbers_filter(["CRM-1", number])


# ---- names as Xero compares them -----------------------------------------------------------------


def test_a_name_that_differs_only_in_case_is_the_same_name() -> None:
    acme = xero("Acme Ltd", EmailAddress="")

    match = rules.choose(host(name="ACME Ltd"), [acme], PREFIX)

    assert (match.contact, match.rule) == (acme, "name")
    assert "'Acme Ltd'" in match.reason  # says how Xero spells it


def test_a_name_differing_in_case_with_another_email_is_created_under_a_distinct_name() -> None:
    acme = xero("Acme Ltd", EmailAddress="accounts@acme.example")

    match = rules.choose(host(name="ACME Ltd", email="billing@acme.example"), [acme], PREFIX)

    assert (match.contact, match.rule) == (None, "create_renamed")
    assert match.name == "ACME Ltd (billing@acme.example)"


def test_a_contact_carrying_another_crm_contacts_number_is_never_a_match() -> None:
    first = xero("John Smith", EmailAddress="john@example.com", ContactNumber="CRM-7")
    second = host(name="John Smith", email="john@example.com")
    no_email = host(name="john smith", email="")

    by_email = rules.choose(second, [first], PREFIX)
    by_name = rules.choose(no_email, [first], PREFIX)

    assert (by_email.contact, by_email.rule) == (None, "create_renamed")
    assert by_email.name == "John Smith (john@example.com)"
    assert (by_name.contact, by_name.rule) == (None, "create_renamed")
    assert by_name.name == "john smith (CRM-42)"
    assert "CRM-7" in by_name.reason


def test_a_contact_number_that_is_not_one_of_ours_does_not_block_a_match() -> None:
    coded = xero("John Smith", ContactNumber="C-0042")

    match = rules.choose(host(name="John Smith", email=""), [coded], PREFIX)

    assert (match.contact, match.rule) == (coded, "name")


def test_a_name_xero_says_is_taken_is_created_under_a_distinct_name() -> None:
    # Xero refused the name, though the search showed no contact holding it.
    match = rules.choose(host(email=""), [], PREFIX, name_taken=True)

    assert (match.contact, match.rule, match.name) == (
        None,
        "create_renamed",
        "Jane Smith (CRM-42)",
    )


def test_the_hosts_distinct_name_is_used_unless_it_is_taken_too() -> None:
    taken = xero("Jane Smith", EmailAddress="other@example.com")
    also_taken = xero("jane smith (acme)", EmailAddress="")

    free = rules.choose(host(), [taken], PREFIX, distinct_name="Jane Smith (Acme)")
    clash = rules.choose(host(), [taken, also_taken], PREFIX, distinct_name="Jane Smith (Acme)")
    same = rules.choose(host(), [taken], PREFIX, distinct_name="JANE SMITH")

    assert free.name == "Jane Smith (Acme)"
    assert clash.name == "Jane Smith (jane@example.com)"
    assert same.name == "Jane Smith (jane@example.com)"


# ---- email addresses Xero cannot take -------------------------------------------------------


@pytest.mark.parametrize(
    ("email", "taken"),
    [
        ("jane@example.com", "jane@example.com"),
        ("  Jane.O'Neil+tag@example.co.nz ", "Jane.O'Neil+tag@example.co.nz"),
        ("jurgen@müller.de", ""),
        ("jürgen@mueller.de", ""),
        ("jane@example", ""),
        ("jane smith@example.com", ""),
        ("a@b@example.com", ""),
        ("x" * 250 + "@example.com", ""),
    ],
)
def test_only_email_addresses_xero_accepts_are_sent(email: str, taken: str) -> None:
    payload = rules.contact_payload(host(email=email), PREFIX)

    assert rules.email_for_xero(email) == taken
    assert payload.get("EmailAddress", "") == taken


def test_a_contact_whose_email_xero_cannot_take_is_still_matched_by_name() -> None:
    same_name = xero("Jürgen Müller", EmailAddress="")

    match = rules.choose(host(name="Jürgen Müller", email="jurgen@müller.de"), [same_name], PREFIX)

    assert (match.contact, match.rule) == (same_name, "name")


# ---- linking on import ----------------------------------------------------------------------


def paired(hosts: list[HostContact], contacts: list[dict[str, Any]]) -> dict[str, tuple[str, str]]:
    """{CRM contact id: (Xero contact id, rule)} for what ``pair_imported`` links."""
    return {
        host.host_id: (match.contact["ContactID"], match.rule)
        for host, match in rules.pair_imported(hosts, contacts, PREFIX)
    }


def test_imported_contacts_are_paired_by_number_then_email_then_name() -> None:
    hosts = [
        host(host_id="1", name="Harbour Cafe", email="cafe@example.com"),
        host(host_id="2", name="Quay Bakery", email="bread@example.com"),
        host(host_id="3", name="Dockside Ltd", email=""),
        host(host_id="4", name="Nobody Here", email="nobody@example.com"),
    ]
    contacts = [
        xero("Harbour Café", ContactID="x-number", ContactNumber="CRM-1"),
        xero("Quay Bakery Ltd", ContactID="x-email", EmailAddress="BREAD@example.com"),
        xero("dockside ltd", ContactID="x-name"),
        xero("Someone Else", ContactID="x-new", EmailAddress="else@example.com"),
    ]
    assert paired(hosts, contacts) == {
        "1": ("x-number", "contact_number"),
        "2": ("x-email", "email"),
        "3": ("x-name", "name"),
    }


def test_one_xero_contact_goes_to_the_strongest_claim_and_is_paired_once() -> None:
    by_email = host(host_id="7", name="Jane Smith", email="jane@example.com")
    by_name = host(host_id="8", name="Jane Smith", email="")
    contacts = [xero("Jane Smith", ContactID="x-jane", EmailAddress="jane@example.com")]
    assert paired([by_name, by_email], contacts) == {"7": ("x-jane", "email")}


def test_a_crm_contact_is_paired_with_one_xero_contact_only() -> None:
    jane = host(host_id="7", name="Jane Smith", email="jane@example.com")
    contacts = [
        xero("Jane Smith", ContactID="x-1", EmailAddress="jane@example.com"),
        xero("J. Smith", ContactID="x-2", EmailAddress="jane@example.com"),
    ]
    assert paired([jane], contacts) == {"7": ("x-1", "email")}


def test_the_same_name_with_another_email_is_not_paired() -> None:
    jane = host(host_id="7", name="Jane Smith", email="jane@example.com")
    contacts = [xero("Jane Smith", ContactID="x-other", EmailAddress="other@example.com")]
    assert paired([jane], contacts) == {}


def test_a_xero_contact_carrying_another_crm_contacts_number_is_not_paired() -> None:
    jane = host(host_id="7", name="Jane Smith", email="jane@example.com")
    contacts = [
        xero("Jane Smith", ContactID="x-9", EmailAddress="jane@example.com", ContactNumber="CRM-9")
    ]
    assert paired([jane], contacts) == {}


def test_the_lookup_names_emails_names_and_our_contact_numbers() -> None:
    lookup = rules.contact_lookup(
        [
            rules.imported_contact(
                xero(" Harbour Cafe ", EmailAddress="Cafe@Example.com", ContactNumber="CRM-12")
            ),
            rules.imported_contact(xero("Quay Bakery", ContactNumber="ACME-3")),
        ],
        PREFIX,
    )
    assert lookup.emails == {"cafe@example.com"}
    assert lookup.names == {"harbour cafe", "quay bakery"}
    assert lookup.host_ids == {"12"}
    assert len(lookup.contacts) == 2
