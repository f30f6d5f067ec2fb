"""One classifier decides what Xero's answers (and silences) mean for every caller."""

import json

import pytest

from xero_integration import outcomes
from xero_integration.exceptions import ConnectionNotReady
from xero_integration.messages import XERO_REFUSALS
from xero_integration.xero.errors import (
    DeadlineReached,
    Disconnected,
    NotFound,
    RateLimited,
    ServerError,
    ThrottledLocally,
    Unavailable,
    ValidationError,
    XeroTransportError,
)

Kind = outcomes.Kind


def refusal(*messages: str) -> ValidationError:
    body = {
        "Type": "ValidationException",
        "Elements": [{"ValidationErrors": [{"Message": text} for text in messages]}],
    }
    return ValidationError(400, json.dumps(body))


@pytest.mark.parametrize(
    "row", [row for row in XERO_REFUSALS if row.examples], ids=lambda row: row.code
)
def test_every_documented_refusal_is_recognised_by_its_code(row):
    for example in row.examples:
        found = outcomes.classify(refusal(example))
        assert found.kind == Kind.REFUSED
        assert row.code in found.refusals, example
        assert not found.passing
        assert found.maybe_applied is False


def test_a_refused_tax_rate_asks_for_the_tax_rates_to_be_read_again():
    found = outcomes.classify(refusal("Tax rate must be valid.", "Account must be valid."))
    assert found.refresh == {"tax_rates", "accounts"}
    assert "Tax rate must be valid." in found.message


def test_an_unknown_refusal_is_still_refused_and_asks_nothing_else():
    found = outcomes.classify(refusal("Something new Xero has never said before"))
    assert found.kind == Kind.REFUSED
    assert found.refusals == frozenset()
    assert found.refresh == frozenset()


def test_rate_limits_wait_as_long_as_xero_or_the_limiter_says():
    found = outcomes.classify(RateLimited(429, retry_after=42, problem="minute"))
    assert (found.kind, found.seconds, found.maybe_applied) == (Kind.RETRY, 42, False)
    local = outcomes.classify(ThrottledLocally("tenant", "day", 3600.0))
    assert (local.kind, local.seconds, local.maybe_applied) == (Kind.RETRY, 3600.0, False)
    assert local.passing


def test_a_write_that_may_have_reached_xero_is_marked_maybe_applied():
    sent = outcomes.classify(XeroTransportError("read timed out"), backoff=30)
    assert (sent.kind, sent.seconds, sent.maybe_applied) == (Kind.RETRY, 30, True)
    never = outcomes.classify(XeroTransportError("connection refused", request_sent=False))
    assert never.maybe_applied is False
    assert outcomes.classify(ServerError(500, "boom")).maybe_applied is True
    assert outcomes.classify(Unavailable(503, "offline")).kind == Kind.RETRY


def test_access_refused_asks_whether_the_organisation_is_still_connected():
    assert outcomes.classify(Disconnected(403, "")).kind == Kind.CHECK_CONNECTION
    assert outcomes.classify(ConnectionNotReady("reconnect")).kind == Kind.RECONNECT
    assert outcomes.classify(DeadlineReached("time is up")).kind == Kind.OUT_OF_TIME


def test_answers_that_will_never_change_are_refusals():
    assert outcomes.classify(ServerError(501, "not implemented")).kind == Kind.REFUSED
    assert outcomes.classify(NotFound(404, "")).kind == Kind.REFUSED


def test_errors_that_are_not_about_xero_are_not_swallowed():
    with pytest.raises(KeyError):
        outcomes.classify(KeyError("bug"))


def test_refused_with_names_one_known_refusal():
    taken = refusal("Invoice # must be unique.")
    assert outcomes.refused_with(taken, "number_taken")
    assert not outcomes.refused_with(taken, "tax_rate")
    assert outcomes.refused_with(taken.errors, "number_taken")
