"""Xero's wire format as the sandbox speaks it: JSON with ``/Date(ms+0000)/`` dates, Decimal
amounts, the response envelope, and the error bodies of Xero's API documentation"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any

_MS_DATE = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")
_ISO_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2}):(\d{2})(?:\.\d+)?)?Z?$")


class ApiError(Exception):
    """An HTTP error answer: status, JSON body (or text) and extra headers."""

    def __init__(
        self, status: int, body: Any, headers: dict[str, str] | None = None, text: bool = False
    ) -> None:
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body
        self.headers = headers or {}
        self.text = text


class PostDataInvalid(ApiError):
    """Xero's answer to a body it cannot read (ErrorNumber 14)."""

    def __init__(self, message: str) -> None:
        super().__init__(
            400,
            {"ErrorNumber": 14, "Type": "PostDataInvalidException", "Message": message},
        )


class QueryParseError(ApiError):
    """Xero's answer to a ``where`` or ``order`` it cannot parse (ErrorNumber 16)."""

    def __init__(self, message: str) -> None:
        super().__init__(
            400, {"ErrorNumber": 16, "Type": "QueryParseException", "Message": message}
        )


def validation_exception(elements: list[dict]) -> ApiError:
    """A 400 ValidationException listing the failing elements, each with its errors."""
    return ApiError(
        400,
        {
            "ErrorNumber": 10,
            "Type": "ValidationException",
            "Message": "A validation exception occurred",
            "Elements": elements,
        },
    )


def single_validation_error(message: str, element: dict | None = None) -> ApiError:
    echo = dict(element or {})
    echo["ValidationErrors"] = [{"Message": message}]
    return validation_exception([echo])


def problem(status: int, title: str, detail: str) -> ApiError:
    """The problem-details body Xero uses for 401 and 403."""
    return ApiError(
        status,
        {
            "Type": None,
            "Title": title,
            "Status": status,
            "Detail": detail,
            "Instance": str(uuid.uuid4()),
            "Extensions": {},
        },
    )


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def date_out(value: date | datetime) -> str:
    """``/Date(ms+0000)/`` for a date or a UTC datetime."""
    if not isinstance(value, datetime):
        value = datetime.combine(value, time(), tzinfo=UTC)
    return f"/Date({ms(value)}+0000)/"


def iso_out(value: date | datetime) -> str:
    if not isinstance(value, datetime):
        return value.isoformat() + "T00:00:00"
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def parse_date(value: Any, field: str) -> date:
    """A date sent by a client: ``YYYY-MM-DD``, ``YYYY-MM-DDTHH:MM:SS`` or ``/Date(ms)/``."""
    if isinstance(value, str):
        text = value.strip()
        match = _MS_DATE.match(text)
        if match:
            return datetime.fromtimestamp(int(match.group(1)) / 1000, tz=UTC).date()
        match = _ISO_DATE.match(text)
        if match:
            try:
                return date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
            except ValueError:
                pass
    raise PostDataInvalid(f"Error converting value \"{value}\" to type 'DateTime'. Path '{field}'.")


def parse_decimal(value: Any, field: str) -> Decimal:
    if isinstance(value, bool) or value is None:
        raise PostDataInvalid(
            f"Error converting value {value!r} to type 'Decimal'. Path '{field}'."
        )
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise PostDataInvalid(
            f"Error converting value \"{value}\" to type 'Decimal'. Path '{field}'."
        ) from None
    if not number.is_finite():
        raise PostDataInvalid(
            f"Error converting value \"{value}\" to type 'Decimal'. Path '{field}'."
        )
    return number


def parse_bool(value: Any, field: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise PostDataInvalid(f"Error converting value \"{value}\" to type 'Boolean'. Path '{field}'.")


def query_bool(value: str | None) -> bool:
    """``true``/``True``/``1`` in a query string (the SDKs send ``True``)."""
    return (value or "").lower() in ("true", "1")


def to_wire(value: Any) -> Any:
    """Internal values (Decimal, date, datetime) to JSON values, recursively."""
    if isinstance(value, dict):
        return {key: to_wire(item) for key, item in value.items() if not key.startswith("_")}
    if isinstance(value, list | tuple):
        return [to_wire(item) for item in value]
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime | date):
        return date_out(value)
    return value


def drop_none(value: Any) -> Any:
    """Xero leaves out fields that have no value rather than sending null."""
    if isinstance(value, dict):
        return {key: drop_none(item) for key, item in value.items() if item is not None}
    if isinstance(value, list | tuple):
        return [drop_none(item) for item in value]
    return value


def dumps(value: Any) -> bytes:
    return json.dumps(to_wire(value), ensure_ascii=False).encode("utf-8")


def envelope(provider: str, now: datetime, **collections: Any) -> dict:
    """The envelope every Accounting API response carries (Xero's API documentation)."""
    body: dict[str, Any] = {
        "Id": str(uuid.uuid4()),
        "Status": "OK",
        "ProviderName": provider,
        "DateTimeUTC": f"/Date({ms(now)})/",
    }
    body.update(drop_none(collections))
    return body
