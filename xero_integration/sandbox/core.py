"""The sandbox: state, routing, authentication, rate limits, faults, Idempotency-Key and the
request log. ``Sandbox.handle`` turns a ``Request`` into a ``Response``; ``server.py`` puts it
on HTTP."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import pickle
import random
import re
import secrets
import tempfile
import threading
import uuid
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from . import state as st
from .clock import Clock
from .messages import Request, Response
from .oauth import OAuth
from .wire import ApiError, problem

log = logging.getLogger(__name__)

API_PREFIX = "/api.xro/2.0"
APP_PER_MINUTE = 10_000
_ACCOUNTING_ROOT = re.compile(r"^/api\.xro/2\.0(/.*)?$", re.IGNORECASE)
_CONNECTIONS = re.compile(r"^/connections(?:/([^/]+))?/?$", re.IGNORECASE)

# The scope an Accounting endpoint needs; the ``.read`` variant suffices for GET, and the
# broad ``accounting.transactions`` still covers invoices and payments for older apps.
_SCOPES = {
    "contacts": ("accounting.contacts",),
    "invoices": ("accounting.invoices", "accounting.transactions"),
    "payments": ("accounting.payments", "accounting.transactions"),
    "organisation": ("accounting.settings",),
    "accounts": ("accounting.settings",),
    "taxrates": ("accounting.settings",),
    "currencies": ("accounting.settings",),
}


class Sandbox:
    """An emulated Xero: one instance serves OAuth, the Accounting API and the control API."""

    def __init__(self, state_file: str | Path | None = None, seed: int | None = None) -> None:
        self.clock = Clock()
        self.lock = threading.RLock()
        self._save_lock = threading.Lock()
        self.random = random.Random(seed)
        self.state_file = Path(state_file) if state_file else None
        self.stopping = threading.Event()
        self.base_url = ""
        self.oauth = OAuth(self)
        self._reset_state()
        if self.state_file and self.state_file.exists():
            self._load()
        from .accounting import Accounting
        from .control import Control
        from .webhooks import Webhooks

        self.accounting = Accounting(self)
        self.control = Control(self)
        self.webhooks = Webhooks(self)

    # ---- state -------------------------------------------------------------------------
    def _reset_state(self) -> None:
        self.signing_key = secrets.token_bytes(32)
        self.apps: dict[str, st.App] = {}
        self.organisations: dict[str, st.Organisation] = {}
        self.connections: dict[str, st.Connection] = {}
        self.token_families: dict[str, st.TokenFamily] = {}
        self.access_tokens: dict[str, st.AccessToken] = {}
        self.refresh_tokens: dict[str, st.RefreshToken] = {}
        self.auth_codes: dict[str, st.AuthCode] = {}
        self.faults: list[st.Fault] = []
        self.request_log: list[dict] = []
        self.rate_windows: dict[tuple[str, str], st.RateWindow] = {}
        self.app_minute: dict[str, list[datetime]] = {}
        self.idempotency: dict[tuple[str, str], dict] = {}
        # Calls refused because a real limit was reached (injected 429 faults are not here).
        self.limit_refusals: list[tuple[str, str, str]] = []

    def reset(self) -> None:
        with self.lock:
            self._reset_state()
            if hasattr(self, "webhooks"):
                self.webhooks.clear()
        self.save()

    _PERSISTED = (
        "signing_key",
        "apps",
        "organisations",
        "connections",
        "token_families",
        "access_tokens",
        "refresh_tokens",
    )

    def save(self) -> None:
        """Write organisations, apps and grants to ``--state FILE`` (the demo's memory).

        Saves run one at a time, each taking its snapshot and writing it before the next
        starts, so the file always ends with the latest state. Never raises: the change being
        saved is already applied, and its caller must still get its answer. Never call it while
        holding an organisation's lock (the snapshot takes them all, after ``self.lock``)."""
        if not self.state_file:
            return
        with self._save_lock:
            try:
                self._write_state(self._snapshot())
            except Exception:
                log.exception("Could not write the sandbox state file %s", self.state_file)

    def _snapshot(self) -> bytes:
        """Everything persisted, pickled while no request can change it."""
        with self.lock, contextlib.ExitStack() as held:
            for organisation in sorted(self.organisations.values(), key=lambda o: o.tenant_id):
                held.enter_context(organisation.lock)
            snapshot = {name: getattr(self, name) for name in self._PERSISTED}
            snapshot["clock_offset"] = self.clock.offset_seconds
            return pickle.dumps(snapshot)

    def _write_state(self, data: bytes) -> None:
        """Replace the state file atomically: a reader sees the old file or the new, whole."""
        assert self.state_file is not None
        folder = self.state_file.parent
        folder.mkdir(parents=True, exist_ok=True)
        # A temporary file of its own: another process may share the folder or the state file.
        descriptor, temporary = tempfile.mkstemp(
            dir=folder, prefix=f".{self.state_file.name}.", suffix=".tmp"
        )
        try:
            with os.fdopen(descriptor, "wb") as file:
                file.write(data)
            os.replace(temporary, self.state_file)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise

    def _load(self) -> None:
        assert self.state_file is not None
        try:
            snapshot = pickle.loads(self.state_file.read_bytes())  # noqa: S301 - our own file
        except Exception:  # a corrupt or foreign file must not stop the demo
            log.warning("Ignoring unreadable sandbox state file %s", self.state_file)
            return
        for name in self._PERSISTED:
            if name in snapshot:
                setattr(self, name, snapshot[name])
        self.clock.advance(snapshot.get("clock_offset", 0))

    # ---- connections -------------------------------------------------------------------
    def connect(self, client_id: str, tenant_id: str, auth_event_id: str) -> st.Connection:
        now = self.clock.now()
        with self.lock:
            for connection in self.connections.values():
                if connection.client_id == client_id and connection.tenant_id == tenant_id:
                    connection.auth_event_id = auth_event_id
                    connection.updated = now
                    return connection
            connection = st.Connection(
                id=str(uuid.uuid4()),
                tenant_id=tenant_id,
                client_id=client_id,
                auth_event_id=auth_event_id,
                created=now,
                updated=now,
            )
            self.connections[connection.id] = connection
            return connection

    def family_has_connections(self, family: st.TokenFamily) -> bool:
        return any(c.client_id == family.client_id for c in self.connections.values())

    def revoke_app(self, client_id: str) -> None:
        with self.lock:
            for family in self.token_families.values():
                if family.client_id == client_id:
                    family.revoked = True
            for key in [k for k, c in self.connections.items() if c.client_id == client_id]:
                del self.connections[key]

    def disconnect_tenant(self, tenant_id: str) -> int:
        """The user removed the app(s) from this organisation in Xero."""
        with self.lock:
            keys = [k for k, c in self.connections.items() if c.tenant_id == tenant_id]
            for key in keys:
                del self.connections[key]
            return len(keys)

    def connected(self, client_id: str, tenant_id: str) -> bool:
        return any(
            c.client_id == client_id and c.tenant_id == tenant_id for c in self.connections.values()
        )

    # ---- entry point -------------------------------------------------------------------
    def handle(self, request: Request) -> Response:
        path = request.path
        if path == "/_sandbox" or path.startswith("/_sandbox/"):
            try:
                return self.control.handle(request)
            except ApiError as error:
                return Response.from_error(error)
        entry = {
            "method": request.method,
            "path": path,
            "query": request.query_string,
            "status": None,
            "tenant_id": request.headers.get("xero-tenant-id"),
            "idempotency_key": request.headers.get("Idempotency-Key"),
            "at": self.clock.now().isoformat(),
        }
        try:
            response = self._route(request, entry)
        except ApiError as error:
            response = Response.from_error(error)
        except Exception:  # an emulator bug must still answer like a server would
            log.exception("Sandbox error on %s %s", request.method, path)
            response = Response.json(
                {"Title": "An error occurred", "Status": 500, "Detail": "Internal error"}, 500
            )
        entry["status"] = 0 if response.drop_connection else response.status
        response.headers.setdefault("Xero-Correlation-Id", str(uuid.uuid4()))
        with self.lock:
            self.request_log.append(entry)
        return response

    def _route(self, request: Request, entry: dict) -> Response:
        path = request.path
        lowered = path.lower()
        if lowered.startswith("/identity/connect/authorize"):
            return self._faulted(request) or self.oauth.authorize(request)
        if lowered == "/connect/token":
            return self._faulted(request) or self.oauth.token(request)
        if lowered == "/connect/revocation":
            return self._faulted(request) or self.oauth.revoke(request)
        if lowered == "/.well-known/openid-configuration":
            return self.oauth.discovery(self.base_url)
        match = _CONNECTIONS.match(path)
        if match:
            _, family = self.oauth.bearer(request)
            limited = self._app_minute(family.client_id)
            if limited:
                return limited
            response = self._faulted(request) or self.oauth.connections(request, match.group(1))
            response.headers["X-AppMinLimit-Remaining"] = str(self._app_remaining(family.client_id))
            return response
        if _ACCOUNTING_ROOT.match(path):
            return self._accounting(request, entry)
        if path in ("", "/"):
            return Response.redirect("/_sandbox/")
        return Response.json({"Title": "Not Found", "Status": 404, "Detail": "Unknown path"}, 404)

    # ---- accounting --------------------------------------------------------------------
    def _accounting(self, request: Request, entry: dict) -> Response:
        _, family = self.oauth.bearer(request)
        tenant_id = (request.headers.get("xero-tenant-id") or "").strip()
        organisation = self.organisations.get(tenant_id.lower()) or self.organisations.get(
            tenant_id
        )
        if organisation is None or not self.connected(family.client_id, organisation.tenant_id):
            raise problem(403, "Forbidden", "AuthenticationUnsuccessful")
        resource = request.path[len(API_PREFIX) :].strip("/").split("/")[0].lower()
        needed = _SCOPES.get(resource)
        if needed:
            granted = set(family.scope)
            readable = request.method == "GET" and any(f"{s}.read" in granted for s in needed)
            if not readable and not any(s in granted for s in needed):
                raise problem(401, "Unauthorized", "AuthorizationUnsuccessful")
        accept = request.headers.get("Accept", "")
        if "json" not in accept.lower():
            return Response.text(
                "The sandbox answers JSON only: send 'Accept: application/json' (Xero answers "
                "XML without it).",
                406,
            )
        window = self._window(family.client_id, organisation)
        limited = self._admit(family.client_id, organisation, window)
        if limited:
            return limited
        try:
            fault = self._faulted(request)
            if fault is None:
                response = self._idempotent(request, family.client_id, organisation)
            elif fault.hold_seconds:
                # A timeout: the call stays in flight (and counts as concurrent) meanwhile.
                self.stopping.wait(fault.hold_seconds)
                response = Response(drop_connection=True)
            elif fault.drop_connection:
                # A lost response: the write happens, the answer never arrives.
                self._idempotent(request, family.client_id, organisation)
                response = fault
            elif fault.short_answer:
                # A short answer: the write happens, the answer leaves out its last element.
                response = _shortened(self._idempotent(request, family.client_id, organisation))
            else:
                response = fault
        finally:
            with self.lock:
                window.in_flight -= 1
        self._rate_headers(response, family.client_id, window, organisation)
        return response

    def _idempotent(self, request: Request, client_id: str, organisation) -> Response:
        key = request.headers.get("Idempotency-Key")
        if request.method not in ("PUT", "POST", "PATCH") or key is None:
            return self.accounting.handle(request, organisation)
        if not key.strip() or len(key) > 128:
            return Response.json(
                {
                    "ErrorNumber": 10,
                    "Type": "ValidationException",
                    "Message": "The Idempotency-Key header must be between 1 and 128 characters.",
                    "Elements": [],
                },
                400,
            )
        fingerprint = hashlib.sha256(
            b"\n".join(
                [
                    request.method.encode(),
                    request.path.lower().encode(),
                    request.query_string.encode(),
                    request.body,
                ]
            )
        ).hexdigest()
        now = self.clock.now()
        cache_key = (client_id, key)
        with self.lock:
            entry = self.idempotency.get(cache_key)
            if entry and now - entry["at"] > st.IDEMPOTENCY_WINDOW:
                entry = None
            if entry is None:
                entry = {
                    "fingerprint": fingerprint,
                    "at": now,
                    "done": threading.Event(),
                    "response": None,
                }
                self.idempotency[cache_key] = entry
                owner = True
            else:
                owner = False
        if not owner:
            entry["done"].wait(timeout=60)
            if entry["fingerprint"] != fingerprint:
                return Response.json(
                    {
                        "ErrorNumber": 10,
                        "Type": "ValidationException",
                        "Message": f"The Idempotency-Key '{key}' is used with a different request.",
                        "Elements": [],
                    },
                    400,
                )
            cached: Response | None = entry["response"]
            if cached is None:
                return Response.json(
                    {"Title": "An error occurred", "Status": 500, "Detail": "Idempotency store"},
                    500,
                )
            return Response(
                status=cached.status,
                body=cached.body,
                content_type=cached.content_type,
                headers={k: v for k, v in cached.headers.items() if not k.startswith("X-")},
            )
        try:
            response = self.accounting.handle(request, organisation)
            entry["response"] = response
            return response
        except BaseException:
            # An emulator fault is not Xero's answer to the key: a retry must run afresh
            # rather than get this failure replayed for the whole window.
            with self.lock:
                if self.idempotency.get(cache_key) is entry:
                    del self.idempotency[cache_key]
            raise
        finally:
            entry["done"].set()

    # ---- rate limits -------------------------------------------------------------------
    def _window(self, client_id: str, organisation: st.Organisation) -> st.RateWindow:
        with self.lock:
            return self.rate_windows.setdefault(
                (client_id, organisation.tenant_id), st.RateWindow()
            )

    def _day_start(self, organisation: st.Organisation, now: datetime) -> datetime:
        elapsed = (now - organisation.created_at) // timedelta(days=1)
        return organisation.created_at + timedelta(days=max(elapsed, 0))

    def _admit(self, client_id: str, organisation: st.Organisation, window: st.RateWindow):
        """Count the call against Xero's limits, or answer 429 without counting it."""
        now = self.clock.now()
        with self.lock:
            minute_ago = now - timedelta(seconds=60)
            while window.minute and window.minute[0] <= minute_ago:
                window.minute.popleft()
            day_start = self._day_start(organisation, now)
            if window.day_start != day_start:
                window.day_start, window.day_count = day_start, 0
            problem_name, retry_after = None, None
            app_calls = self._app_calls(client_id, now)
            if window.day_count >= organisation.per_day:
                problem_name = "day"
                retry_after = (day_start + timedelta(days=1) - now).total_seconds()
            elif len(window.minute) >= organisation.per_minute:
                problem_name = "minute"
                retry_after = (window.minute[0] + timedelta(seconds=60) - now).total_seconds()
            elif window.in_flight >= organisation.concurrent:
                problem_name = "concurrent"
            elif len(app_calls) >= APP_PER_MINUTE:
                problem_name = "appminute"
                retry_after = (app_calls[0] + timedelta(seconds=60) - now).total_seconds()
            if problem_name:
                self.limit_refusals.append((organisation.tenant_id, client_id, problem_name))
                response = Response.json(
                    {
                        "Title": "Too Many Requests",
                        "Status": 429,
                        "Detail": f"Rate limit exceeded: {problem_name}",
                    },
                    429,
                )
                response.headers["X-Rate-Limit-Problem"] = problem_name
                if retry_after is not None:
                    response.headers["Retry-After"] = str(max(1, int(retry_after + 0.999)))
                self._rate_headers(response, client_id, window, organisation)
                return response
            window.minute.append(now)
            window.day_count += 1
            window.in_flight += 1
            app_calls.append(now)
            return None

    def _app_calls(self, client_id: str, now: datetime) -> list[datetime]:
        calls = self.app_minute.setdefault(client_id, [])
        cutoff = now - timedelta(seconds=60)
        drop = 0
        while drop < len(calls) and calls[drop] <= cutoff:
            drop += 1
        if drop:
            del calls[:drop]
        return calls

    def _app_remaining(self, client_id: str) -> int:
        with self.lock:
            return max(0, APP_PER_MINUTE - len(self._app_calls(client_id, self.clock.now())))

    def _app_minute(self, client_id: str) -> Response | None:
        now = self.clock.now()
        with self.lock:
            calls = self._app_calls(client_id, now)
            if len(calls) >= APP_PER_MINUTE:
                response = Response.json({"Title": "Too Many Requests", "Status": 429}, 429)
                response.headers["X-Rate-Limit-Problem"] = "appminute"
                response.headers["Retry-After"] = "60"
                return response
            calls.append(now)
        return None

    def _rate_headers(self, response: Response, client_id: str, window, organisation) -> None:
        with self.lock:
            response.headers["X-DayLimit-Remaining"] = str(
                max(0, organisation.per_day - window.day_count)
            )
            response.headers["X-MinLimit-Remaining"] = str(
                max(0, organisation.per_minute - len(window.minute))
            )
        response.headers["X-AppMinLimit-Remaining"] = str(self._app_remaining(client_id))

    # ---- faults ------------------------------------------------------------------------
    def add_fault(self, fault: st.Fault) -> None:
        with self.lock:
            self.faults.append(fault)

    def _faulted(self, request: Request) -> Response | None:
        """The injected fault for this request, if one applies (and consume it)."""
        with self.lock:
            chosen = None
            for fault in self.faults:
                if fault.method not in ("*", request.method.upper()):
                    continue
                if not fnmatchcase(request.path.lower(), fault.path.lower()):
                    continue
                if fault.remaining is not None and fault.remaining <= 0:
                    continue
                if fault.probability is not None and self.random.random() >= fault.probability:
                    continue
                chosen = fault
                break
            if chosen is None:
                return None
            if chosen.remaining is not None:
                chosen.remaining -= 1
        if chosen.kind == "500":
            return Response.json(
                {
                    "Title": "An error occurred",
                    "Status": 500,
                    "Detail": "An unhandled error occurred in Xero.",
                },
                500,
            )
        if chosen.kind == "503":
            return Response.text("The Xero API is temporarily unavailable", 503)
        if chosen.kind == "429":
            response = Response.json({"Title": "Too Many Requests", "Status": 429}, 429)
            response.headers["X-Rate-Limit-Problem"] = "minute"
            response.headers["Retry-After"] = str(chosen.retry_after)
            return response
        if chosen.kind == "timeout":
            return Response(drop_connection=True, hold_seconds=chosen.hold_seconds)
        if chosen.kind == "lost_response":
            return Response(drop_connection=True)
        if chosen.kind == "short_answer":
            return Response(short_answer=True)
        return None

    # ---- log ---------------------------------------------------------------------------
    def requests_for(self, tenant_id: str | None) -> list[dict[str, Any]]:
        with self.lock:
            rows = list(self.request_log)
        keys = ("method", "path", "query", "status", "tenant_id", "idempotency_key")
        return [
            {key: row[key] for key in keys}
            for row in rows
            if not tenant_id or (row["tenant_id"] or "").lower() == tenant_id.lower()
        ]


def _shortened(response: Response) -> Response:
    """The answer without the last element of its collection (``Invoices``, ``Payments``, ...);
    an answer that lists nothing is left as it is."""
    if response.status != 200 or "json" not in response.content_type:
        return response
    try:
        body = json.loads(response.body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return response
    if not isinstance(body, dict):
        return response
    for key, value in body.items():
        if isinstance(value, list) and value:
            body[key] = value[:-1]
            break
    else:
        return response
    return Response.json(body, response.status, response.headers)
