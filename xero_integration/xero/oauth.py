"""OAuth 2.0 with Xero's identity service: consent URL (state, PKCE), tokens, revocation, and
the tenants a token may act for (``/connections``). Serves web apps (client secret) and PKCE apps.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

import requests

from xero_integration.xero._http import DEFAULT_TIMEOUT, DEFAULT_USER_AGENT, Timeout, send
from xero_integration.xero.errors import (
    OAuthError,
    XeroAPIError,
    error_from_response,
    oauth_error_from_response,
    parse_body,
)
from xero_integration.xero.wire import header, parse_datetime

#: Scopes for apps created since March 2026, which may only ask for granular scopes.
DEFAULT_SCOPES: tuple[str, ...] = (
    "openid",
    "profile",
    "email",
    "offline_access",
    "accounting.contacts",
    "accounting.settings",
    "accounting.invoices",
    "accounting.payments",
)

#: Scopes for older apps, which still use the broad ``accounting.transactions``.
LEGACY_SCOPES: tuple[str, ...] = (
    "openid",
    "profile",
    "email",
    "offline_access",
    "accounting.contacts",
    "accounting.settings",
    "accounting.transactions",
)

VERIFIER_ALPHABET = string.ascii_letters + string.digits + "-._~"
_VERIFIER_PATTERN = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")


def new_state() -> str:
    """An unguessable ``state`` value for one consent flow."""
    return secrets.token_urlsafe(32)


def new_code_verifier(length: int = 64) -> str:
    """A PKCE code verifier: ``length`` (43-128) random characters from RFC 7636's set."""
    if not 43 <= length <= 128:
        raise ValueError("A PKCE code verifier has 43 to 128 characters")
    return "".join(secrets.choice(VERIFIER_ALPHABET) for _ in range(length))


def code_challenge(code_verifier: str) -> str:
    """The S256 challenge of a verifier: base64url(SHA-256(verifier)) without padding."""
    if not _VERIFIER_PATTERN.match(code_verifier):
        raise ValueError("A PKCE code verifier has 43 to 128 characters from A-Z a-z 0-9 - . _ ~")
    digest = hashlib.sha256(code_verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def jwt_claims(token: str | None) -> dict[str, Any] | None:
    """The payload of a JWT, decoded without verifying it; None when the token is not a JWT.

    Only used to read hints (``authentication_event_id``) from our own access token, never to
    make a trust decision.
    """
    if not token:
        return None
    parts = token.split(".")
    if len(parts) != 3:
        return None
    segment = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(segment.encode("ascii")))
    except (ValueError, UnicodeError):
        return None
    return claims if isinstance(claims, dict) else None


@dataclass(frozen=True)
class TokenSet:
    """Tokens from the token endpoint; their text is kept out of ``repr`` so it is never logged."""

    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    expires_at: datetime
    scope: list[str]
    id_token: str | None = field(default=None, repr=False)
    auth_event_id: str | None = None
    token_type: str = "Bearer"

    @classmethod
    def from_response(cls, payload: Mapping[str, Any], now: datetime) -> TokenSet:
        """Build from the token endpoint's JSON, ``expires_in`` counted from ``now``."""
        access_token = payload.get("access_token")
        if not isinstance(access_token, str) or not access_token:
            raise ValueError("The token reply has no access_token")
        expires_in = int(payload.get("expires_in") or 0)
        claims = jwt_claims(access_token) or {}
        auth_event_id = claims.get("authentication_event_id")
        return cls(
            access_token=access_token,
            refresh_token=payload.get("refresh_token") or None,
            expires_at=now + timedelta(seconds=expires_in),
            scope=str(payload.get("scope") or "").split(),
            id_token=payload.get("id_token") or None,
            auth_event_id=str(auth_event_id) if auth_event_id else None,
            token_type=str(payload.get("token_type") or "Bearer"),
        )


@dataclass(frozen=True)
class Connection:
    """One tenant the user connected to the app (an element of ``GET /connections``)."""

    id: str
    tenant_id: str
    tenant_type: str
    tenant_name: str
    auth_event_id: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Connection:
        """Build from Xero's JSON (``id``, ``tenantId``, ``tenantName``...)."""
        return cls(
            id=str(data["id"]),
            tenant_id=str(data["tenantId"]),
            tenant_type=str(data.get("tenantType") or ""),
            tenant_name=str(data.get("tenantName") or ""),
            auth_event_id=data.get("authEventId") or None,
            created_at=parse_datetime(data.get("createdDateUtc")),
            updated_at=parse_datetime(data.get("updatedDateUtc")),
        )


