"""What every Accounting API resource shares: the request being answered (``Context``: paging,
filters, batches and Xero's ``summarizeErrors`` rules), validation errors in Xero's nesting
(``Invalid``), money rounding and Xero's messages for unreadable values."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

from .. import query as q
from ..messages import Request, Response
from ..state import Organisation
from ..wire import ApiError, PostDataInvalid, envelope, validation_exception

if TYPE_CHECKING:
    from ..webhooks import Webhooks

CENT = Decimal("0.01")
FOUR = Decimal("0.0001")
ZERO = Decimal("0.00")
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100


def money(value: Decimal) -> Decimal:
    """Rounded to the cent, half up."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def four(value: Decimal) -> Decimal:
    """Rounded to four decimal places, half up."""
    return value.quantize(FOUR, rounding=ROUND_HALF_UP)


class Invalid(Exception):
    """Validation errors of one element: its own messages and those of nested parts."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message)
        self.messages: list[str] = [message] if message else []
        self.lines: dict[int, list[str]] = {}
        self.contact: list[str] = []

    def add(self, message: str, line: int | None = None, contact: bool = False) -> None:
        self.messages.append(message)
        if line is not None:
            self.lines.setdefault(line, []).append(message)
        if contact:
            self.contact.append(message)

    def __bool__(self) -> bool:
        return bool(self.messages)

    def echo(self, element: Any) -> dict:
        """The failing element as sent, with ValidationErrors at every level."""
        echo = copy.deepcopy(element) if isinstance(element, dict) else {}
        echo["ValidationErrors"] = [{"Message": m} for m in self.messages]
        lines = echo.get("LineItems")
        if isinstance(lines, list):
            for index, line in enumerate(lines):
                if isinstance(line, dict):
                    line["ValidationErrors"] = [{"Message": m} for m in self.lines.get(index, [])]
        if isinstance(echo.get("Contact"), dict):
            echo["Contact"]["ValidationErrors"] = [{"Message": m} for m in self.contact]
        return echo


def not_found(what: str) -> ApiError:
    """The sandbox's 404 for an unknown record."""
    return ApiError(404, {"Title": "Not Found", "Status": 404, "Detail": f"{what} not found"})


def text_value(item: dict, key: str) -> str | None:
    """A text field of a request element (None when absent)."""
    value = item.get(key)
    if value is None:
        return None
    if isinstance(value, dict | list):
        raise PostDataInvalid(f"Unexpected value for '{key}'.")
    return str(value)


def enum_value(value: Any, allowed: set[str], field: str, type_name: str) -> str:
    """An enum value in Xero's spelling, or Xero's PostDataInvalidException."""
    if isinstance(value, str) and value.upper() in allowed:
        return value.upper()
    raise PostDataInvalid(
        f"Error converting value \"{value}\" to type 'Xero.API.Library.DataContracts.{type_name}'."
        f" Path '{field}'."
    )


def lock_message(lock: date) -> str:
    """Xero's refusal of a document dated on or before the period lock date."""
    return (
        "The document date cannot be before the period lock date, currently set at "
        f"{lock.strftime('%d-%b-%Y')}"
    )


