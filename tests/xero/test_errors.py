"""Xero's error replies mapped to the exception hierarchy."""

from __future__ import annotations

import json
import pickle

import pytest

from xero_integration.xero.errors import (
    Disconnected,
    FieldError,
    Forbidden,
    NotFound,
    OAuthError,
    RateLimited,
    ServerError,
    ThrottledLocally,
    TokenExpired,
    Unauthorized,
    Unavailable,
    ValidationError,
    XeroAPIError,
    XeroError,
    XeroTransportError,
    element_errors,
    element_warnings,
    error_from_response,
    oauth_error_from_response,
)

CORRELATION = {"Xero-Correlation-Id": "c0ffee00-1111-2222-3333-444455556666"}

# The contact-create 400 example from Xero's OpenAPI file (xero_accounting.yaml, createContacts).
BUZZ_LIGHTYEAR_400 = {
    "ErrorNumber": 10,
    "Type": "ValidationException",
    "Message": "A validation exception occurred",
    "Elements": [
        {
            "ContactID": "00000000-0000-0000-0000-000000000000",
            "AccountNumber": "12345-ABCD",
            "Name": "Buzz Lightyear",
            "Addresses": [
                {"AddressType": "STREET", "City": "San Francisco", "ValidationErrors": []}
            ],
            "Phones": [{"PhoneType": "MOBILE", "PhoneNumber": "555-1212", "ValidationErrors": []}],
            "ContactGroups": [],
            "PaymentTerms": {
                "Bills": {"Day": 15, "Type": "OFCURRENTMONTH", "ValidationErrors": []},
                "Sales": {"Day": 10, "Type": "DAYSAFTERBILLMONTH", "ValidationErrors": []},
            },
            "ContactPersons": [],
            "HasValidationErrors": True,
            "ValidationErrors": [
                {
                    "Message": "The contact name Buzz Lightyear is already assigned to another "
                    "contact. The contact name must be unique across all active contacts."
                }
            ],
        }
    ],
}

NESTED_INVOICE_400 = {
    "ErrorNumber": 10,
    "Type": "ValidationException",
    "Message": "A validation exception occurred",
    "Elements": [
        {
            "Type": "ACCREC",
            "InvoiceNumber": "INV-0042",
            "Contact": {
                "Name": "Acme",
                "Addresses": [
                    {"AddressType": "POBOX", "ValidationErrors": []},
                    {
                        "AddressType": "STREET",
                        "ValidationErrors": [{"Message": "Country must be 50 characters or less"}],
                    },
                ],
                "ValidationErrors": [{"Message": "Email address must be valid."}],
            },
            "LineItems": [
                {"Description": "ok", "ValidationErrors": []},
                {
                    "Description": "bad",
                    "ValidationErrors": [
                        {"Message": "Account code '999' is not a valid code for this document."},
                        {"Message": "Tax rate must be valid."},
                    ],
                },
            ],
            "ValidationErrors": [{"Message": "Invoice # must be unique."}],
        }
    ],
}

TOKEN_EXPIRED_401 = {
    "Type": None,
    "Title": "Unauthorized",
    "Status": 401,
    "Detail": "TokenExpired: token expired at 04/09/2023 05:16:59",
    "Instance": "3f0e4b4a-7d5e-4a8e-9a1c-0a1b2c3d4e5f",
    "Extensions": {},
}
MISSING_SCOPE_401 = {**TOKEN_EXPIRED_401, "Detail": "AuthorizationUnsuccessful"}
NOT_CONNECTED_403 = {
    "Type": None,
    "Title": "Forbidden",
    "Status": 403,
    "Detail": "AuthenticationUnsuccessful",
    "Instance": "3f0e4b4a-7d5e-4a8e-9a1c-0a1b2c3d4e5f",
    "Extensions": {},
}


def api_error(status: int, body: object, headers: dict[str, str] | None = None) -> XeroAPIError:
    text = body if isinstance(body, str) else json.dumps(body)
    return error_from_response(
        status, text, {**CORRELATION, **(headers or {})}, method="PUT", path="/Invoices"
    )


