"""The exceptions the Xero wire layer raises, and the mapping from Xero's replies to them.

Every exception derives from XeroError and says whether retrying later can help (``retryable``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote_plus

from xero_integration.xero.wire import header, loads, parse_retry_after

#: Longest stretch of a reply body quoted in an exception message.
MAX_QUOTED_BODY = 500


class XeroError(Exception):
    """Base of every error raised by the Xero wire layer.

    ``retryable`` tells whether the same request may succeed later; ``retry_after`` (seconds),
    when set, is how long to wait before trying again.
    """

    retryable: bool = False
    retry_after: float | None = None

    def __reduce__(self) -> tuple[Any, ...]:
        # Task queues pickle exceptions; rebuild from the attributes, not the constructor.
        return (_restore_error, (type(self), self.args, self.__dict__))


def _restore_error(cls: type[XeroError], args: tuple[Any, ...], state: dict[str, Any]) -> XeroError:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


@dataclass(frozen=True)
class FieldError:
    """One validation message from Xero and where it applies.

    ``path`` is relative to the object sent (``"Contact"``, ``"LineItems[1]"``,
    ``"Contact.Addresses[0]"``; empty for the object itself). ``index`` is the object's position
    among those Xero echoed, when it echoed several: a 400 echoes only the failing objects, so
    match those to what was sent by number or name, not by position.
    """

    message: str
    path: str = ""
    index: int | None = None

    def __str__(self) -> str:
        where = self.path
        if self.index is not None:
            where = f"[{self.index}]" + (f".{self.path}" if self.path else "")
        return f"{where}: {self.message}" if where else self.message


def element_errors(element: Mapping[str, Any], index: int | None = None) -> list[FieldError]:
    """Every ``ValidationErrors`` message in an echoed object, nested objects included.

    Xero echoes each failing object with its own ``ValidationErrors`` and those of nested objects
    (``Contact``, ``LineItems[n]``, ``Addresses[n]``...), so the whole tree is walked. Also used on
    the per-element results of a batch sent with ``summarizeErrors=false``.
    """
    return [
        FieldError(message=message, path=path, index=index)
        for path, message in _walk_messages(element, "", "ValidationErrors")
    ]


def element_warnings(element: Mapping[str, Any]) -> list[FieldError]:
    """Every non-blocking ``Warnings`` message in an echoed object, nested objects included."""
    return [
        FieldError(message=message, path=path)
        for path, message in _walk_messages(element, "", "Warnings")
    ]


def _walk_messages(node: Any, path: str, key: str) -> Iterator[tuple[str, str]]:
    if isinstance(node, Mapping):
        for entry in node.get(key) or []:
            message = entry.get("Message") if isinstance(entry, Mapping) else entry
            if message:
                yield path, str(message)
        for name, value in node.items():
            if name in ("ValidationErrors", "Warnings"):
                continue
            child = f"{path}.{name}" if path else name
            if isinstance(value, Mapping):
                yield from _walk_messages(value, child, key)
            elif isinstance(value, list):
                for position, item in enumerate(value):
                    yield from _walk_messages(item, f"{child}[{position}]", key)


def _quote(text: str) -> str:
    text = " ".join(text.split())
    if len(text) > MAX_QUOTED_BODY:
        return text[:MAX_QUOTED_BODY] + "..."
    return text


class XeroAPIError(XeroError):
    """Xero answered with an error status.

    ``body`` is the reply's text, ``payload`` its parsed JSON (None for plain-text replies),
    ``correlation_id`` the ``Xero-Correlation-Id`` to quote to Xero support.
    """

    def __init__(
        self,
        status: int,
        body: str = "",
        correlation_id: str | None = None,
        *,
        payload: Any = None,
        method: str | None = None,
        path: str | None = None,
        messages: list[str] | None = None,
    ) -> None:
        self.status = status
        self.body = body
        self.correlation_id = correlation_id
        self.payload = payload if payload is not None else parse_body(body)
        self.method = method
        self.path = path
        self.messages = messages if messages is not None else _messages_of(self.payload, body)
        super().__init__(status, self.summary())

    @property
    def error_type(self) -> str | None:
        """Xero's exception ``Type`` (``ValidationException``...), when the body had one."""
        if isinstance(self.payload, Mapping):
            return self.payload.get("Type") or None
        return None

    def summary(self) -> str:
        """Xero's own messages, joined; what a user is shown."""
        return "; ".join(self.messages) or f"HTTP {self.status}"

    def __str__(self) -> str:
        parts = [f"Xero answered {self.status}"]
        if self.method and self.path:
            parts[0] += f" to {self.method} {self.path}"
        if self.error_type:
            parts.append(f"({self.error_type})")
        text = " ".join(parts) + f": {self.summary()}"
        if self.correlation_id:
            text += f" [correlation id {self.correlation_id}]"
        return text


