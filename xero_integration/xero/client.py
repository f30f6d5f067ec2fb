"""The Accounting API client for one Xero organisation (tenant): Xero's headers, rate limits,
one token refresh on expiry, retries only where safe, and error replies raised as XeroError.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable
from urllib.parse import quote

import requests

from xero_integration.xero._http import DEFAULT_TIMEOUT, DEFAULT_USER_AGENT, Timeout, send
from xero_integration.xero.errors import (
    DeadlineReached,
    RateLimited,
    ThrottledLocally,
    TokenExpired,
    XeroAPIError,
    XeroError,
    XeroTransportError,
    error_from_response,
)
from xero_integration.xero.ratelimit import InMemoryLimiter, Limiter, RateLimitState
from xero_integration.xero.wire import dumps, format_modified_since, header, loads

#: Path of the Accounting API under the API host.
ACCOUNTING_PATH = "/api.xro/2.0"

#: Xero's largest page, and its advice on how many objects to send in one write.
MAX_PAGE_SIZE = 1000
BATCH_SIZE = 50

#: Methods that change nothing in Xero, so repeating them after a failure is harmless.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

#: How many invoice numbers go into one ``InvoiceNumbers=`` filter (URL length).
INVOICE_NUMBERS_PER_REQUEST = 40

_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,128}$")


@runtime_checkable
class TokenSource(Protocol):
    """Where the client gets access tokens for its tenant."""

    def access_token(self) -> str:
        """A valid access token (refreshed beforehand when it is about to expire)."""
        ...

    def refreshed_access_token(self, stale: str) -> str:
        """A new access token after Xero said ``stale`` has expired."""
        ...


@dataclass(frozen=True)
class Page:
    """One page of a paged collection (``number`` starts at 1)."""

    number: int
    items: list[dict[str, Any]]
    page_count: int | None = None
    item_count: int | None = None

    @property
    def is_last(self) -> bool:
        """True when no page follows: it is empty, or Xero's ``pageCount`` says so."""
        if not self.items:
            return True
        return self.page_count is not None and self.number >= self.page_count


def validate_idempotency_key(key: str) -> str:
    """Return ``key`` if Xero accepts it: 1-128 visible ASCII characters; else ValueError."""
    if not isinstance(key, str) or not _IDEMPOTENCY_KEY.match(key):
        raise ValueError("An Idempotency-Key has 1 to 128 visible ASCII characters")
    return key


def _never_read(error: XeroError) -> bool:
    """Whether Xero certainly did not act on the attempt that raised ``error``."""
    if isinstance(error, XeroTransportError):
        return not error.request_sent
    return isinstance(error, RateLimited | ThrottledLocally | DeadlineReached)


def _outcome(error: XeroError, unsure: XeroError | None) -> XeroError:
    """What a call ends with: an attempt Xero never read does not undo an earlier one that it
    may have applied."""
    return unsure if unsure is not None and _never_read(error) else error


