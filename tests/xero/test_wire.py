"""Xero's wire format: Microsoft JSON dates, ISO strings, exact money."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from xero_integration.xero.wire import (
    dumps,
    format_date,
    format_modified_since,
    header,
    loads,
    parse_date,
    parse_datetime,
    parse_retry_after,
    quantize_money,
    to_decimal,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/Date(1551399321043+0000)/", datetime(2019, 3, 1, 0, 15, 21, 43000, tzinfo=UTC)),
        ("/Date(1551399323399)/", datetime(2019, 3, 1, 0, 15, 23, 399000, tzinfo=UTC)),
        ("2019-12-07T18:46:19.5165400", datetime(2019, 12, 7, 18, 46, 19, 516540, tzinfo=UTC)),
        ("2019-11-14T18:10:38Z", datetime(2019, 11, 14, 18, 10, 38, tzinfo=UTC)),
        ("2018-10-10T00:00:00", datetime(2018, 10, 10, tzinfo=UTC)),
        ("/Date(-86400000)/", datetime(1969, 12, 31, tzinfo=UTC)),
    ],
)
def test_xero_dates_become_aware_utc_datetimes(text: str, expected: datetime) -> None:
    parsed = parse_datetime(text)
    assert parsed == expected
    assert parsed is not None and parsed.utcoffset() == timedelta(0)


def test_iso_offset_is_kept_and_names_the_same_instant() -> None:
    parsed = parse_datetime("2020-02-06T12:17:43.202-08:00")
    assert parsed is not None
    assert parsed.utcoffset() == timedelta(hours=-8)
    assert parsed.astimezone(UTC) == datetime(2020, 2, 6, 20, 17, 43, 202000, tzinfo=UTC)


def test_ms_date_offset_changes_the_zone_not_the_instant() -> None:
    parsed = parse_datetime("/Date(1551399321043+1300)/")
    assert parsed == datetime(2019, 3, 1, 0, 15, 21, 43000, tzinfo=UTC)
    assert parsed is not None and parsed.utcoffset() == timedelta(hours=13)


def test_empty_values_parse_to_none_and_garbage_is_rejected() -> None:
    assert parse_datetime(None) is None
    assert parse_datetime("") is None
    assert parse_date(None) is None
    with pytest.raises(ValueError, match="Not a Xero date"):
        parse_datetime("next tuesday")
    with pytest.raises(ValueError):
        parse_datetime("/Date(abc)/")


def test_naive_datetime_objects_are_taken_as_utc() -> None:
    assert parse_datetime(datetime(2024, 1, 2, 3, 4)) == datetime(2024, 1, 2, 3, 4, tzinfo=UTC)


@pytest.mark.parametrize(
    "text", ["/Date(1539129600000+0000)/", "2018-10-10T00:00:00", "2018-10-10"]
)
def test_document_dates_parse_to_the_calendar_day(text: str) -> None:
    assert parse_date(text) == date(2018, 10, 10)


def test_dates_are_sent_as_year_month_day() -> None:
    assert format_date(date(2024, 3, 5)) == "2024-03-05"
    assert format_date(datetime(2024, 3, 5, 23, 59)) == "2024-03-05"


def test_if_modified_since_is_sent_as_utc() -> None:
    moment = datetime(2020, 2, 6, 12, 17, 43, 202000, tzinfo=timezone(timedelta(hours=-8)))
    assert format_modified_since(moment) == "2020-02-06T20:17:43"
    assert format_modified_since(datetime(2020, 2, 6, 1, 2, 3)) == "2020-02-06T01:02:03"


def test_json_numbers_are_read_as_exact_decimals() -> None:
    payload = loads('{"Total": 230.10, "UnitAmount": 0.1, "Quantity": 1.0000, "Count": 3}')
    assert payload["Total"] == Decimal("230.10")
    assert payload["UnitAmount"] == Decimal("0.1")
    assert str(payload["Quantity"]) == "1.0000"
    assert payload["Count"] == 3 and isinstance(payload["Count"], int)


def test_request_bodies_carry_decimals_as_numbers_and_dates_as_text() -> None:
    body = dumps({"UnitAmount": Decimal("12.3456"), "Date": date(2024, 1, 31), "Qty": 2})
    assert json.loads(body) == {"UnitAmount": 12.3456, "Date": "2024-01-31", "Qty": 2}
    assert '"UnitAmount":12.3456' in body


def test_amounts_that_would_lose_digits_are_refused() -> None:
    with pytest.raises(ValueError, match="cannot be sent exactly"):
        dumps({"Amount": Decimal("12345678901234567890.12")})
    with pytest.raises(TypeError):
        dumps({"Amount": object()})


def test_money_rounds_half_up_like_xero() -> None:
    assert quantize_money("1.795") == Decimal("1.80")
    # Binary floats would give 2.67 here.
    assert quantize_money(2.675) == Decimal("2.68")
    assert quantize_money("1.23456", places=4) == Decimal("1.2346")
    with pytest.raises(ValueError):
        quantize_money(None)


def test_to_decimal_accepts_strings_numbers_and_nothing() -> None:
    assert to_decimal("10.50") == Decimal("10.50")
    assert to_decimal(0.1) == Decimal("0.1")
    assert to_decimal(None) is None
    with pytest.raises(ValueError):
        to_decimal("ten")


def test_retry_after_in_seconds_or_as_http_date() -> None:
    assert parse_retry_after("30") == 30.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    now = datetime(2024, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("Mon, 01 Jan 2024 12:00:45 GMT", now=now) == 45.0
    assert parse_retry_after("Mon, 01 Jan 2024 11:00:00 GMT", now=now) == 0.0


def test_header_lookup_ignores_case() -> None:
    assert header({"x-minlimit-remaining": "59"}, "X-MinLimit-Remaining") == "59"
    assert header({}, "Retry-After") is None