def _messages_of(payload: Any, body: str) -> list[str]:
    if isinstance(payload, Mapping):
        # 401/403 bodies are problem+json ({"Title", "Detail"}); accounting errors use "Message".
        for key in ("Detail", "Message", "Title", "message", "error_description", "error"):
            value = payload.get(key)
            if value:
                return [str(value)]
        return []
    return [_quote(body)] if body.strip() else []


class ValidationError(XeroAPIError, ValueError):
    """Xero rejected the data (400): each message comes with its field path in ``errors``."""

    def __init__(
        self, status: int, body: str = "", correlation_id: str | None = None, **kwargs: Any
    ) -> None:
        payload = kwargs.get("payload")
        if payload is None:
            payload = kwargs["payload"] = parse_body(body)
        self.errors: list[FieldError] = _validation_errors(payload, body)
        kwargs.setdefault("messages", [str(error) for error in self.errors])
        super().__init__(status, body, correlation_id, **kwargs)


def _validation_errors(payload: Any, body: str) -> list[FieldError]:
    if not isinstance(payload, Mapping):
        return [FieldError(_quote(body))] if body.strip() else []
    elements = payload.get("Elements") or []
    several = len(elements) > 1
    errors: list[FieldError] = []
    for position, element in enumerate(elements):
        if isinstance(element, Mapping):
            errors.extend(element_errors(element, position if several else None))
    if not errors:
        # PostDataInvalidException, QueryParseException and friends carry only "Message".
        message = payload.get("Message") or payload.get("Detail")
        if message:
            errors.append(FieldError(str(message)))
    return errors


class TokenExpired(XeroAPIError):
    """401: the access token expired; refresh it and try once more."""


class Unauthorized(XeroAPIError):
    """401 for another reason, such as a scope the connection was not granted."""


class Forbidden(XeroAPIError):
    """403: this token may not act on the tenant."""


class Disconnected(Forbidden):
    """403 AuthenticationUnsuccessful: the tenant is not (or no longer) connected to the app."""


class NotFound(XeroAPIError):
    """404: no such record or endpoint."""


class RateLimited(XeroAPIError):
    """429: a Xero rate limit was hit. ``problem`` names it (``minute``, ``day``...)."""

    retryable = True

    def __init__(
        self,
        status: int,
        body: str = "",
        correlation_id: str | None = None,
        *,
        retry_after: float | None = None,
        problem: str | None = None,
        **kwargs: Any,
    ) -> None:
        self.retry_after = retry_after
        self.problem = problem
        detail = f"rate limit '{problem or 'unknown'}' exceeded"
        if retry_after is not None:
            detail += f", retry after {retry_after:g} s"
        kwargs.setdefault("messages", [detail])
        super().__init__(status, body, correlation_id, **kwargs)