class Context:
    """One Accounting API request being answered, or one change a person makes in Xero
    (``client_id`` None: no app made it)."""

    def __init__(
        self,
        request: Request,
        org: Organisation,
        provider: str,
        client_id: str | None,
        now: datetime,
        webhooks: Webhooks,
    ) -> None:
        self.request = request
        self.org = org
        self.provider = provider
        self.client_id = client_id
        self.now = now
        self.query = request.query
        self._webhooks = webhooks

    def emit(self, category: str, resource_id: str, kind: str) -> None:
        """Queue the webhook event Xero sends for this change (Xero's API documentation)."""
        self._webhooks.emit(self.org, category, resource_id, kind)

    def only(self, *methods: str) -> None:
        if self.request.method not in methods:
            raise ApiError(
                405 if self.request.method != "DELETE" else 405,
                {
                    "Title": "Method Not Allowed",
                    "Status": 405,
                    "Detail": f"{self.request.method} is not supported on this endpoint",
                },
            )

    def ok(self, **collections: Any) -> Response:
        return Response.json(envelope(self.provider, self.now, **collections))

    def body(self) -> Any:
        return self.request.json()

    def items(self, collection: str, bare: bool = False) -> list[dict]:
        """The elements of a write: ``{"<Collection>": [...]}``, or one bare object where Xero
        accepts that (Payments, as the SDK sends it)."""
        body = self.body()
        if isinstance(body, dict) and collection in body:
            items = body[collection]
            if not isinstance(items, list) or not all(isinstance(x, dict) for x in items):
                raise PostDataInvalid(f"Path '{collection}' must be a list of objects.")
            return items
        if bare and isinstance(body, dict):
            return [body]
        raise PostDataInvalid(f"The request body must be a JSON object with a '{collection}' list.")

    def id_list(self, name: str) -> set[str]:
        value = self.query.get(name) or ""
        return {part.strip().lower() for part in value.split(",") if part.strip()}

    def modified_since(self) -> datetime | None:
        raw = self.request.headers.get("If-Modified-Since")
        if not raw:
            return None
        try:
            return parsedate_to_datetime(raw).astimezone(UTC)
        except (TypeError, ValueError):
            pass
        try:
            moment = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
        except ValueError:
            raise PostDataInvalid(
                f"The If-Modified-Since header '{raw}' is not a valid date."
            ) from None
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)

    def filter(self, records: list[dict], modified_field: str | None = None) -> list[dict]:
        since = self.modified_since() if modified_field else None
        if since is not None:
            records = [r for r in records if r.get(modified_field) and r[modified_field] > since]
        predicate = q.where(self.query.get("where"))
        if predicate is not None:
            records = [r for r in records if predicate(r)]
        return records

    def page(self, records: list[dict]) -> tuple[list[dict], dict]:
        if "page" not in self.query:
            return records, {}
        try:
            page = int(self.query["page"] or 1)
            size = int(self.query.get("pagesize") or DEFAULT_PAGE_SIZE)
        except ValueError:
            raise PostDataInvalid("page and pageSize must be whole numbers.") from None
        if size < 1 or size > MAX_PAGE_SIZE:
            raise ApiError(
                400,
                {
                    "ErrorNumber": 10,
                    "Type": "ValidationException",
                    "Message": f"pageSize must be between 1 and {MAX_PAGE_SIZE}.",
                    "Elements": [],
                },
            )
        page = max(page, 1)
        count = len(records)
        page_count = (count + size - 1) // size
        chunk = records[(page - 1) * size : page * size]
        return chunk, {
            "pagination": {
                "page": page,
                "pageSize": size,
                "pageCount": page_count,
                "itemCount": count,
            }
        }

    def batch(
        self,
        items: list[dict],
        collection: str,
        save: Callable[[dict, int], dict],
        out: Callable[[dict], dict] | None = None,
    ) -> Response:
        """Apply each element; Xero's summarizeErrors rules decide the answer."""
        summarize = (self.query.get("summarizeerrors") or "true").lower() != "false"
        results: list[tuple[dict | None, Invalid | None, dict]] = []
        for index, item in enumerate(items):
            try:
                record = save(item, index)
                results.append((record, None, item))
            except Invalid as errors:
                results.append((None, errors, item))
        failures = [errors.echo(item) for record, errors, item in results if errors]
        if summarize and failures:
            raise validation_exception(failures)
        elements = []
        for record, errors, item in results:
            if errors:
                element = errors.echo(item)
                element["StatusAttributeString"] = "ERROR"
                element["HasErrors"] = True
                element["HasValidationErrors"] = True
            else:
                assert record is not None
                element = (
                    out(record)
                    if out
                    else {k: v for k, v in record.items() if not k.startswith("_")}
                )
                warnings = record.pop("_warnings", None)
                if not summarize:
                    element["StatusAttributeString"] = "WARNING" if warnings else "OK"
                    element["ValidationErrors"] = []
                if warnings:
                    element["Warnings"] = [{"Message": w} for w in warnings]
            elements.append(element)
        return self.ok(**{collection: elements})