class OAuthClient:
    """Talks to Xero's login and identity services for one Xero app.

    A web app has a ``client_secret`` and authenticates with HTTP Basic; a PKCE app has none,
    sends its ``client_id`` in the form and must always use a code verifier. A web app may use
    PKCE as well.
    """

    def __init__(
        self,
        client_id: str,
        client_secret: str | None,
        redirect_uri: str = "",
        scopes: list[str] | tuple[str, ...] = DEFAULT_SCOPES,
        login_url: str = "https://login.xero.com",
        identity_url: str = "https://identity.xero.com",
        api_url: str = "https://api.xero.com",
        session: requests.Session | None = None,
        timeout: Timeout = DEFAULT_TIMEOUT,
        *,
        user_agent: str = DEFAULT_USER_AGENT,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        if not client_id:
            raise ValueError("client_id is required")
        self.client_id = client_id
        self.client_secret = client_secret or None
        self.redirect_uri = redirect_uri
        self.scopes = list(scopes)
        self.login_url = login_url.rstrip("/")
        self.identity_url = identity_url.rstrip("/")
        self.api_url = api_url.rstrip("/")
        self.session = session or requests.Session()
        self.timeout = timeout
        self.user_agent = user_agent
        self._now = now or (lambda: datetime.now(UTC))

    @property
    def is_pkce_app(self) -> bool:
        """True for an "Auth Code with PKCE" app, which has no client secret."""
        return self.client_secret is None

    @property
    def token_url(self) -> str:
        """Where codes and refresh tokens are exchanged."""
        return f"{self.identity_url}/connect/token"

    @property
    def revocation_url(self) -> str:
        """Where refresh tokens are revoked."""
        return f"{self.identity_url}/connect/revocation"

    def authorization_url(
        self,
        state: str,
        code_verifier: str | None = None,
        extra_params: Mapping[str, str] | None = None,
    ) -> str:
        """The consent page URL to send the user to.

        ``state`` is required; pass a ``code_verifier`` (always for a PKCE app) to add its S256
        challenge. ``extra_params`` adds parameters such as ``acr_values``.
        """
        if not state:
            raise ValueError("state is required")
        if not self.redirect_uri:
            raise ValueError("redirect_uri is required to start a consent flow")
        if self.is_pkce_app and not code_verifier:
            raise ValueError("A PKCE app needs a code verifier")
        params: dict[str, str] = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": " ".join(self.scopes),
            "state": state,
        }
        if code_verifier:
            params["code_challenge"] = code_challenge(code_verifier)
            params["code_challenge_method"] = "S256"
        params.update(extra_params or {})
        return f"{self.login_url}/identity/connect/authorize?{urlencode(params, quote_via=quote)}"

    def exchange_code(self, code: str, code_verifier: str | None = None) -> TokenSet:
        """Exchange the authorisation code from the callback for tokens."""
        if not code:
            raise ValueError("code is required")
        if not self.redirect_uri:
            raise ValueError("redirect_uri is required to exchange a code")
        if self.is_pkce_app and not code_verifier:
            raise ValueError("A PKCE app needs the code verifier")
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": self.redirect_uri}
        if code_verifier:
            form["code_verifier"] = code_verifier
        return self._token_request(form)

    def refresh(self, refresh_token: str) -> TokenSet:
        """New tokens for a refresh token. Xero rotates it: store the new one, drop the old."""
        if not refresh_token:
            raise ValueError("refresh_token is required")
        return self._token_request({"grant_type": "refresh_token", "refresh_token": refresh_token})

    def revoke(self, refresh_token: str) -> None:
        """Revoke a refresh token; this removes all of that user's connections to the app."""
        if not refresh_token:
            raise ValueError("refresh_token is required")
        response = self._identity_post(self.revocation_url, {"token": refresh_token})
        if response.status_code != 200:
            raise oauth_error_from_response(response.status_code, response.text)

    def connections(self, access_token: str, auth_event_id: str | None = None) -> list[Connection]:
        """The tenants this token may act for; only those of one consent with ``auth_event_id``.

        An empty list with a valid token means the user disconnected the app in Xero.
        """
        params = {"authEventId": auth_event_id} if auth_event_id else None
        response = self._api_request("GET", "/connections", access_token, params=params)
        payload = parse_body(response.text)
        if not isinstance(payload, list):
            raise XeroAPIError(
                response.status_code,
                response.text,
                header(response.headers, "Xero-Correlation-Id"),
                method="GET",
                path="/connections",
                messages=["Xero's /connections reply is not a list"],
            )
        return [Connection.from_json(item) for item in payload]

    def delete_connection(self, access_token: str, connection_id: str) -> None:
        """Disconnect one tenant (by connection ``id``, not tenant id). NotFound if unknown."""
        if not connection_id:
            raise ValueError("connection_id is required")
        self._api_request("DELETE", f"/connections/{connection_id}", access_token)

    def _client_auth(self, form: dict[str, str]) -> requests.auth.HTTPBasicAuth | None:
        if self.is_pkce_app:
            form["client_id"] = self.client_id
            return None
        return requests.auth.HTTPBasicAuth(self.client_id, self.client_secret or "")

    def _identity_post(self, url: str, form: dict[str, str]) -> requests.Response:
        auth = self._client_auth(form)
        return send(
            self.session,
            "POST",
            url,
            timeout=self.timeout,
            data=form,
            auth=auth,
            headers={"Accept": "application/json", "User-Agent": self.user_agent},
        )

    def _token_request(self, form: dict[str, str]) -> TokenSet:
        response = self._identity_post(self.token_url, form)
        if response.status_code != 200:
            raise oauth_error_from_response(response.status_code, response.text)
        payload = parse_body(response.text)
        try:
            if not isinstance(payload, Mapping):
                raise ValueError("not a JSON object")
            return TokenSet.from_response(payload, self._now())
        except (ValueError, TypeError) as exc:
            # Xero may have rotated the refresh token already; its 30-minute grace period lets
            # the same refresh token be used again, so this is worth retrying.
            raise OAuthError(
                "invalid_response",
                f"Unreadable token reply: {exc}",
                response.status_code,
                retryable=True,
            ) from None

    def _api_request(
        self,
        method: str,
        path: str,
        access_token: str,
        params: Mapping[str, str] | None = None,
    ) -> requests.Response:
        response = send(
            self.session,
            method,
            f"{self.api_url}{path}",
            timeout=self.timeout,
            params=params,
            headers={
                "Authorization": f"Bearer {access_token}",
                "Accept": "application/json",
                "User-Agent": self.user_agent,
            },
        )
        if response.status_code >= 400:
            raise error_from_response(
                response.status_code, response.text, response.headers, method=method, path=path
            )
        return response