class ServerError(XeroAPIError):
    """5xx: Xero failed to handle the request; worth retrying later (except 501)."""

    def __init__(
        self, status: int, body: str = "", correlation_id: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(status, body, correlation_id, **kwargs)
        # 501 "not implemented" will never work, however often it is retried.
        self.retryable = status != 501


class Unavailable(ServerError):
    """503: the API, or this organisation, is offline for now. Not a disconnection."""

    @property
    def organisation_offline(self) -> bool:
        """Whether Xero said that only this organisation is unreachable."""
        text = self.body.lower()
        return "organisation" in text or "organization" in text


class XeroTransportError(XeroError):
    """No usable reply: a timeout, a refused or dropped connection.

    ``request_sent`` is False only when the request certainly never reached Xero (the connection
    could not be opened); otherwise Xero may have acted on it.
    """

    retryable = True

    def __init__(self, message: str, *, request_sent: bool = True) -> None:
        self.request_sent = request_sent
        super().__init__(message)


class DeadlineReached(XeroError):
    """The caller's time for this run is up: the call was not sent (and would not have been
    answered in time). The caller hands its remaining work back to the queue."""

    retryable = True


class ThrottledLocally(XeroError):
    """The rate limiter refused to send the call now, to stay within Xero's limits.

    ``problem`` names the budget (``concurrent``, ``minute``, ``day``, ``retry-after``).
    """

    retryable = True

    def __init__(self, tenant_id: str, problem: str, retry_after: float | None) -> None:
        self.tenant_id = tenant_id
        self.problem = problem
        self.retry_after = retry_after
        wait = f"; retry after {retry_after:.1f} s" if retry_after is not None else ""
        super().__init__(f"Xero {problem} budget for tenant {tenant_id} is used up{wait}")


#: OAuth error codes that a later attempt may get past.
RETRYABLE_OAUTH_ERRORS = frozenset(
    {"server_error", "temporarily_unavailable", "rate_limited", "invalid_response"}
)


class OAuthError(XeroError):
    """Xero's identity service refused a token request (``error``: ``invalid_grant``...).

    ``invalid_grant`` means the authorisation is gone (expired, revoked, rotated, disconnected):
    the user must reconnect.
    """

    def __init__(
        self,
        error: str,
        description: str | None = None,
        status: int | None = None,
        *,
        retryable: bool | None = None,
    ) -> None:
        self.error = error
        self.description = description
        self.status = status
        self.retryable = error in RETRYABLE_OAUTH_ERRORS if retryable is None else retryable
        super().__init__(error, description, status)

    def __str__(self) -> str:
        text = f"Xero OAuth error {self.error}"
        if self.description:
            text += f": {_quote(self.description)}"
        if self.status is not None:
            text += f" (HTTP {self.status})"
        return text


def parse_body(body: str) -> Any:
    """The reply's JSON, or None when it is empty or not JSON (outage pages, plain text)."""
    if not body.strip():
        return None
    try:
        return loads(body)
    except ValueError:
        return None


def error_from_response(
    status: int,
    body: str,
    headers: Mapping[str, str],
    *,
    method: str | None = None,
    path: str | None = None,
) -> XeroAPIError:
    """The exception for an error reply from the Accounting API or ``/connections``."""
    payload = parse_body(body)
    correlation_id = header(headers, "Xero-Correlation-Id")
    context: dict[str, Any] = {"payload": payload, "method": method, "path": path}
    detail = str(payload.get("Detail") or "") if isinstance(payload, Mapping) else ""
    text = unquote_plus(body).lower()

    if status == 429 or (status == 503 and "rate limit" in text):
        problem = header(headers, "X-Rate-Limit-Problem")
        if problem is None and "oauth_problem" in text:
            problem = parse_qs(body).get("oauth_problem", [None])[0]
        return RateLimited(
            status,
            body,
            correlation_id,
            retry_after=parse_retry_after(header(headers, "Retry-After")),
            problem=problem,
            **context,
        )
    if status == 400:
        return ValidationError(status, body, correlation_id, **context)
    if status == 401:
        if detail.startswith("TokenExpired") or "tokenexpired" in text or "token_expired" in text:
            return TokenExpired(status, body, correlation_id, **context)
        return Unauthorized(status, body, correlation_id, **context)
    if status == 403:
        if "authenticationunsuccessful" in text:
            return Disconnected(status, body, correlation_id, **context)
        return Forbidden(status, body, correlation_id, **context)
    if status == 404:
        return NotFound(status, body, correlation_id, **context)
    if status == 503:
        unavailable = Unavailable(status, body, correlation_id, **context)
        unavailable.retry_after = parse_retry_after(header(headers, "Retry-After"))
        return unavailable
    if status >= 500:
        return ServerError(status, body, correlation_id, **context)
    return XeroAPIError(status, body, correlation_id, **context)


def oauth_error_from_response(status: int, body: str) -> OAuthError:
    """The exception for an error reply from the token or revocation endpoint."""
    payload = parse_body(body)
    if not isinstance(payload, Mapping) and "error=" in body:
        # Some OAuth errors come form-encoded rather than as JSON.
        form = parse_qs(body.strip())
        payload = {key: values[0] for key, values in form.items()}
    if isinstance(payload, Mapping) and payload.get("error"):
        error = str(payload["error"])
        description = payload.get("error_description")
        retryable = None
        if status >= 500 or status == 429:
            retryable = True
        return OAuthError(
            error, str(description) if description else None, status, retryable=retryable
        )
    if status == 429:
        return OAuthError("rate_limited", _quote(body) or None, status)
    if status >= 500:
        error = "temporarily_unavailable" if status == 503 else "server_error"
        return OAuthError(error, _quote(body) or None, status)
    return OAuthError("invalid_response", _quote(body) or None, status, retryable=False)


__all__ = [
    "Disconnected",
    "FieldError",
    "Forbidden",
    "NotFound",
    "OAuthError",
    "RateLimited",
    "ServerError",
    "ThrottledLocally",
    "TokenExpired",
    "Unauthorized",
    "Unavailable",
    "ValidationError",
    "XeroAPIError",
    "XeroError",
    "XeroTransportError",
    "element_errors",
    "element_warnings",
    "error_from_response",
    "oauth_error_from_response",
    "parse_body",
]