def test_validation_messages_come_with_their_field_paths_at_every_level() -> None:
    error = api_error(400, NESTED_INVOICE_400)
    assert isinstance(error, ValidationError)
    assert [(e.path, e.message) for e in error.errors] == [
        ("", "Invoice # must be unique."),
        ("Contact", "Email address must be valid."),
        ("Contact.Addresses[1]", "Country must be 50 characters or less"),
        ("LineItems[1]", "Account code '999' is not a valid code for this document."),
        ("LineItems[1]", "Tax rate must be valid."),
    ]
    text = str(error)
    assert "LineItems[1]: Tax rate must be valid." in text
    assert "Contact.Addresses[1]: Country must be 50 characters or less" in text
    assert "c0ffee00-1111-2222-3333-444455556666" in text
    assert error.error_type == "ValidationException"
    assert error.retryable is False


def test_xero_openapi_contact_example_gives_the_name_clash_message() -> None:
    error = api_error(400, BUZZ_LIGHTYEAR_400)
    assert isinstance(error, ValidationError)
    assert len(error.errors) == 1
    assert error.errors[0].path == ""
    assert error.errors[0].message.startswith("The contact name Buzz Lightyear is already")
    assert error.summary() == error.errors[0].message


def test_several_failing_elements_are_told_apart_by_position() -> None:
    body = {
        "ErrorNumber": 10,
        "Type": "ValidationException",
        "Message": "A validation exception occurred",
        "Elements": [
            {"Name": "A", "ValidationErrors": [{"Message": "first"}]},
            {"Name": "B", "LineItems": [{"ValidationErrors": [{"Message": "second"}]}]},
        ],
    }
    error = api_error(400, body)
    assert isinstance(error, ValidationError)
    assert error.errors == [
        FieldError("first", "", 0),
        FieldError("second", "LineItems[0]", 1),
    ]
    assert str(error.errors[1]) == "[1].LineItems[0]: second"


def test_post_data_invalid_body_keeps_xero_message() -> None:
    body = {
        "ErrorNumber": 14,
        "Type": "PostDataInvalidException",
        "Message": 'Error converting value "NO_TAX" to type '
        "'Xero.API.Library.DataContracts.LineAmountType'. Path 'LineAmountTypes'.",
    }
    error = api_error(400, body)
    assert isinstance(error, ValidationError)
    assert error.error_type == "PostDataInvalidException"
    assert [e.message for e in error.errors] == [body["Message"]]
    assert '"NO_TAX"' in str(error)


def test_query_parse_body_keeps_xero_message() -> None:
    body = {"ErrorNumber": 16, "Type": "QueryParseException", "Message": "Operator '=' expected"}
    error = api_error(400, body)
    assert isinstance(error, ValidationError)
    assert error.error_type == "QueryParseException"
    assert error.summary() == "Operator '=' expected"


def test_validation_error_is_also_a_value_error() -> None:
    with pytest.raises(ValueError):
        raise api_error(400, BUZZ_LIGHTYEAR_400)


def test_expired_token_401() -> None:
    error = api_error(401, TOKEN_EXPIRED_401)
    assert isinstance(error, TokenExpired)
    assert "TokenExpired: token expired at 04/09/2023 05:16:59" in str(error)


def test_missing_scope_401_is_unauthorized_not_expired() -> None:
    error = api_error(401, MISSING_SCOPE_401)
    assert type(error) is Unauthorized
    assert error.summary() == "AuthorizationUnsuccessful"


def test_tenant_not_connected_403_is_disconnected() -> None:
    error = api_error(403, NOT_CONNECTED_403)
    assert isinstance(error, Disconnected)
    assert isinstance(error, Forbidden)
    assert error.retryable is False


def test_other_403_is_forbidden_only() -> None:
    error = api_error(403, "Forbidden")
    assert type(error) is Forbidden


def test_404_without_a_body() -> None:
    error = api_error(404, "")
    assert isinstance(error, NotFound)
    assert error.summary() == "HTTP 404"


def test_429_carries_retry_after_and_the_problem() -> None:
    error = api_error(429, "", {"Retry-After": "37", "X-Rate-Limit-Problem": "minute"})
    assert isinstance(error, RateLimited)
    assert error.retry_after == 37.0
    assert error.problem == "minute"
    assert error.retryable is True
    assert "minute" in str(error)


def test_legacy_503_rate_limit_is_rate_limited() -> None:
    error = api_error(503, "oauth_problem=rate%20limit%20exceeded&oauth_problem_advice=slow")
    assert isinstance(error, RateLimited)
    assert error.problem == "rate limit exceeded"


def test_500_is_retryable_server_error_and_501_is_not() -> None:
    error = api_error(500, {"ErrorNumber": 500, "Type": "UnknownErrorException", "Message": "x"})
    assert isinstance(error, ServerError) and error.retryable
    not_implemented = api_error(501, "Not Implemented")
    assert isinstance(not_implemented, ServerError) and not not_implemented.retryable


