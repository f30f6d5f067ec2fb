r"""Xero's ``where`` and ``order`` query parameters: a small parser for the expressions
Xero's documentation lists (comparisons, ``&&``/``||``/``AND``/``OR``, ``Contains``, ``StartsWith``,
``EndsWith``, ``ToLower``, ``Guid("...")``, ``DateTime(y, m, d)``), compiled to a predicate.

A string runs from one double quote to the next: Xero has no escape for a quote inside it, so
``Name=="a\"b"`` or ``Name=="a""b"`` leave tokens over and fail with Xero's "Syntax error"."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from .wire import QueryParseError

Record = dict[str, Any]
Predicate = Callable[[Record], bool]

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>"[^"]*")
      | (?P<number>-?\d+(?:\.\d+)?)
      | (?P<op>==|!=|>=|<=|&&|\|\||[<>!().,])
      | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.VERBOSE,
)

_MISSING = object()


SYNTAX_ERROR = "Syntax error"


def _tokenize(text: str) -> list[tuple[str, str]]:
    """The tokens of ``text``. What cannot be read becomes an ``error`` token, the last one:
    Xero's parser reads a token only when it gets to it, so what comes before decides the
    message (a stray identifier gives "Syntax error" before a later unterminated string)."""
    tokens, position = [], 0
    text = text.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match or match.end() == position:
            rest = text[position:].lstrip()
            if rest.startswith('"'):
                tokens.append(("error", "Unterminated string literal"))
            else:
                tokens.append(("error", f"{SYNTAX_ERROR} '{rest[0]}'"))
            break
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


def _field(record: Record, path: list[str]) -> Any:
    value: Any = record
    for part in path:
        if not isinstance(value, dict):
            return None
        # Xero's field names are case-insensitive in filters.
        if part in value:
            value = value[part]
            continue
        lowered = {key.lower(): key for key in value}
        key = lowered.get(part.lower())
        value = value.get(key) if key else None
    return value


def _comparable(left: Any, right: Any) -> tuple[Any, Any]:
    if isinstance(right, datetime) and isinstance(left, date) and not isinstance(left, datetime):
        return left, right.date() if right.time() == datetime.min.time() else right
    if isinstance(right, date) and isinstance(left, datetime):
        return left.date(), right
    if isinstance(right, Decimal) and isinstance(left, int | float | Decimal | str):
        try:
            return Decimal(str(left)), right
        except ArithmeticError:
            return left, right
    if isinstance(right, str) and isinstance(left, str) and _looks_like_guid(right):
        return left.lower(), right.lower()
    return left, right


def _looks_like_guid(text: str) -> bool:
    return bool(re.fullmatch(r"[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}", text))


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.index = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if token is not None and token[0] == "error":
            raise QueryParseError(token[1])
        if token is None or (value is not None and token[1].upper() != value.upper()):
            raise QueryParseError(SYNTAX_ERROR)
        self.index += 1
        return token

    def parse(self) -> Predicate:
        predicate = self.parse_or()
        token = self.peek()
        if token is not None:
            raise QueryParseError(token[1] if token[0] == "error" else SYNTAX_ERROR)
        return predicate

    def parse_or(self) -> Predicate:
        left = self.parse_and()
        while (token := self.peek()) and token[1].upper() in ("||", "OR"):
            self.take()
            right = self.parse_and()
            left = (lambda a, b: lambda r: a(r) or b(r))(left, right)
        return left

    def parse_and(self) -> Predicate:
        left = self.parse_not()
        while (token := self.peek()) and token[1].upper() in ("&&", "AND"):
            self.take()
            right = self.parse_not()
            left = (lambda a, b: lambda r: a(r) and b(r))(left, right)
        return left

    def parse_not(self) -> Predicate:
        token = self.peek()
        if token and token[1].upper() in ("!", "NOT"):
            self.take()
            inner = self.parse_not()
            return lambda r: not inner(r)
        return self.parse_comparison()

    def parse_comparison(self) -> Predicate:
        token = self.peek()
        if token and token[1] == "(":
            self.take("(")
            inner = self.parse_or()
            self.take(")")
            return inner
        left = self.parse_operand()
        token = self.peek()
        if token and token[1] in ("==", "!=", ">=", "<=", ">", "<"):
            op = self.take()[1]
            right = self.parse_operand()
            return _compare(left, op, right)
        return lambda r: bool(left(r))

    def parse_operand(self) -> Callable[[Record], Any]:
        kind, value = self.take()
        if kind == "string":
            text = value[1:-1]
            return lambda r: text
        if kind == "number":
            number = Decimal(value)
            return lambda r: number
        if kind != "name":
            raise QueryParseError(SYNTAX_ERROR)
        upper = value.upper()
        if upper == "TRUE":
            return lambda r: True
        if upper == "FALSE":
            return lambda r: False
        if upper == "NULL":
            return lambda r: None
        if upper == "GUID":
            self.take("(")
            guid = self.take()[1].strip('"')
            self.take(")")
            return lambda r: guid
        if upper == "DATETIME":
            self.take("(")
            parts = [self._whole_number()]
            while self.peek() and self.peek()[1] == ",":
                self.take(",")
                parts.append(self._whole_number())
            self.take(")")
            try:
                moment = datetime(*parts) if len(parts) > 3 else date(*parts)
            except (TypeError, ValueError):
                raise QueryParseError(f"Invalid DateTime in '{self.text}'") from None
            return lambda r: moment
        path = [value]
        getter: Callable[[Record], Any] = lambda r: _field(r, path)  # noqa: E731
        while self.peek() and self.peek()[1] == ".":
            self.take(".")
            member = self.take()[1]
            if self.peek() and self.peek()[1] == "(":
                getter = self._method(getter, member)
            else:
                path = [*path, member]
                getter = (lambda p: lambda r: _field(r, p))(path)
        return getter

    def _whole_number(self) -> int:
        kind, value = self.take()
        if kind != "number" or not value.lstrip("-").isdigit():
            raise QueryParseError(SYNTAX_ERROR)
        return int(value)

    def _method(self, target: Callable, name: str) -> Callable[[Record], Any]:
        self.take("(")
        argument = None
        if self.peek() and self.peek()[1] != ")":
            argument = self.parse_operand()
        self.take(")")
        upper = name.upper()

        def call(record: Record) -> Any:
            value = target(record)
            if upper == "TOLOWER":
                return value.lower() if isinstance(value, str) else value
            if upper == "TOUPPER":
                return value.upper() if isinstance(value, str) else value
            if not isinstance(value, str) or argument is None:
                return False
            needle = argument(record)
            if upper == "CONTAINS":
                return needle in value
            if upper == "STARTSWITH":
                return value.startswith(needle)
            if upper == "ENDSWITH":
                return value.endswith(needle)
            raise QueryParseError(f"No applicable method '{name}' exists in type 'String'")

        if upper not in ("TOLOWER", "TOUPPER", "CONTAINS", "STARTSWITH", "ENDSWITH"):
            raise QueryParseError(f"No applicable method '{name}' exists in type 'String'")
        return call


def _compare(left: Callable, op: str, right: Callable) -> Predicate:
    def predicate(record: Record) -> bool:
        a, b = _comparable(left(record), right(record))
        if op == "==":
            return a == b
        if op == "!=":
            return a != b
        if a is None or b is None:
            return False
        try:
            return {">": a > b, "<": a < b, ">=": a >= b, "<=": a <= b}[op]
        except TypeError:
            return False

    return predicate


def where(text: str | None) -> Predicate | None:
    """Compile a ``where`` expression; None when there is none."""
    if not text or not text.strip():
        return None
    return _Parser(text).parse()


def order(records: list[Record], text: str | None) -> list[Record]:
    """Sort by ``order=Field [ASC|DESC], ...``."""
    if not text:
        return records
    for clause in reversed([part.strip() for part in text.split(",") if part.strip()]):
        words = clause.split()
        if len(words) > 2 or (len(words) == 2 and words[1].upper() not in ("ASC", "DESC")):
            raise QueryParseError(f"Unable to parse the order clause '{text}'")
        reverse = len(words) == 2 and words[1].upper() == "DESC"
        path = words[0].split(".")
        records = sorted(
            records,
            key=lambda r: (_field(r, path) is None, str(_field(r, path) or "")),
            reverse=reverse,
        )
    return records
