"""Xero's identity service as the sandbox emulates it (Xero's API documentation): the consent page,
``/connect/token``, ``/connect/revocation`` and ``/connections``."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import uuid
from datetime import datetime
from html import escape
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from . import state as st
from .messages import Request, Response
from .wire import iso_out, problem

if TYPE_CHECKING:
    from .core import Sandbox

SCOPE_WORDS = {
    "openid": "Know who you are (sign in with your Xero user)",
    "profile": "View your name and profile",
    "email": "View your email address",
    "offline_access": "Keep access to your data when you are not using the app",
    "accounting.contacts": "View and manage your contacts",
    "accounting.contacts.read": "View your contacts",
    "accounting.settings": "View and manage your organisation settings (accounts, tax rates, "
    "currencies)",
    "accounting.settings.read": "View your organisation settings",
    "accounting.invoices": "View and manage your invoices, quotes and items",
    "accounting.invoices.read": "View your invoices, quotes and items",
    "accounting.payments": "View and manage your payments",
    "accounting.payments.read": "View your payments",
    "accounting.banktransactions": "View and manage your bank transactions",
    "accounting.banktransactions.read": "View your bank transactions",
    "accounting.manualjournals": "View and manage your manual journals",
    "accounting.manualjournals.read": "View your manual journals",
    "accounting.attachments": "View and manage your attachments",
    "accounting.attachments.read": "View your attachments",
    "accounting.journals.read": "View your general ledger journals",
    "accounting.budgets.read": "View your budgets",
    "accounting.reports.tenninetynine.read": "View your 1099 reports",
    "accounting.transactions": "View and manage your business transactions",
    "accounting.transactions.read": "View your business transactions",
    "accounting.reports.read": "View your reports",
}
# Broad scopes apps created since March 2026 may no longer ask for (Xero's API documentation).
DEPRECATED_SCOPES = {
    "accounting.transactions",
    "accounting.transactions.read",
    "accounting.reports.read",
}
_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def jwt(payload: dict, key: bytes) -> str:
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "sandbox"}).encode())
    body = _b64(json.dumps(payload, separators=(",", ":")).encode())
    signature = hmac.new(key, f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{_b64(signature)}"


def s256(verifier: str) -> str:
    return _b64(hashlib.sha256(verifier.encode("ascii")).digest())


def oauth_error(error: str, status: int = 400, description: str | None = None) -> Response:
    body = {"error": error}
    if description:
        body["error_description"] = description
    return Response.json(body, status)


def _page(title: str, content: str, status: int = 200) -> Response:
    return Response.html(
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{escape(title)} | Xero sandbox</title>"
        "<style>body{font-family:system-ui,sans-serif;background:#f4f6f8;margin:0}"
        "main{max-width:34rem;margin:3rem auto;background:#fff;border-radius:8px;padding:2rem;"
        "box-shadow:0 1px 4px rgba(0,0,0,.15)}h1{font-size:1.4rem}.brand{color:#13b5ea;"
        "font-weight:700}ul.scopes li{margin:.3rem 0}.orgs label{display:block;margin:.4rem 0}"
        "button{font-size:1rem;padding:.6rem 1.2rem;border-radius:4px;border:1px solid #0078c8;"
        "cursor:pointer}button.allow{background:#0078c8;color:#fff}.error{color:#b00020}"
        "</style></head><body><main><p class='brand'>xero (sandbox)</p>"
        f"{content}</main></body></html>",
        status,
    )


def _error_page(message: str) -> Response:
    # Xero never redirects a bad authorization request back to the app (Xero's API documentation).
    return _page(
        "Something went wrong",
        f"<h1>Sorry, something went wrong</h1><p class='error' id='error'>{escape(message)}</p>",
        400,
    )


class OAuth:
    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    # ---- consent -----------------------------------------------------------------------
    def _validate_authorization(self, params: dict[str, str]) -> tuple[st.App | None, str | None]:
        app = self.sandbox.apps.get(params.get("client_id", ""))
        if app is None:
            return None, "unauthorized_client: Unknown client or client not enabled"
        if params.get("redirect_uri") not in app.redirect_uris:
            return app, "invalid_request: Invalid redirect_uri"
        if params.get("response_type") != "code":
            return app, "unsupported_response_type: response_type must be code"
        scopes = (params.get("scope") or "").split()
        if not scopes:
            return app, "invalid_scope: No scope requested"
        for scope in scopes:
            if scope not in SCOPE_WORDS or (scope in DEPRECATED_SCOPES and not app.legacy_scopes):
                return app, f"unauthorized_client: Invalid scope for client ({scope})"
        challenge = params.get("code_challenge")
        method = params.get("code_challenge_method")
        if app.is_pkce and not challenge:
            return app, "invalid_request: code_challenge is required for this app"
        if challenge and method != "S256":
            return app, "invalid_request: code_challenge_method must be S256"
        return app, None

    def authorize(self, request: Request) -> Response:
        if request.method == "POST":
            return self._decide(request)
        params = request.query
        app, error = self._validate_authorization(params)
        if error:
            return _error_page(error)
        return self._consent_page(app, params)

    def _consent_page(self, app: st.App, params: dict[str, str], error: str = "") -> Response:
        scopes = params["scope"].split()
        organisations = list(self.sandbox.organisations.values())
        single = params.get("acr_values", "") == "bulk_connect:false"
        field_type = "radio" if single else "checkbox"
        connected = {
            c.tenant_id for c in self.sandbox.connections.values() if c.client_id == app.client_id
        }
        org_inputs = "".join(
            f"<label><input type='{field_type}' name='tenant_id' value='{escape(o.tenant_id)}'"
            f"{' checked' if len(organisations) == 1 else ''}> {escape(o.name)}"
            f"{' (already connected)' if o.tenant_id in connected else ''}</label>"
            for o in organisations
        )
        if not organisations:
            org_inputs = "<p class='error'>This Xero user has no organisations.</p>"
        hidden = "".join(
            f"<input type='hidden' name='{escape(key)}' value='{escape(value)}'>"
            for key, value in params.items()
            if key
            in (
                "client_id",
                "redirect_uri",
                "response_type",
                "scope",
                "state",
                "code_challenge",
                "code_challenge_method",
                "nonce",
                "acr_values",
            )
        )
        scope_items = "".join(f"<li>{escape(SCOPE_WORDS[s])}</li>" for s in scopes)
        error_html = f"<p class='error' id='error'>{escape(error)}</p>" if error else ""
        return _page(
            f"{app.name} wants to connect",
            f"<h1><span id='app-name'>{escape(app.name)}</span> wants access to your Xero "
            "organisation</h1>"
            f"<p>Signed in as {escape(st.SANDBOX_USER_EMAIL)}</p>"
            f"<p>This app will be able to:</p><ul class='scopes'>{scope_items}</ul>"
            f"<form method='post' action='/identity/connect/authorize'>{hidden}"
            f"<fieldset class='orgs'><legend>Organisation</legend>{org_inputs}</fieldset>"
            f"{error_html}"
            "<p><button class='allow' type='submit' name='decision' value='allow'>Allow access"
            "</button> <button type='submit' name='decision' value='cancel'>Cancel</button></p>"
            "</form>",
        )

    def _decide(self, request: Request) -> Response:
        form = request.form()
        params = {key: values[-1] for key, values in form.items() if key != "tenant_id"}
        app, error = self._validate_authorization(params)
        if error:
            return _error_page(error)
        assert app is not None
        separator = "&" if "?" in params["redirect_uri"] else "?"
        state_param = {"state": params["state"]} if "state" in params else {}
        if params.get("decision") != "allow":
            query = urlencode({"error": "access_denied", **state_param})
            return Response.redirect(f"{params['redirect_uri']}{separator}{query}")
        tenant_ids = [t for t in form.get("tenant_id", []) if t in self.sandbox.organisations]
        if not tenant_ids:
            return self._consent_page(app, params, "Choose an organisation to connect.")
        if params.get("acr_values", "") == "bulk_connect:false":
            tenant_ids = tenant_ids[:1]
        code = st.new_secret()
        self.sandbox.auth_codes[code] = st.AuthCode(
            client_id=app.client_id,
            redirect_uri=params["redirect_uri"],
            scope=params["scope"].split(),
            tenant_ids=tenant_ids,
            code_challenge=params.get("code_challenge") or None,
            issued_at=self.sandbox.clock.now(),
            auth_event_id=str(uuid.uuid4()),
            nonce=params.get("nonce"),
        )
        query = urlencode(
            {
                "code": code,
                "scope": params["scope"],
                **state_param,
                "session_state": uuid.uuid4().hex,
            }
        )
        return Response.redirect(f"{params['redirect_uri']}{separator}{query}")

    # ---- tokens ------------------------------------------------------------------------
    def _client(self, request: Request) -> tuple[st.App | None, Response | None]:
        client_id = request.form_value("client_id")
        client_secret = request.form_value("client_secret")
        auth = request.headers.get("Authorization", "")
        if auth.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(auth[6:].strip()).decode("utf-8")
                client_id, _, client_secret = decoded.partition(":")
            except (ValueError, UnicodeDecodeError):
                return None, oauth_error("invalid_client")
        app = self.sandbox.apps.get(client_id or "")
        if app is None:
            return None, oauth_error("invalid_client")
        if app.is_pkce:
            if client_secret:
                return None, oauth_error("invalid_client")
        elif not client_secret or not hmac.compare_digest(client_secret, app.client_secret or ""):
            return None, oauth_error("invalid_client")
        return app, None

    def token(self, request: Request) -> Response:
        if request.method != "POST":
            return Response.json({"error": "invalid_request"}, 405)
        app, error = self._client(request)
        if error:
            return error
        assert app is not None
        grant_type = request.form_value("grant_type")
        if grant_type == "authorization_code":
            return self._exchange(app, request)
        if grant_type == "refresh_token":
            return self._refresh(app, request)
        return oauth_error("unsupported_grant_type")

    def _exchange(self, app: st.App, request: Request) -> Response:
        now = self.sandbox.clock.now()
        with self.sandbox.lock:
            grant = self.sandbox.auth_codes.get(request.form_value("code") or "")
            if (
                grant is None
                or grant.used
                or grant.client_id != app.client_id
                or now - grant.issued_at > st.AUTH_CODE_LIFETIME
                or request.form_value("redirect_uri") != grant.redirect_uri
            ):
                if grant is not None:
                    grant.used = True
                return oauth_error("invalid_grant")
            verifier = request.form_value("code_verifier")
            if grant.code_challenge:
                if not verifier or not _VERIFIER.match(verifier):
                    return oauth_error("invalid_grant")
                if not hmac.compare_digest(s256(verifier), grant.code_challenge):
                    return oauth_error("invalid_grant")
            grant.used = True
            family = st.TokenFamily(
                id=str(uuid.uuid4()),
                client_id=app.client_id,
                scope=grant.scope,
                auth_event_id=grant.auth_event_id,
            )
            self.sandbox.token_families[family.id] = family
            for tenant_id in grant.tenant_ids:
                self.sandbox.connect(app.client_id, tenant_id, grant.auth_event_id)
            return Response.json(self.issue(family, nonce=grant.nonce))

    def _refresh(self, app: st.App, request: Request) -> Response:
        now = self.sandbox.clock.now()
        with self.sandbox.lock:
            token = request.form_value("refresh_token") or ""
            record = self.sandbox.refresh_tokens.get(token)
            family = self.sandbox.token_families.get(record.family_id) if record else None
            if (
                record is None
                or family is None
                or family.revoked
                or family.client_id != app.client_id
                or now - record.issued_at > st.REFRESH_TOKEN_IDLE_LIFETIME
                or (record.rotated_at and now - record.rotated_at > st.REFRESH_GRACE_PERIOD)
                or not self.sandbox.family_has_connections(family)
            ):
                return oauth_error("invalid_grant")
            if record.rotated_at is None:
                record.rotated_at = now
            return Response.json(self.issue(family))

    def issue(self, family: st.TokenFamily, nonce: str | None = None) -> dict:
        """A token response as Xero gives it (Xero's API documentation)."""
        now = self.sandbox.clock.now()
        expires = now + st.ACCESS_TOKEN_LIFETIME
        epoch = int(now.timestamp())
        access = jwt(
            {
                "nbf": epoch,
                "exp": int(expires.timestamp()),
                "iss": "https://identity.xero.com",
                "aud": "https://identity.xero.com/resources",
                "client_id": family.client_id,
                "sub": st.SANDBOX_USER_ID,
                "auth_time": epoch,
                "xero_userid": st.SANDBOX_USER_ID,
                "global_session_id": family.id,
                "sid": family.id,
                "jti": uuid.uuid4().hex,
                "authentication_event_id": family.auth_event_id,
                "scope": family.scope,
            },
            self.sandbox.signing_key,
        )
        self.sandbox.access_tokens[access] = st.AccessToken(
            family_id=family.id, expires_at=expires, auth_event_id=family.auth_event_id
        )
        response = {
            "access_token": access,
            "expires_in": int(st.ACCESS_TOKEN_LIFETIME.total_seconds()),
            "token_type": "Bearer",
            "scope": " ".join(family.scope),
        }
        if "offline_access" in family.scope:
            refresh = st.new_secret()
            self.sandbox.refresh_tokens[refresh] = st.RefreshToken(family.id, now)
            response["refresh_token"] = refresh
        if "openid" in family.scope:
            claims = {
                "nbf": epoch,
                "exp": epoch + 300,
                "iss": "https://identity.xero.com",
                "aud": family.client_id,
                "iat": epoch,
                "at_hash": _b64(hashlib.sha256(access.encode()).digest()[:16]),
                "sid": family.id,
                "sub": st.SANDBOX_USER_ID,
                "auth_time": epoch,
                "xero_userid": st.SANDBOX_USER_ID,
                "global_session_id": family.id,
            }
            if nonce:
                claims["nonce"] = nonce
            if "email" in family.scope:
                claims["email"] = st.SANDBOX_USER_EMAIL
            if "profile" in family.scope:
                claims.update(
                    preferred_username=st.SANDBOX_USER_EMAIL, given_name="Demo", family_name="User"
                )
            response = {"id_token": jwt(claims, self.sandbox.signing_key), **response}
        return response

    def revoke(self, request: Request) -> Response:
        app, error = self._client(request)
        if error:
            return error
        assert app is not None
        with self.sandbox.lock:
            record = self.sandbox.refresh_tokens.get(request.form_value("token") or "")
            family = self.sandbox.token_families.get(record.family_id) if record else None
            if family is not None and family.client_id == app.client_id:
                # Revocation removes every connection this user made to the app.
                self.sandbox.revoke_app(app.client_id)
        return Response(status=200, body=b"")

    # ---- connections -------------------------------------------------------------------
    def bearer(self, request: Request) -> tuple[st.AccessToken, st.TokenFamily]:
        """The valid access token of a request, or a 401 in Xero's shape."""
        auth = request.headers.get("Authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        record = self.sandbox.access_tokens.get(token)
        family = self.sandbox.token_families.get(record.family_id) if record else None
        if record is None or family is None:
            raise problem(401, "Unauthorized", "AuthenticationUnsuccessful")
        if self.sandbox.clock.now() >= record.expires_at:
            stamp = record.expires_at.strftime("%m/%d/%Y %H:%M:%S")
            raise problem(401, "Unauthorized", f"TokenExpired: token expired at {stamp}")
        return record, family

    def connections(self, request: Request, connection_id: str | None) -> Response:
        record, family = self.bearer(request)
        if request.method == "DELETE" and connection_id:
            with self.sandbox.lock:
                connection = self.sandbox.connections.get(connection_id)
                if connection is None or connection.client_id != family.client_id:
                    return Response.json(
                        {"Title": "Not Found", "Status": 404, "Detail": "Connection not found"}, 404
                    )
                del self.sandbox.connections[connection_id]
            return Response(status=204, body=b"")
        if request.method != "GET" or connection_id:
            return Response.json({"Title": "Method Not Allowed", "Status": 405}, 405)
        event = request.query.get("autheventid")
        rows = [
            c
            for c in self.sandbox.connections.values()
            if c.client_id == family.client_id and (not event or c.auth_event_id == event)
        ]
        return Response.json([self.connection_json(c) for c in rows])

    def connection_json(self, connection: st.Connection) -> dict:
        organisation = self.sandbox.organisations.get(connection.tenant_id)
        return {
            "id": connection.id,
            "authEventId": connection.auth_event_id,
            "tenantId": connection.tenant_id,
            "tenantType": "ORGANISATION",
            "tenantName": organisation.name if organisation else None,
            "createdDateUtc": _connection_date(connection.created),
            "updatedDateUtc": _connection_date(connection.updated),
        }

    def discovery(self, base_url: str) -> Response:
        return Response.json(
            {
                "issuer": base_url,
                "authorization_endpoint": f"{base_url}/identity/connect/authorize",
                "token_endpoint": f"{base_url}/connect/token",
                "revocation_endpoint": f"{base_url}/connect/revocation",
                "scopes_supported": sorted(SCOPE_WORDS),
                "response_types_supported": ["code"],
                "grant_types_supported": ["authorization_code", "refresh_token"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": [
                    "client_secret_basic",
                    "client_secret_post",
                ],
            }
        )


def _connection_date(moment: datetime) -> str:
    return iso_out(moment) + f".{moment.microsecond * 10:07d}"[:8]
