"""The sandbox's own request and response values, independent of the HTTP server."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from .wire import ApiError, dumps


class Headers(dict):
    """Case-insensitive request headers."""

    def __init__(self, items: Any = ()) -> None:
        super().__init__()
        for key, value in dict(items).items():
            self[key] = value

    def __setitem__(self, key: str, value: str) -> None:
        super().__setitem__(key.lower(), value)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(key.lower(), default)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())


@dataclass
class Request:
    method: str
    path: str
    query_string: str = ""
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    @property
    def query(self) -> dict[str, str]:
        """Query parameters, keys case-insensitive (lower-cased), last value wins."""
        parsed = parse_qs(self.query_string, keep_blank_values=True)
        return {key.lower(): values[-1] for key, values in parsed.items()}

    def form(self) -> dict[str, list[str]]:
        return parse_qs(self.body.decode("utf-8", "replace"), keep_blank_values=True)

    def form_value(self, name: str) -> str | None:
        values = self.form().get(name)
        return values[-1] if values else None

    def json(self) -> Any:
        from .wire import PostDataInvalid

        if not self.body.strip():
            raise PostDataInvalid("The request body is empty.")
        try:
            return json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise PostDataInvalid(
                f"Unexpected character encountered while parsing value: {exc}"
            ) from None


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    drop_connection: bool = False
    hold_seconds: float = 0.0
    # A fault's marker: apply the request, then answer without the collection's last element.
    short_answer: bool = False

    @classmethod
    def json(cls, value: Any, status: int = 200, headers: dict | None = None) -> Response:
        return cls(status=status, body=dumps(value), headers=dict(headers or {}))

    @classmethod
    def html(cls, text: str, status: int = 200) -> Response:
        return cls(
            status=status, body=text.encode("utf-8"), content_type="text/html; charset=utf-8"
        )

    @classmethod
    def text(cls, text: str, status: int = 200) -> Response:
        return cls(
            status=status, body=text.encode("utf-8"), content_type="text/plain; charset=utf-8"
        )

    @classmethod
    def redirect(cls, location: str) -> Response:
        return cls(status=302, content_type="text/html", headers={"Location": location})

    @classmethod
    def from_error(cls, error: ApiError) -> Response:
        if error.text:
            response = cls.text(str(error.body), error.status)
        else:
            response = cls.json(error.body, error.status)
        response.headers.update(error.headers)
        return response
