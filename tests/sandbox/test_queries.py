"""How strictly the sandbox reads queries and contact fields, as Xero does: no escape for a
quote in a ``where`` string, ``searchTerm`` over five fields in any case, ``Name==`` exact
while name uniqueness ignores case, and ASCII-only email addresses."""

from __future__ import annotations

import pytest

from tests.sandbox.test_accounting_rules import (
    DUPLICATE_NAME,
    Org,
    assert_validation_error,
)

INVALID_EMAIL = "Email address must be valid."


def assert_query_parse_error(response, message: str) -> None:
    assert response.status_code == 400, (response.status_code, response.text)
    assert response.json() == {
        "ErrorNumber": 16,
        "Type": "QueryParseException",
        "Message": message,
    }


def contact_ids(org: Org, **params) -> list[str]:
    return [c["ContactID"] for c in org.ok(org.get("/Contacts", params=params))["Contacts"]]


# --------------------------------------------------------------------------- where strings


@pytest.mark.parametrize(
    "where",
    [
        r'Name=="asd\"asd"',
        r'Name=="asd\\"asd"',
        'Name=="asd""asd"',
        r'Name.Contains("asd\"asd")',
    ],
    ids=["backslash", "doubled-backslash", "doubled-quote", "in-a-method"],
)
def test_a_quote_inside_a_where_string_has_no_escape(org: Org, where: str):
    org.create_contact('asd"asd')

    assert_query_parse_error(org.get("/Contacts", params={"where": where}), "Syntax error")


def test_an_escaped_quote_is_refused_on_invoices_too(org: Org):
    response = org.get("/Invoices", params={"where": r'Reference=="PO \"7\""'})

    assert_query_parse_error(response, "Syntax error")


def test_an_unterminated_where_string_is_refused(org: Org):
    response = org.get("/Contacts", params={"where": 'Name=="Acme'})

    assert_query_parse_error(response, "Unterminated string literal")


def test_a_backslash_in_a_where_string_is_an_ordinary_character(org: Org):
    wanted = org.create_contact("Back\\Slash Ltd")

    assert contact_ids(org, where='Name=="Back\\Slash Ltd"') == [wanted["ContactID"]]


def test_a_name_holding_a_quote_is_found_by_search_term(org: Org):
    wanted = org.create_contact('The "Quoted" Company')

    assert contact_ids(org, searchTerm='"quoted"') == [wanted["ContactID"]]


# --------------------------------------------------------------------------- searchTerm


@pytest.mark.parametrize(
    ("field", "value", "term"),
    [
        ("Name", "Harbour Lights Ltd", "HARBOUR light"),
        ("FirstName", "Ngaio", "ngAIO"),
        ("LastName", "Te Rangi", "te rANGI"),
        ("ContactNumber", "CRM-00417", "crm-004"),
        ("EmailAddress", "accounts@harbour.example", "ACCOUNTS@HARB"),
    ],
)
def test_search_term_is_case_insensitive_over_each_field(org: Org, field, value, term):
    fields = {field: value} if field != "Name" else {}
    wanted = org.create_contact(value if field == "Name" else "Searched Ltd", **fields)
    org.create_contact("Unrelated Ltd", EmailAddress="someone@else.example")

    assert contact_ids(org, searchTerm=term) == [wanted["ContactID"]]


def test_search_term_leaves_other_fields_alone(org: Org):
    org.create_contact("Numbered Ltd", AccountNumber="ACC-9931", TaxNumber="TX-9931")

    assert contact_ids(org, searchTerm="9931") == []


# --------------------------------------------------------------------------- names


def test_where_name_equals_is_case_sensitive(org: Org):
    acme = org.create_contact("Acme Ltd")

    assert contact_ids(org, where='Name=="Acme Ltd"') == [acme["ContactID"]]
    assert contact_ids(org, where='Name=="ACME Ltd"') == []
    assert contact_ids(org, where='Name.ToLower()=="acme ltd"') == [acme["ContactID"]]


def test_name_uniqueness_among_active_contacts_ignores_case(org: Org):
    org.create_contact("Acme Ltd")

    response = org.put("/Contacts", {"Contacts": [{"Name": "ACME LTD"}]})

    assert_validation_error(response, DUPLICATE_NAME.format(name="ACME LTD"))
    assert len(org.ok(org.get("/Contacts"))["Contacts"]) == 1


def test_a_renamed_contact_may_not_take_another_name_in_other_case(org: Org):
    org.create_contact("Acme Ltd")
    other = org.create_contact("Other Ltd")

    response = org.post(
        f"/Contacts/{other['ContactID']}",
        {"Contacts": [{"ContactID": other["ContactID"], "Name": "acme ltd"}]},
    )

    assert_validation_error(response, DUPLICATE_NAME.format(name="acme ltd"))


# --------------------------------------------------------------------------- email addresses


@pytest.mark.parametrize("email", ["jürgen@example.de", "info@bücher.example", "zoë@cafe.example"])
def test_contacts_refuse_a_non_ascii_email_address(org: Org, email: str):
    response = org.put("/Contacts", {"Contacts": [{"Name": "Umlaut GmbH", "EmailAddress": email}]})

    assert_validation_error(response, INVALID_EMAIL)
    assert org.ok(org.get("/Contacts"))["Contacts"] == []


def test_a_contact_update_refuses_a_non_ascii_email_address(org: Org):
    contact = org.create_contact("Umlaut GmbH", EmailAddress="juergen@example.de")

    response = org.post(
        f"/Contacts/{contact['ContactID']}",
        {"Contacts": [{"ContactID": contact["ContactID"], "EmailAddress": "jürgen@example.de"}]},
    )

    assert_validation_error(response, INVALID_EMAIL)
    stored = org.ok(org.get(f"/Contacts/{contact['ContactID']}"))["Contacts"][0]
    assert stored["EmailAddress"] == "juergen@example.de"


def test_an_ascii_email_address_is_accepted(org: Org):
    contact = org.create_contact("Plain GmbH", EmailAddress="juergen.mueller@example.de")

    assert contact["EmailAddress"] == "juergen.mueller@example.de"