class XeroClient:
    """Calls the Accounting API for one tenant.

    Retries, capped by ``max_retries`` with exponential backoff and jitter (``sleep`` is
    injectable so tests need not wait): a 429 after its ``Retry-After`` (when that is at most
    ``max_retry_after`` seconds); server errors, 503s and transport failures for reads; and the
    same for writes only when they carry an Idempotency-Key, which is then sent again unchanged.
    A write without a key is never repeated after a reply that leaves its fate unknown.
    """

    def __init__(
        self,
        api_url: str = "https://api.xero.com",
        tenant_id: str = "",
        token_source: TokenSource | None = None,
        session: requests.Session | None = None,
        limiter: Limiter | None = None,
        timeout: Timeout = DEFAULT_TIMEOUT,
        user_agent: str = DEFAULT_USER_AGENT,
        max_retries: int = 3,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        *,
        backoff_base: float = 1.0,
        backoff_cap: float = 30.0,
        max_retry_after: float = 60.0,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        """A client without a ``limiter`` gets its own in-memory one; pass a shared limiter so
        that every client of a tenant draws on one budget."""
        if not tenant_id:
            raise ValueError("tenant_id is required")
        if token_source is None:
            raise ValueError("token_source is required")
        self.api_url = api_url.rstrip("/")
        self.base_url = self.api_url + ACCOUNTING_PATH
        self.tenant_id = tenant_id
        self.token_source = token_source
        self.session = session or requests.Session()
        self.limiter: Limiter = limiter or InMemoryLimiter(clock=clock, sleep=sleep)
        self.timeout = timeout
        self.user_agent = user_agent
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.max_retry_after = max_retry_after
        self._sleep = sleep
        self._clock = clock
        self._jitter = jitter
        #: When set (a ``clock`` reading), no call starts after it and no wait runs past it:
        #: DeadlineReached is raised instead, so a caller's run ends inside its time budget.
        self.deadline: float | None = None
        #: The longest the limiter may make a call wait for Xero's budget (None: until the
        #: deadline, or the limiter's own bound); 0 in a worker, which puts work back instead.
        self.max_wait: float | None = None

    # -- the generic calls -------------------------------------------------------------------

    def get(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        if_modified_since: datetime | None = None,
    ) -> Any:
        """GET ``path`` (relative to the Accounting API, or a full URL under it); parsed JSON."""
        return self.request("GET", path, params=params, if_modified_since=if_modified_since)

    def put(
        self,
        path: str,
        json: Any,
        params: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Any:
        """PUT (create) ``json`` to ``path``; parsed JSON reply."""
        return self.request("PUT", path, params=params, json=json, idempotency_key=idempotency_key)

    def post(
        self,
        path: str,
        json: Any,
        params: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Any:
        """POST (create or update) ``json`` to ``path``; parsed JSON reply."""
        return self.request("POST", path, params=params, json=json, idempotency_key=idempotency_key)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        idempotency_key: str | None = None,
        if_modified_since: datetime | None = None,
    ) -> Any:
        """Send one logical call, retrying as the class describes; parsed JSON (None if empty)."""
        method = method.upper()
        url, log_path = self._url(path)
        headers: dict[str, str] = {
            "xero-tenant-id": self.tenant_id,
            "Accept": "application/json",
            "User-Agent": self.user_agent,
        }
        body: bytes | None = None
        if json is not None:
            body = dumps(json).encode("utf-8")
            headers["Content-Type"] = "application/json"
        if idempotency_key is not None:
            headers["Idempotency-Key"] = validate_idempotency_key(idempotency_key)
        if if_modified_since is not None:
            headers["If-Modified-Since"] = format_modified_since(if_modified_since)
        query = {key: _query_value(value) for key, value in (params or {}).items()}
        repeatable = method in SAFE_METHODS or idempotency_key is not None

        token = self.token_source.access_token()
        refreshed = False
        attempt = 0
        # An earlier attempt Xero may have applied (a write sent without an answer, or answered
        # with a server error): a later attempt refused unread (429, no budget or time left to
        # send it) leaves the call unanswered, not refused.
        unsure: XeroError | None = None
        while True:
            try:
                response = self._send(method, url, token, headers, query, body)
            except (XeroTransportError, DeadlineReached, ThrottledLocally) as exc:
                # A request that never left is safe to repeat even when it is a plain write.
                delay = None
                if isinstance(exc, XeroTransportError) and attempt < self.max_retries:
                    delay = self._backoff(attempt) if repeatable or not exc.request_sent else None
                if delay is None or delay >= self._time_left():
                    if unsure is not None and _never_read(exc):
                        raise unsure from exc
                    raise
                sent = isinstance(exc, XeroTransportError) and exc.request_sent
                if sent and method not in SAFE_METHODS:
                    unsure = exc
                self._sleep(delay)
                attempt += 1
                continue
            if response.status_code < 400:
                return self._parse(response, method, log_path)
            error = error_from_response(
                response.status_code,
                _text(response),
                response.headers,
                method=method,
                path=log_path,
            )
            if isinstance(error, TokenExpired) and not refreshed:
                token = self.token_source.refreshed_access_token(token)
                refreshed = True
                continue
            delay = self._retry_delay(error, attempt, repeatable)
            if delay is None or delay >= self._time_left():
                raise _outcome(error, unsure)
            if method not in SAFE_METHODS and error.retryable and not _never_read(error):
                unsure = error
            self._sleep(delay)
            attempt += 1

    def paginate(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        page_size: int = MAX_PAGE_SIZE,
        key: str = "Contacts",
        *,
        if_modified_since: datetime | None = None,
        start_page: int = 1,
    ) -> Iterator[Page]:
        """Yield the pages of a paged collection, in order, until the last one.

        Stops on an empty page or when Xero's ``pageCount`` is reached (or when a page repeats
        the one before). A page shorter than ``page_size`` is not taken as the end: endpoints
        that ignore ``pageSize`` return 100.
        """
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be 1 to {MAX_PAGE_SIZE}")
        number = start_page
        previous: list[dict[str, Any]] | None = None
        while True:
            query = dict(params or {})
            query.update(page=number, pageSize=page_size)
            payload = self.get(path, query, if_modified_since=if_modified_since) or {}
            page = _page(payload, key, number)
            if page.items and page.items == previous:
                # An endpoint that ignores ``page`` repeats itself; without this it never ends.
                return
            yield page
            if page.is_last:
                return
            previous = page.items
            number += 1

    # -- one call per resource ----------------------------------------------------------------

    def organisation(self) -> dict[str, Any]:
        """The organisation's details (``Name``, ``BaseCurrency``, ``ShortCode``...)."""
        organisations = self._collection(self.get("/Organisation"), "Organisations")
        if not organisations:
            raise XeroAPIError(
                200, messages=["Xero returned no organisation"], path="/Organisation"
            )
        return organisations[0]

    def organisation_actions(self) -> dict[str, str]:
        """What the organisation's plan allows, by action name (``UseMulticurrency``: ``ALLOWED``
        or ``NOT-ALLOWED``)."""
        actions = self._collection(self.get("/Organisation/Actions"), "Actions")
        return {str(action["Name"]): str(action.get("Status") or "") for action in actions}

    def accounts(self, where: str | None = None) -> list[dict[str, Any]]:
        """The chart of accounts, optionally filtered (``where='Status=="ACTIVE"'``)."""
        params = {"where": where} if where else None
        return self._collection(self.get("/Accounts", params), "Accounts")

    def tax_rates(self, where: str | None = None) -> list[dict[str, Any]]:
        """The organisation's tax rates."""
        params = {"where": where} if where else None
        return self._collection(self.get("/TaxRates", params), "TaxRates")

    def currencies(self) -> list[dict[str, Any]]:
        """The currencies the organisation has added (the base currency included)."""
        return self._collection(self.get("/Currencies"), "Currencies")

    def contacts_page(
        self,
        page: int = 1,
        page_size: int = MAX_PAGE_SIZE,
        if_modified_since: datetime | None = None,
        include_archived: bool = False,
    ) -> Page:
        """One page of contacts (ACTIVE only unless ``include_archived``), optionally only those
        changed since ``if_modified_since``."""
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be 1 to {MAX_PAGE_SIZE}")
        params: dict[str, Any] = {"page": page, "pageSize": page_size}
        if include_archived:
            params["includeArchived"] = True
        payload = self.get("/Contacts", params, if_modified_since=if_modified_since) or {}
        return _page(payload, "Contacts", page)

    def contact(self, contact_id: str) -> dict[str, Any] | None:
        """One contact by ContactID; None when Xero returns none."""
        contacts = self._collection(self.get(f"/Contacts/{_segment(contact_id)}"), "Contacts")
        return contacts[0] if contacts else None

    def create_contacts(
        self,
        contacts: list[dict[str, Any]],
        idempotency_key: str | None = None,
        summarize_errors: bool = False,
    ) -> list[dict[str, Any]]:
        """Create contacts (PUT); one result per contact, in order.

        With ``summarize_errors=False`` a rejected contact comes back with its
        ``ValidationErrors`` (see errors.element_errors) instead of failing the whole call.
        """
        params = _summarize(summarize_errors)
        reply = self.put("/Contacts", {"Contacts": contacts}, params, idempotency_key)
        return self._collection(reply, "Contacts")

    def invoice(self, invoice_id: str, unitdp: int | None = 4) -> dict[str, Any] | None:
        """One invoice by InvoiceID, line items included; None when Xero returns none."""
        reply = self.get(f"/Invoices/{_segment(invoice_id)}", _unitdp(unitdp))
        invoices = self._collection(reply, "Invoices")
        return invoices[0] if invoices else None

    def invoices_by_numbers(
        self, numbers: Iterable[str], unitdp: int | None = 4
    ) -> list[dict[str, Any]]:
        """The invoices whose ``InvoiceNumber`` is one of ``numbers`` (any status), with lines.

        Used to find what an earlier, unanswered create already made before creating again.
        """
        wanted = list(dict.fromkeys(str(number) for number in numbers))
        for number in wanted:
            if not number or "," in number:
                raise ValueError(f"Cannot filter by invoice number {number!r}")
        found: list[dict[str, Any]] = []
        for start in range(0, len(wanted), INVOICE_NUMBERS_PER_REQUEST):
            chunk = wanted[start : start + INVOICE_NUMBERS_PER_REQUEST]
            params = {"InvoiceNumbers": ",".join(chunk), **_unitdp(unitdp)}
            for page in self.paginate("/Invoices", params, key="Invoices"):
                found.extend(page.items)
        return found

    def put_invoices(
        self,
        invoices: list[dict[str, Any]],
        summarize_errors: bool = False,
        idempotency_key: str | None = None,
        unitdp: int | None = 4,
    ) -> list[dict[str, Any]]:
        """Create invoices (PUT); one result per invoice, in order (see create_contacts)."""
        params = {**_summarize(summarize_errors), **_unitdp(unitdp)}
        reply = self.put("/Invoices", {"Invoices": invoices}, params, idempotency_key)
        return self._collection(reply, "Invoices")

    def post_invoice(
        self,
        invoice: dict[str, Any],
        idempotency_key: str | None = None,
        unitdp: int | None = 4,
    ) -> dict[str, Any]:
        """Update an invoice (with ``InvoiceID``: status, ``SentToContact``, lines...) or create
        one (without); the invoice as Xero now has it."""
        invoice_id = invoice.get("InvoiceID")
        path = f"/Invoices/{_segment(str(invoice_id))}" if invoice_id else "/Invoices"
        reply = self.post(path, {"Invoices": [invoice]}, _unitdp(unitdp), idempotency_key)
        return self._single(reply, "Invoices", path)

    def put_payments(
        self,
        payments: list[dict[str, Any]],
        summarize_errors: bool = False,
        idempotency_key: str | None = None,
    ) -> list[dict[str, Any]]:
        """Create payments (PUT); one result per payment, in order (see create_contacts)."""
        params = _summarize(summarize_errors)
        reply = self.put("/Payments", {"Payments": payments}, params, idempotency_key)
        return self._collection(reply, "Payments")

    def delete_payment(self, payment_id: str, idempotency_key: str | None = None) -> dict[str, Any]:
        """Delete a payment: Xero has no HTTP DELETE for it, only a POST of ``Status: DELETED``."""
        path = f"/Payments/{_segment(payment_id)}"
        reply = self.post(path, {"Status": "DELETED"}, idempotency_key=idempotency_key)
        return self._single(reply, "Payments", path)

    def create_tax_rate(
        self, tax_rate: dict[str, Any], idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """Create one tax rate; the reply carries the ``TaxType`` Xero assigned."""
        reply = self.put("/TaxRates", {"TaxRates": [tax_rate]}, idempotency_key=idempotency_key)
        return self._single(reply, "TaxRates", "/TaxRates")

    def add_currency(
        self,
        code: str,
        description: str | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Add a currency to the organisation. Xero wants a single object, not a wrapped list."""
        body: dict[str, Any] = {"Code": code.upper()}
        if description:
            body["Description"] = description
        reply = self.put("/Currencies", body, idempotency_key=idempotency_key)
        return self._single(reply, "Currencies", "/Currencies")

    # -- internals ---------------------------------------------------------------------------

    def _url(self, path: str) -> tuple[str, str]:
        """The full URL, and the path to name in logs and errors (no query string)."""
        if path.startswith(("http://", "https://")):
            # A full URL (a webhook's resourceUrl) must stay under the API we hold a token for.
            if not path.startswith(self.base_url + "/"):
                raise ValueError(f"URL outside the Accounting API: {path}")
            path = path[len(self.base_url) :]
        if not path.startswith("/"):
            path = "/" + path
        return self.base_url + path, path.split("?", 1)[0]

    def _time_left(self) -> float:
        return float("inf") if self.deadline is None else self.deadline - self._clock()

    def _slot(self) -> AbstractContextManager[None]:
        """The limiter's slot for one call, waiting no longer than the deadline allows."""
        left = self._time_left()
        if left <= 0:
            raise DeadlineReached(f"No time left to call Xero for tenant {self.tenant_id}.")
        if self.max_wait is not None:
            left = min(left, self.max_wait)
        if left == float("inf"):
            return self.limiter.acquire(self.tenant_id)
        return self.limiter.acquire(self.tenant_id, max_wait=left)

    def _send(
        self,
        method: str,
        url: str,
        token: str,
        headers: dict[str, str],
        params: dict[str, str],
        body: bytes | None,
    ) -> requests.Response:
        with self._slot():
            response = send(
                self.session,
                method,
                url,
                timeout=self.timeout,
                params=params or None,
                data=body,
                headers={**headers, "Authorization": f"Bearer {token}"},
            )
        state = RateLimitState.from_headers(response.headers)
        if not state.is_empty:
            self.limiter.observe(self.tenant_id, state)
        return response

    def _retry_delay(self, error: XeroError, attempt: int, repeatable: bool) -> float | None:
        """Seconds to wait before repeating the call, or None to give up and raise ``error``."""
        if attempt >= self.max_retries or not error.retryable:
            return None
        # Xero refused a 429'd call without acting on it, so even a plain write may be resent.
        if not repeatable and not isinstance(error, RateLimited):
            return None
        if error.retry_after is not None:
            longest = self.max_retry_after
            if isinstance(error, RateLimited) and self.max_wait is not None:
                longest = min(longest, self.max_wait)
            return error.retry_after if error.retry_after <= longest else None
        return self._backoff(attempt)

    def _backoff(self, attempt: int) -> float:
        """Capped exponential backoff with jitter: a random wait of half to all of the step."""
        step = min(self.backoff_cap, self.backoff_base * (2**attempt))
        return step * (0.5 + self._jitter() / 2)

    def _parse(self, response: requests.Response, method: str, path: str) -> Any:
        text = _text(response)
        if response.status_code in (204, 304) or not text.strip():
            return None
        try:
            return loads(text)
        except ValueError:
            raise XeroAPIError(
                response.status_code,
                text,
                header(response.headers, "Xero-Correlation-Id"),
                method=method,
                path=path,
                messages=["Xero's reply is not JSON"],
            ) from None

    @staticmethod
    def _collection(payload: Any, key: str) -> list[dict[str, Any]]:
        if not isinstance(payload, Mapping):
            return []
        items = payload.get(key)
        return list(items) if isinstance(items, list) else []

    def _single(self, payload: Any, key: str, path: str) -> dict[str, Any]:
        items = self._collection(payload, key)
        if not items:
            raise XeroAPIError(200, messages=[f"Xero returned no {key}"], path=path)
        return items[0]


def _page(payload: Mapping[str, Any], key: str, number: int) -> Page:
    items = payload.get(key) if isinstance(payload, Mapping) else None
    pagination = payload.get("pagination") if isinstance(payload, Mapping) else None
    page_count = item_count = None
    if isinstance(pagination, Mapping):
        page_count = _int_or_none(pagination.get("pageCount"))
        item_count = _int_or_none(pagination.get("itemCount"))
    return Page(number, list(items or []), page_count, item_count)


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _summarize(summarize_errors: bool) -> dict[str, str]:
    return {} if summarize_errors else {"summarizeErrors": "false"}


def _unitdp(unitdp: int | None) -> dict[str, str]:
    return {"unitdp": str(unitdp)} if unitdp else {}


def _segment(value: str) -> str:
    if not value:
        raise ValueError("An id is required")
    return quote(value, safe="")


def _text(response: requests.Response) -> str:
    # Xero's JSON is UTF-8 even when the Content-Type names no charset.
    if response.encoding is None:
        return response.content.decode("utf-8", errors="replace")
    return response.text
