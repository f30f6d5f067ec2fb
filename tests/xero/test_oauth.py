"""OAuth against Xero's identity service: consent URL, PKCE, token calls, connections."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses

from xero_integration.xero.errors import (
    Disconnected,
    NotFound,
    OAuthError,
    TokenExpired,
    XeroTransportError,
)
from xero_integration.xero.oauth import (
    DEFAULT_SCOPES,
    LEGACY_SCOPES,
    VERIFIER_ALPHABET,
    OAuthClient,
    TokenSet,
    code_challenge,
    jwt_claims,
    new_code_verifier,
    new_state,
)

LOGIN = "https://login.xero.test"
IDENTITY = "https://identity.xero.test"
API = "https://api.xero.test"
REDIRECT = "https://crm.example/integrations/xero/callback/"
NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
AUTH_EVENT = "5c2e8a34-7f4b-4f5d-9d8e-0f1a2b3c4d5e"


def jwt(claims: dict[str, Any]) -> str:
    def part(data: dict[str, Any]) -> str:
        raw = json.dumps(data).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


ACCESS_TOKEN = jwt({"authentication_event_id": AUTH_EVENT, "xero_userid": "u-1"})
TOKEN_REPLY = {
    "id_token": "id.token.value",
    "access_token": ACCESS_TOKEN,
    "expires_in": 1800,
    "token_type": "Bearer",
    "refresh_token": "refresh-token-secret-1",
    "scope": "openid profile email offline_access accounting.contacts",
}


def web_app(**kwargs: Any) -> OAuthClient:
    options: dict[str, Any] = {
        "client_id": "WEBCLIENTID",
        "client_secret": "web-client-secret",
        "redirect_uri": REDIRECT,
        "login_url": LOGIN,
        "identity_url": IDENTITY,
        "api_url": API,
        "now": lambda: NOW,
    }
    options.update(kwargs)
    return OAuthClient(**options)


def pkce_app(**kwargs: Any) -> OAuthClient:
    return web_app(client_id="PKCECLIENTID", client_secret=None, **kwargs)


def form_of(call: Any) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(call.request.body).items()}


def test_rfc7636_appendix_b_challenge() -> None:
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert code_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_code_verifiers_are_random_and_within_rfc_limits() -> None:
    verifier = new_code_verifier()
    assert 43 <= len(verifier) <= 128
    assert set(verifier) <= set(VERIFIER_ALPHABET)
    assert new_code_verifier() != verifier
    assert len(new_code_verifier(43)) == 43
    assert len(new_code_verifier(128)) == 128
    for bad_length in (42, 129):
        with pytest.raises(ValueError):
            new_code_verifier(bad_length)


def test_malformed_verifiers_are_refused() -> None:
    with pytest.raises(ValueError):
        code_challenge("short")
    with pytest.raises(ValueError):
        code_challenge("a" * 42 + "!")


def test_states_are_unguessable_and_distinct() -> None:
    states = {new_state() for _ in range(50)}
    assert len(states) == 50
    assert all(len(state) >= 32 for state in states)


def test_web_app_authorization_url() -> None:
    url = web_app().authorization_url("state-123")
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{LOGIN}/identity/connect/authorize"
    query = parse_qs(parts.query)
    assert query == {
        "response_type": ["code"],
        "client_id": ["WEBCLIENTID"],
        "redirect_uri": [REDIRECT],
        "scope": [" ".join(DEFAULT_SCOPES)],
        "state": ["state-123"],
    }
    assert "%20" in parts.query and "+" not in parts.query


def test_web_app_may_add_pkce_and_extra_parameters() -> None:
    verifier = new_code_verifier()
    url = web_app().authorization_url(
        "s", verifier, extra_params={"acr_values": "bulk_connect:false"}
    )
    query = parse_qs(urlsplit(url).query)
    assert query["code_challenge"] == [code_challenge(verifier)]
    assert query["code_challenge_method"] == ["S256"]
    assert query["acr_values"] == ["bulk_connect:false"]
    assert verifier not in url


def test_pkce_app_always_uses_pkce() -> None:
    client = pkce_app()
    assert client.is_pkce_app
    with pytest.raises(ValueError, match="PKCE"):
        client.authorization_url("state")
    with pytest.raises(ValueError, match="PKCE"):
        client.exchange_code("code")
    verifier = new_code_verifier()
    query = parse_qs(urlsplit(client.authorization_url("state", verifier)).query)
    assert query["code_challenge"] == [code_challenge(verifier)]


def test_state_and_redirect_are_required() -> None:
    with pytest.raises(ValueError):
        web_app().authorization_url("")
    with pytest.raises(ValueError):
        web_app(redirect_uri="").authorization_url("s")


def test_scope_constants() -> None:
    assert " ".join(DEFAULT_SCOPES) == (
        "openid profile email offline_access accounting.contacts accounting.settings "
        "accounting.invoices accounting.payments"
    )
    assert "accounting.transactions" in LEGACY_SCOPES
    assert "accounting.invoices" not in LEGACY_SCOPES
    assert "offline_access" in LEGACY_SCOPES


@responses.activate
def test_web_app_exchanges_code_with_basic_auth() -> None:
    responses.post(f"{IDENTITY}/connect/token", json=TOKEN_REPLY)
    token_set = web_app().exchange_code("the-code", "v" * 43)
    call = responses.calls[0]
    expected = base64.b64encode(b"WEBCLIENTID:web-client-secret").decode()
    assert call.request.headers["Authorization"] == f"Basic {expected}"
    assert form_of(call) == {
        "grant_type": "authorization_code",
        "code": "the-code",
        "redirect_uri": REDIRECT,
        "code_verifier": "v" * 43,
    }
    assert call.request.headers["Accept"] == "application/json"
    assert token_set.access_token == ACCESS_TOKEN
    assert token_set.refresh_token == "refresh-token-secret-1"
    assert token_set.expires_at == NOW + timedelta(seconds=1800)
    assert token_set.expires_at.tzinfo is not None
    assert token_set.scope == TOKEN_REPLY["scope"].split()
    assert len(token_set.scope) == 5
    assert token_set.id_token == "id.token.value"
    assert token_set.auth_event_id == AUTH_EVENT


@responses.activate
def test_pkce_app_sends_client_id_in_the_form_and_no_secret() -> None:
    responses.post(f"{IDENTITY}/connect/token", json=TOKEN_REPLY)
    pkce_app().exchange_code("the-code", "w" * 50)
    call = responses.calls[0]
    assert "Authorization" not in call.request.headers
    form = form_of(call)
    assert form["client_id"] == "PKCECLIENTID"
    assert form["code_verifier"] == "w" * 50
    assert "client_secret" not in form


@responses.activate
def test_refresh_rotates_tokens() -> None:
    reply = {**TOKEN_REPLY, "refresh_token": "refresh-token-secret-2"}
    responses.post(f"{IDENTITY}/connect/token", json=reply)
    token_set = web_app().refresh("refresh-token-secret-1")
    assert form_of(responses.calls[0]) == {
        "grant_type": "refresh_token",
        "refresh_token": "refresh-token-secret-1",
    }
    assert token_set.refresh_token == "refresh-token-secret-2"


@responses.activate
def test_access_token_that_is_not_a_jwt_has_no_auth_event() -> None:
    responses.post(f"{IDENTITY}/connect/token", json={**TOKEN_REPLY, "access_token": "opaque"})
    assert web_app().refresh("r").auth_event_id is None
    assert jwt_claims("a.!!!notbase64!!!.c") is None
    assert jwt_claims(jwt({"a": 1}).replace(".", "", 1)) is None
    assert jwt_claims(None) is None


@responses.activate
def test_invalid_grant_is_not_retryable() -> None:
    responses.post(
        f"{IDENTITY}/connect/token",
        status=400,
        json={"error": "invalid_grant"},
    )
    with pytest.raises(OAuthError) as caught:
        web_app().refresh("refresh-token-secret-1")
    assert caught.value.error == "invalid_grant"
    assert caught.value.retryable is False
    assert "refresh-token-secret-1" not in str(caught.value)


@responses.activate
def test_invalid_client_and_invalid_scope_keep_their_codes() -> None:
    responses.post(f"{IDENTITY}/connect/token", status=400, json={"error": "invalid_client"})
    with pytest.raises(OAuthError) as caught:
        web_app().exchange_code("c")
    assert caught.value.error == "invalid_client"


@responses.activate
def test_html_outage_page_is_a_retryable_oauth_error() -> None:
    responses.post(f"{IDENTITY}/connect/token", status=503, body="<html>Down</html>")
    with pytest.raises(OAuthError) as caught:
        web_app().refresh("r")
    assert caught.value.error == "temporarily_unavailable"
    assert caught.value.retryable


@responses.activate
def test_unreadable_success_reply_is_retryable() -> None:
    responses.post(f"{IDENTITY}/connect/token", status=200, body="<html>proxy</html>")
    with pytest.raises(OAuthError) as caught:
        web_app().refresh("r")
    assert caught.value.error == "invalid_response"
    assert caught.value.retryable


@responses.activate
def test_token_endpoint_timeout_is_a_transport_error() -> None:
    responses.post(f"{IDENTITY}/connect/token", body=requests.exceptions.ReadTimeout("slow"))
    with pytest.raises(XeroTransportError) as caught:
        web_app().refresh("r")
    assert caught.value.request_sent
    assert caught.value.retryable


@responses.activate
def test_revoke_posts_the_refresh_token_with_client_auth() -> None:
    responses.post(f"{IDENTITY}/connect/revocation", status=200)
    web_app().revoke("refresh-token-secret-1")
    call = responses.calls[0]
    assert form_of(call) == {"token": "refresh-token-secret-1"}
    assert call.request.headers["Authorization"].startswith("Basic ")


@responses.activate
def test_revoke_for_a_pkce_app() -> None:
    responses.post(f"{IDENTITY}/connect/revocation", status=400, json={"error": "invalid_client"})
    with pytest.raises(OAuthError):
        pkce_app().revoke("r")
    assert form_of(responses.calls[0]) == {"token": "r", "client_id": "PKCECLIENTID"}


CONNECTIONS = [
    {
        "id": "e1eede29-f875-4a5d-8470-17f6a29a88b1",
        "authEventId": AUTH_EVENT,
        "tenantId": "70784a63-d24b-46a9-a4db-0e70a274b056",
        "tenantType": "ORGANISATION",
        "tenantName": "Maple Florist",
        "createdDateUtc": "2019-07-09T23:40:30.1833130",
        "updatedDateUtc": "2020-05-15T01:35:13.8491980",
    }
]


@responses.activate
def test_connections_of_one_consent() -> None:
    responses.get(f"{API}/connections", json=CONNECTIONS)
    connections = web_app().connections("bearer-token-value", AUTH_EVENT)
    call = responses.calls[0]
    assert call.request.headers["Authorization"] == "Bearer bearer-token-value"
    assert "xero-tenant-id" not in call.request.headers
    assert parse_qs(urlsplit(call.request.url).query) == {"authEventId": [AUTH_EVENT]}
    (connection,) = connections
    assert connection.id == "e1eede29-f875-4a5d-8470-17f6a29a88b1"
    assert connection.tenant_id == "70784a63-d24b-46a9-a4db-0e70a274b056"
    assert connection.tenant_name == "Maple Florist"
    assert connection.tenant_type == "ORGANISATION"
    assert connection.created_at == datetime(2019, 7, 9, 23, 40, 30, 183313, tzinfo=UTC)
    assert connection.updated_at is not None and connection.updated_at > connection.created_at


@responses.activate
def test_empty_connections_mean_disconnected_in_xero() -> None:
    responses.get(f"{API}/connections", json=[])
    assert web_app().connections("t") == []
    assert urlsplit(responses.calls[0].request.url).query == ""


@responses.activate
def test_connections_errors_map_to_the_hierarchy() -> None:
    responses.get(
        f"{API}/connections",
        status=401,
        json={"Title": "Unauthorized", "Status": 401, "Detail": "TokenExpired: token expired"},
    )
    with pytest.raises(TokenExpired):
        web_app().connections("t")


@responses.activate
def test_delete_connection_by_connection_id() -> None:
    responses.delete(f"{API}/connections/e1eede29", status=204)
    web_app().delete_connection("bearer", "e1eede29")
    assert responses.calls[0].request.headers["Authorization"] == "Bearer bearer"


@responses.activate
def test_delete_unknown_connection_is_not_found() -> None:
    responses.delete(f"{API}/connections/nope", status=404)
    with pytest.raises(NotFound):
        web_app().delete_connection("bearer", "nope")


@responses.activate
def test_delete_connection_forbidden() -> None:
    responses.delete(
        f"{API}/connections/x",
        status=403,
        json={"Title": "Forbidden", "Status": 403, "Detail": "AuthenticationUnsuccessful"},
    )
    with pytest.raises(Disconnected):
        web_app().delete_connection("bearer", "x")


def test_token_set_repr_hides_tokens() -> None:
    token_set = TokenSet.from_response(TOKEN_REPLY, NOW)
    text = repr(token_set)
    assert ACCESS_TOKEN not in text
    assert "refresh-token-secret-1" not in text
    assert "id.token.value" not in text
    assert AUTH_EVENT in text


def test_token_reply_without_access_token_is_refused() -> None:
    with pytest.raises(ValueError):
        TokenSet.from_response({"expires_in": 1800}, NOW)


def test_client_id_is_required() -> None:
    with pytest.raises(ValueError):
        OAuthClient("", None)
