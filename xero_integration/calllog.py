"""Recording every call a sync job makes to Xero, for the sync log staff read in admin.

Bodies are kept (capped) with secrets redacted; headers are never kept, so neither is the
access token.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests

BODY_LIMIT = 20_000
_SECRET_KEYS = re.compile(r"token|secret|password|authorization|code_verifier", re.IGNORECASE)


def redact(text: str) -> str:
    """A body with the values of secret-looking keys replaced, and capped in length."""
    if not text:
        return ""
    try:
        data = json.loads(text)
    except ValueError:
        redacted = text
    else:
        redacted = json.dumps(_redact(data), ensure_ascii=False)
    if len(redacted) > BODY_LIMIT:
        return redacted[:BODY_LIMIT] + f"… ({len(redacted) - BODY_LIMIT:,} more characters)"
    return redacted


def _redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: "[redacted]" if _SECRET_KEYS.search(str(key)) else _redact(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_redact(item) for item in value]
    return value


@dataclass
class Call:
    method: str
    path: str
    query: str
    status: int
    correlation_id: str
    request_body: str
    response_body: str


@dataclass
class CallRecorder:
    """Attach to a requests session; collects each call's outline and redacted bodies, and
    hands each to ``on_call`` as it happens (to write it down before anything else can go
    wrong)."""

    calls: list[Call] = field(default_factory=list)
    on_call: Callable[[Call], None] | None = None

    def attach(self, session: requests.Session) -> requests.Session:
        session.hooks["response"].append(self._record)
        return session

    def _record(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        request = response.request
        parts = urlsplit(request.url or "")
        body = request.body or b""
        if isinstance(body, bytes):
            body = body.decode("utf-8", "replace")
        self.calls.append(
            Call(
                method=request.method or "",
                path=parts.path,
                query=parts.query,
                status=response.status_code,
                correlation_id=response.headers.get("Xero-Correlation-Id", ""),
                request_body=redact(body),
                response_body=redact(response.text),
            )
        )
        if self.on_call is not None:
            self.on_call(self.calls[-1])

    def drain(self) -> list[Call]:
        calls, self.calls = self.calls, []
        return calls