@pytest.mark.parametrize(
    "text",
    [
        "The Xero API is currently offline for maintenance",
        "The Xero API is temporarily unavailable",
    ],
)
def test_503_plain_text_bodies(text: str) -> None:
    error = api_error(503, text)
    assert isinstance(error, Unavailable)
    assert error.retryable
    assert error.payload is None
    assert text in str(error)
    assert not error.organisation_offline


def test_503_organisation_offline_is_flagged_and_not_a_disconnection() -> None:
    error = api_error(503, "The Organisation is offline")
    assert isinstance(error, Unavailable)
    assert error.organisation_offline
    assert not isinstance(error, Forbidden)


def test_unlisted_status_is_a_plain_api_error() -> None:
    error = api_error(412, "Precondition Failed")
    assert type(error) is XeroAPIError
    assert error.status == 412
    assert "Precondition Failed" in str(error)


def test_long_plain_text_bodies_are_cut_in_messages() -> None:
    error = api_error(503, "<html>" + "x" * 5000)
    assert len(str(error)) < 700
    assert len(error.body) > 5000


def test_element_errors_read_a_summarize_errors_false_result() -> None:
    result = {
        "InvoiceID": "00000000-0000-0000-0000-000000000000",
        "StatusAttributeString": "ERROR",
        "HasErrors": True,
        "LineItems": [{"ValidationErrors": [{"Message": "Account must be valid."}]}],
        "ValidationErrors": [{"Message": "Tax rate must be valid."}],
        "Warnings": [{"Message": "Account code '476' has been removed"}],
    }
    assert [str(e) for e in element_errors(result)] == [
        "Tax rate must be valid.",
        "LineItems[0]: Account must be valid.",
    ]
    assert [e.message for e in element_warnings(result)] == ["Account code '476' has been removed"]


@pytest.mark.parametrize(
    ("status", "body", "code", "retryable"),
    [
        (400, '{"error":"invalid_grant"}', "invalid_grant", False),
        (400, '{"error":"invalid_scope"}', "invalid_scope", False),
        (400, '{"error":"invalid_client"}', "invalid_client", False),
        (400, '{"error":"access_denied","error_description":"no"}', "access_denied", False),
        (400, "error=invalid_grant&error_description=expired", "invalid_grant", False),
        (503, "<html>Service Unavailable</html>", "temporarily_unavailable", True),
        (502, "Bad Gateway", "server_error", True),
        (429, "", "rate_limited", True),
        (400, "<html>oops</html>", "invalid_response", False),
    ],
)
def test_token_endpoint_errors(status: int, body: str, code: str, retryable: bool) -> None:
    error = oauth_error_from_response(status, body)
    assert isinstance(error, OAuthError)
    assert isinstance(error, XeroError)
    assert error.error == code
    assert error.status == status
    assert error.retryable is retryable
    assert code in str(error)


def test_every_error_is_a_xero_error() -> None:
    for status, body in [(400, "{}"), (401, ""), (403, ""), (404, ""), (429, ""), (500, "")]:
        assert isinstance(api_error(status, body), XeroError)


def test_errors_built_from_text_alone_still_read_the_json() -> None:
    error = ValidationError(400, json.dumps(NESTED_INVOICE_400))
    assert error.errors[0].message == "Invoice # must be unique."
    assert TokenExpired(401, json.dumps(TOKEN_EXPIRED_401)).summary().startswith("TokenExpired")


@pytest.mark.parametrize(
    "error",
    [
        api_error(400, NESTED_INVOICE_400),
        api_error(429, "", {"Retry-After": "5", "X-Rate-Limit-Problem": "minute"}),
        api_error(503, "The Xero API is temporarily unavailable"),
        api_error(403, NOT_CONNECTED_403),
        OAuthError("invalid_grant", "gone", 400),
        ThrottledLocally("tenant-1", "day", 900.0),
        XeroTransportError("timed out", request_sent=False),
    ],
    ids=lambda error: type(error).__name__,
)
def test_errors_survive_pickling_for_task_queues(error: XeroError) -> None:
    restored = pickle.loads(pickle.dumps(error))
    assert type(restored) is type(error)
    assert str(restored) == str(error)
    assert restored.retryable == error.retryable
    assert restored.retry_after == error.retry_after
    assert vars(restored) == vars(error)
