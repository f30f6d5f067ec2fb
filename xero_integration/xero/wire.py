"""Xero's wire format: Microsoft JSON dates, ISO strings, exact money amounts, header lookups.

JSON numbers are read as Decimal so that amounts never pass through binary floating point.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from typing import Any

_MS_DATE = re.compile(r"^/Date\((?P<ms>-?\d+)(?P<offset>[+-]\d{4})?\)/$")
_FRACTION = re.compile(r"\.(\d+)")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

#: Places Xero keeps for amounts (``LineAmount``, ``Total``...) and for 4-dp unit prices.
MONEY_PLACES = 2
UNIT_PRICE_PLACES = 4


def parse_datetime(value: str | datetime | None) -> datetime | None:
    """An aware datetime from any date Xero sends; None for None or an empty string.

    Accepts ``/Date(1551399321043+0000)/`` (milliseconds since the epoch; the offset only says
    which zone to show it in), ``/Date(1551399323399)/``, ``2019-12-07T18:46:19.5165400``
    (seven fractional digits, no zone: UTC) and ISO 8601 strings with or without an offset.
    Values without a zone are taken as UTC, which is what Xero means by them.
    """
    if value is None or isinstance(value, datetime):
        return _aware(value) if value is not None else None
    text = value.strip()
    if not text:
        return None
    match = _MS_DATE.match(text)
    if match:
        moment = _EPOCH + timedelta(milliseconds=int(match["ms"]))
        offset = match["offset"]
        if offset and offset not in ("+0000", "-0000"):
            sign = 1 if offset[0] == "+" else -1
            delta = timedelta(hours=int(offset[1:3]), minutes=int(offset[3:5]))
            moment = moment.astimezone(timezone(sign * delta))
        return moment
    # fromisoformat takes at most six fractional digits on every Python we support.
    text = _FRACTION.sub(lambda m: "." + m.group(1)[:6].ljust(6, "0"), text, count=1)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"Not a Xero date: {value!r}") from exc
    return _aware(parsed)


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def parse_date(value: str | date | None) -> date | None:
    """The calendar date of a Xero date field (``Date``, ``DueDate``, ``DateString``...).

    Xero sends document dates as midnight UTC, so the UTC calendar day is the document's day.
    """
    if value is None or (isinstance(value, date) and not isinstance(value, datetime)):
        return value
    moment = parse_datetime(value)
    if moment is None:
        return None
    if moment.utcoffset():
        moment = moment.astimezone(UTC)
    return moment.date()


def format_date(value: date) -> str:
    """A date as Xero wants it in request bodies: ``YYYY-MM-DD``."""
    if isinstance(value, datetime):
        value = value.date()
    return value.strftime("%Y-%m-%d")


def format_modified_since(value: datetime) -> str:
    """An ``If-Modified-Since`` value: the UTC timestamp ``YYYY-MM-DDTHH:MM:SS``.

    A naive datetime is taken as UTC.
    """
    return _aware(value).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def to_decimal(value: Any) -> Decimal | None:
    """An exact Decimal from a JSON number, string or Decimal; None for None or ``""``."""
    if value is None or value == "":
        return None
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        # repr gives the shortest string that round-trips, i.e. what was written in the JSON.
        value = repr(value)
    try:
        return Decimal(str(value))
    except InvalidOperation as exc:
        raise ValueError(f"Not a number: {value!r}") from exc


def quantize_money(value: Any, places: int = MONEY_PLACES) -> Decimal:
    """Round an amount half-up to ``places`` decimals, as Xero rounds money."""
    amount = to_decimal(value)
    if amount is None:
        raise ValueError("An amount is required")
    return amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def loads(text: str | bytes) -> Any:
    """Parse Xero JSON, with every non-integer number as a Decimal."""
    return json.loads(text, parse_float=Decimal)


def _encode(value: Any) -> Any:
    if isinstance(value, Decimal):
        as_float = float(value)
        # Only send an amount that survives as a JSON number unchanged.
        if not value.is_finite() or Decimal(repr(as_float)) != value:
            raise ValueError(f"Amount {value} cannot be sent exactly")
        return as_float
    if isinstance(value, datetime):
        return _aware(value).isoformat()
    if isinstance(value, date):
        return format_date(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def dumps(data: Any) -> str:
    """JSON for a request body: Decimals as numbers, dates as ``YYYY-MM-DD``, UUIDs as text."""
    return json.dumps(data, default=_encode, separators=(",", ":"))


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header's value by case-insensitive name; None when absent or empty."""
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return value or None


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (seconds or an HTTP date); None if unusable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        until = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    reference = now or datetime.now(UTC)
    return max(0.0, (_aware(until) - reference).total_seconds())


def parse_int(value: str | None) -> int | None:
    """An integer header value; None when absent or malformed."""
    if value is None:
        return None
    try:
        return int(value.strip())
    except ValueError:
        return None
