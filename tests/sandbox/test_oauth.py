"""The sandbox's OAuth 2.0 and connections, over real HTTP (Xero's API documentation).

Each test asserts one rule Xero enforces. They are written from the spec, not from the sandbox's
code: if one fails because the sandbox is more forgiving than Xero, the sandbox is wrong.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import uuid
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests

TIMEOUT = 10

WEB_CLIENT = "acme-crm-web"
WEB_SECRET = "acme-web-secret-0123456789"
WEB_REDIRECT = "http://localhost:8000/xero/callback"
WEB_NAME = "Acme CRM Sync"

PKCE_CLIENT = "acme-crm-pkce"
PKCE_REDIRECT = "http://127.0.0.1:8123/xero/pkce-callback"
PKCE_NAME = "Acme Desktop"

LEGACY_CLIENT = "acme-legacy-web"
LEGACY_SECRET = "acme-legacy-secret-0123456789"
LEGACY_REDIRECT = "http://localhost:8000/legacy/callback"

SCOPE = (
    "openid profile email offline_access accounting.contacts accounting.settings "
    "accounting.invoices accounting.payments"
)
STATE = "st@te/1 2+3=ok&x"  # characters that must survive URL encoding when echoed

ORG_NAME = "Demo Company (NZ)"
ORG2_NAME = "Kiwi Widgets Limited"

THIRTY_MINUTES = 30 * 60
SIXTY_DAYS = 60 * 24 * 3600


# --------------------------------------------------------------------------- consent page parsing


class ConsentPage(HTMLParser):
    """What a browser would see and submit on the consent page (stdlib HTML parser)."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[dict[str, Any]] = []
        self._text: list[str] = []
        self._skip = 0
        self._in_select_tenant = False
        self._button: dict[str, str] | None = None
        self.feed(html)
        self.close()

    # parser callbacks
    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): (v if v is not None else "") for k, v in attrs}
        form = self.forms[-1] if self.forms else None
        if tag in ("script", "style"):
            self._skip += 1
        elif tag == "form":
            self.forms.append(
                {
                    "action": a.get("action", ""),
                    "method": a.get("method", "get").lower(),
                    "hidden": [],
                    "tenants": [],
                    "decisions": {},
                }
            )
        elif tag == "input" and form is not None:
            kind = a.get("type", "text").lower()
            name = a.get("name", "")
            if name == "tenant_id":
                form["tenants"].append(a.get("value", ""))
            elif name == "decision" and kind in ("submit", "image", "button"):
                form["decisions"][a.get("value", "")] = a.get("value", "")
            elif kind == "hidden" and name:
                form["hidden"].append((name, a.get("value", "")))
        elif tag == "button" and form is not None:
            if a.get("name") == "decision" and a.get("type", "submit").lower() == "submit":
                self._button = {"value": a.get("value", ""), "label": ""}
        elif tag == "select" and form is not None and a.get("name") == "tenant_id":
            self._in_select_tenant = True
        elif tag == "option" and form is not None and self._in_select_tenant:
            form["tenants"].append(a.get("value", ""))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._skip:
            self._skip -= 1
        elif tag == "select":
            self._in_select_tenant = False
        elif tag == "button" and self._button is not None and self.forms:
            self.forms[-1]["decisions"][self._button["value"]] = self._button["label"].strip()
            self._button = None

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        self._text.append(data)
        if self._button is not None:
            self._button["label"] += data

    # what tests look at
    @property
    def text(self) -> str:
        """The visible text (no markup, scripts, styles or attribute values), whitespace folded."""
        return re.sub(r"\s+", " ", " ".join(self._text)).strip()

    @property
    def consent_form(self) -> dict[str, Any] | None:
        for form in self.forms:
            if "allow" in form["decisions"]:
                return form
        return None


def authorize_params(
    client_id: str = WEB_CLIENT,
    redirect_uri: str = WEB_REDIRECT,
    scope: str = SCOPE,
    state: str = STATE,
    response_type: str | None = "code",
    **extra: str,
) -> dict[str, str]:
    params = {"client_id": client_id, "redirect_uri": redirect_uri, "scope": scope, "state": state}
    if response_type is not None:
        params["response_type"] = response_type
    params.update(extra)
    return params


def open_consent(xs, session: requests.Session, params: dict[str, str]) -> requests.Response:
    return session.get(
        xs.url + "/identity/connect/authorize",
        params=params,
        allow_redirects=False,
        timeout=TIMEOUT,
    )


def submit_consent(
    session: requests.Session,
    page_response: requests.Response,
    decision: str,
    tenant_ids: list[str] = (),  # type: ignore[assignment]
) -> requests.Response:
    page = ConsentPage(page_response.text)
    form = page.consent_form
    assert form is not None, f"no consent form with an Allow button:\n{page_response.text[:2000]}"
    assert form["method"] == "post", "the consent form must POST back"
    assert decision in form["decisions"], f"no {decision!r} button: {form['decisions']}"
    data = list(form["hidden"]) + [("decision", decision)]
    data += [("tenant_id", tenant_id) for tenant_id in tenant_ids]
    return session.post(
        urljoin(page_response.url, form["action"]),
        data=data,
        allow_redirects=False,
        timeout=TIMEOUT,
    )


def same_endpoint(url: str, redirect_uri: str) -> bool:
    a, b = urlsplit(url), urlsplit(redirect_uri)
    return (a.scheme, a.netloc, a.path) == (b.scheme, b.netloc, b.path)


def redirect_query(response: requests.Response, redirect_uri: str) -> dict[str, str]:
    """Assert the response sends the browser to redirect_uri; its query parameters."""
    assert response.status_code in (302, 303), (response.status_code, response.text[:500])
    location = urljoin(response.url, response.headers["Location"])
    assert same_endpoint(location, redirect_uri), location
    query = parse_qs(urlsplit(location).query, keep_blank_values=True)
    assert all(len(values) == 1 for values in query.values()), query
    return {key: values[0] for key, values in query.items()}


def assert_refused_without_redirect(response: requests.Response, redirect_uri: str) -> None:
    """Xero shows no consent and never sends a bad request back to the app."""
    if response.is_redirect or response.status_code in (301, 302, 303, 307, 308):
        location = urljoin(response.url, response.headers.get("Location", ""))
        assert not same_endpoint(location, redirect_uri), f"redirected to the app: {location}"
        assert "code=" not in location, location
    assert ConsentPage(response.text).consent_form is None, "a consent form was offered"


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)[:64]
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
    return verifier, challenge


def obtain_code(
    xs,
    tenant_ids: list[str],
    *,
    client_id: str = WEB_CLIENT,
    redirect_uri: str = WEB_REDIRECT,
    scope: str = SCOPE,
    **extra: str,
) -> str:
    with requests.Session() as session:
        params = authorize_params(client_id, redirect_uri, scope, **extra)
        page = open_consent(xs, session, params)
        assert page.status_code == 200, (page.status_code, page.text[:500])
        query = redirect_query(submit_consent(session, page, "allow", tenant_ids), redirect_uri)
    assert query.get("state") == STATE
    assert query.get("code"), query
    return query["code"]


def token_post(xs, data: dict[str, str], auth: tuple[str, str] | None = None) -> requests.Response:
    return requests.post(xs.url + "/connect/token", data=data, auth=auth, timeout=TIMEOUT)


def exchange(
    xs,
    code: str,
    *,
    client_id: str = WEB_CLIENT,
    secret: str | None = WEB_SECRET,
    redirect_uri: str = WEB_REDIRECT,
    basic: bool = True,
    verifier: str | None = None,
) -> requests.Response:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
    if verifier is not None:
        data["code_verifier"] = verifier
    if basic and secret is not None:
        return token_post(xs, data, auth=(client_id, secret))
    data["client_id"] = client_id
    if secret is not None:
        data["client_secret"] = secret
    return token_post(xs, data)


def refresh(
    xs, refresh_token: str, *, client_id: str = WEB_CLIENT, secret: str | None = WEB_SECRET
) -> requests.Response:
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    if secret is None:
        data["client_id"] = client_id
        return token_post(xs, data)
    return token_post(xs, data, auth=(client_id, secret))


def connect(xs, tenant_ids: list[str], scope: str = SCOPE) -> dict[str, Any]:
    """The whole consent flow for the web app; the token response."""
    response = exchange(xs, obtain_code(xs, tenant_ids, scope=scope))
    assert response.status_code == 200, response.text
    return response.json()


def oauth_error(response: requests.Response) -> str:
    assert response.status_code in (400, 401), (response.status_code, response.text)
    return response.json().get("error")


def api_get(xs, path: str, access_token: str, tenant_id: str | None) -> requests.Response:
    headers = {"Authorization": f"Bearer {access_token}", "Accept": "application/json"}
    if tenant_id is not None:
        headers["xero-tenant-id"] = tenant_id
    return requests.get(xs.api_url + path, headers=headers, timeout=TIMEOUT)


def list_connections(
    xs, access_token: str | None, params: dict[str, str] | None = None, path: str = "/connections"
) -> requests.Response:
    headers = {"Accept": "application/json"}
    if access_token is not None:
        headers["Authorization"] = f"Bearer {access_token}"
    return requests.get(xs.url + path, params=params, headers=headers, timeout=TIMEOUT)


def jwt_payload(token: str) -> dict[str, Any]:
    parts = token.split(".")
    assert len(parts) == 3, "not a JWT"
    padded = parts[1] + "=" * (-len(parts[1]) % 4)
    return json.loads(base64.urlsafe_b64decode(padded))


def assert_forbidden(response: requests.Response) -> None:
    assert response.status_code == 403, (response.status_code, response.text)
    body = response.json()
    assert body["Detail"] == "AuthenticationUnsuccessful", body
    assert body["Title"] == "Forbidden", body
    assert body["Status"] == 403, body


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def xs(xero_sandbox):
    """The sandbox with a web app, a PKCE app and a legacy (pre-2026) web app registered."""
    xero_sandbox.register_app(
        WEB_CLIENT, client_secret=WEB_SECRET, redirect_uris=(WEB_REDIRECT,), name=WEB_NAME
    )
    xero_sandbox.register_app(PKCE_CLIENT, redirect_uris=(PKCE_REDIRECT,), name=PKCE_NAME)
    xero_sandbox.register_app(
        LEGACY_CLIENT,
        client_secret=LEGACY_SECRET,
        redirect_uris=(LEGACY_REDIRECT,),
        legacy_scopes=True,
        name="Acme Legacy",
    )
    return xero_sandbox


@pytest.fixture
def org(xs) -> str:
    return xs.create_organisation(name=ORG_NAME)["tenant_id"]


@pytest.fixture
def org2(xs) -> str:
    return xs.create_organisation(name=ORG2_NAME)["tenant_id"]


@pytest.fixture
def tokens(xs, org) -> dict[str, Any]:
    """A token set from the real consent flow, connected to `org`."""
    return connect(xs, [org])


# --------------------------------------------------------------------------- consent page


def test_consent_page_shows_app_name_scopes_and_organisation_choice(xs, org, org2):
    with requests.Session() as session:
        response = open_consent(xs, session, authorize_params())
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    page = ConsentPage(response.text)
    text = page.text
    assert WEB_NAME in text
    # Scopes in plain words: with the raw scope names taken out, the page still says what the
    # app will be able to reach.
    plain = text.lower()
    for raw in SCOPE.split():
        if "." in raw or "_" in raw:  # an identifier, not a word
            plain = plain.replace(raw, " ")
    for word in ("contact", "invoice", "payment", "email"):
        assert word in plain, f"{word!r} not described in plain words: {text}"
    # A choice of organisation: each organisation by name, each selectable by tenant id.
    assert ORG_NAME in text and ORG2_NAME in text
    form = page.consent_form
    assert form is not None
    assert set(form["tenants"]) >= {org, org2}
    assert {"allow", "cancel"} <= set(form["decisions"])


def test_consent_page_buttons_read_allow_access_and_cancel(xs, org):
    with requests.Session() as session:
        response = open_consent(xs, session, authorize_params())
    form = ConsentPage(response.text).consent_form
    assert form is not None
    labels = " ".join(form["decisions"].values()).lower()
    assert "allow access" in labels
    assert "cancel" in labels


def test_consent_page_describes_only_the_scopes_asked_for(xs, org):
    scope = "openid offline_access accounting.contacts"
    with requests.Session() as session:
        response = open_consent(xs, session, authorize_params(scope=scope))
    assert response.status_code == 200
    text = ConsentPage(response.text).text.lower()
    assert "contact" in text
    assert "invoice" not in text
    assert "payment" not in text


def test_cancel_redirects_with_access_denied_and_state(xs, org):
    with requests.Session() as session:
        page = open_consent(xs, session, authorize_params())
        response = submit_consent(session, page, "cancel")
    query = redirect_query(response, WEB_REDIRECT)
    assert query["error"] == "access_denied"
    assert query["state"] == STATE
    assert "code" not in query


def test_allow_redirects_with_code_and_state(xs, org):
    with requests.Session() as session:
        page = open_consent(xs, session, authorize_params())
        response = submit_consent(session, page, "allow", [org])
    query = redirect_query(response, WEB_REDIRECT)
    assert query["code"]
    assert query["state"] == STATE
    assert "error" not in query


def test_only_the_chosen_organisation_is_connected(xs, org, org2):
    body = connect(xs, [org2])
    connections = list_connections(xs, body["access_token"]).json()
    assert [c["tenantId"] for c in connections] == [org2]
    assert_forbidden(api_get(xs, "/Organisation", body["access_token"], org))


def test_consent_post_rechecks_the_redirect_uri(xs, org):
    """A tampered form must not send a code anywhere but a registered redirect URI."""
    evil = "http://evil.example/steal"
    with requests.Session() as session:
        page = open_consent(xs, session, authorize_params())
        form = ConsentPage(page.text).consent_form
        assert form is not None
        if not any(value == WEB_REDIRECT for _, value in form["hidden"]):
            pytest.skip("the form does not carry redirect_uri in a plain hidden field")
        data = [(name, evil if value == WEB_REDIRECT else value) for name, value in form["hidden"]]
        data += [("decision", "allow"), ("tenant_id", org)]
        response = session.post(
            urljoin(page.url, form["action"]), data=data, allow_redirects=False, timeout=TIMEOUT
        )
    location = urljoin(response.url, response.headers.get("Location", ""))
    assert not same_endpoint(location, evil), location


# --------------------------------------------------------------------------- bad authorize requests


@pytest.mark.parametrize(
    "params",
    [
        pytest.param(authorize_params(client_id="no-such-client"), id="unknown-client_id"),
        pytest.param(authorize_params(client_id=""), id="empty-client_id"),
        pytest.param(authorize_params(redirect_uri=WEB_REDIRECT + "/"), id="trailing-slash"),
        pytest.param(authorize_params(redirect_uri=WEB_REDIRECT + "?next=1"), id="extra-query"),
        pytest.param(
            authorize_params(redirect_uri=WEB_REDIRECT.replace("callback", "Callback")),
            id="path-case",
        ),
        pytest.param(
            authorize_params(redirect_uri=WEB_REDIRECT.replace(":8000", ":8001")), id="port"
        ),
        pytest.param(
            authorize_params(redirect_uri=WEB_REDIRECT.replace("http:", "https:")), id="scheme"
        ),
        pytest.param(
            authorize_params(redirect_uri="http://localhost:8000/xero/callback-evil"),
            id="prefix-match",
        ),
        pytest.param(authorize_params(redirect_uri=PKCE_REDIRECT), id="other-apps-uri"),
        pytest.param(authorize_params(response_type="token"), id="response_type-token"),
        pytest.param(authorize_params(response_type="code id_token"), id="response_type-hybrid"),
        pytest.param(authorize_params(response_type=None), id="response_type-missing"),
        pytest.param(authorize_params(scope=SCOPE + " accounting.everything"), id="unknown-scope"),
        pytest.param(
            authorize_params(scope="openid offline_access accounting.transactions"),
            id="deprecated-accounting.transactions",
        ),
        pytest.param(
            authorize_params(scope="openid offline_access accounting.reports.read"),
            id="deprecated-accounting.reports.read",
        ),
    ],
)
def test_bad_authorize_request_is_refused_without_redirecting(xs, org, params):
    with requests.Session() as session:
        response = open_consent(xs, session, params)
    redirect_uri = params.get("redirect_uri", WEB_REDIRECT)
    assert_refused_without_redirect(response, redirect_uri)
    assert_refused_without_redirect(response, WEB_REDIRECT)


def test_legacy_app_may_still_ask_for_accounting_transactions(xs, org):
    params = authorize_params(
        client_id=LEGACY_CLIENT,
        redirect_uri=LEGACY_REDIRECT,
        scope="openid offline_access accounting.transactions accounting.contacts",
    )
    with requests.Session() as session:
        response = open_consent(xs, session, params)
    assert response.status_code == 200
    assert ConsentPage(response.text).consent_form is not None


# --------------------------------------------------------------------------- authorization code


def test_code_is_single_use(xs, org):
    code = obtain_code(xs, [org])
    assert exchange(xs, code).status_code == 200
    second = exchange(xs, code)
    assert oauth_error(second) == "invalid_grant"


def test_code_works_within_its_lifetime(xs, org):
    code = obtain_code(xs, [org])
    xs.advance_clock(25)
    assert exchange(xs, code).status_code == 200


def test_code_expires_after_30_seconds(xs, org):
    code = obtain_code(xs, [org])
    xs.advance_clock(31)
    assert oauth_error(exchange(xs, code)) == "invalid_grant"


def test_code_exchange_needs_the_same_redirect_uri(xs, org):
    code = obtain_code(xs, [org])
    response = exchange(xs, code, redirect_uri="http://localhost:8000/elsewhere")
    assert response.status_code == 400
    assert "access_token" not in response.json()


def test_code_cannot_be_redeemed_by_another_client(xs, org):
    code = obtain_code(xs, [org])
    response = exchange(
        xs, code, client_id=LEGACY_CLIENT, secret=LEGACY_SECRET, redirect_uri=WEB_REDIRECT
    )
    assert response.status_code == 400
    assert "access_token" not in response.json()


# --------------------------------------------------------------------------- client authentication


def test_web_app_authenticates_with_http_basic(xs, org):
    response = exchange(xs, obtain_code(xs, [org]), basic=True)
    assert response.status_code == 200, response.text
    assert response.json()["access_token"]


def test_web_app_authenticates_with_form_fields(xs, org):
    response = exchange(xs, obtain_code(xs, [org]), basic=False)
    assert response.status_code == 200, response.text
    assert response.json()["access_token"]


@pytest.mark.parametrize("basic", [True, False], ids=["basic", "form"])
def test_wrong_client_secret_is_invalid_client(xs, org, basic):
    code = obtain_code(xs, [org])
    response = exchange(xs, code, secret="not-the-secret", basic=basic)
    assert oauth_error(response) == "invalid_client"
    assert "access_token" not in response.json()


def test_web_app_without_secret_is_invalid_client(xs, org):
    code = obtain_code(xs, [org])
    response = exchange(xs, code, secret=None, basic=False)
    assert oauth_error(response) == "invalid_client"


def test_unknown_client_at_token_endpoint_is_invalid_client(xs, org):
    code = obtain_code(xs, [org])
    response = exchange(xs, code, client_id="no-such-client", secret="whatever")
    assert oauth_error(response) == "invalid_client"


def test_refresh_with_wrong_secret_is_invalid_client(xs, tokens):
    response = refresh(xs, tokens["refresh_token"], secret="not-the-secret")
    assert oauth_error(response) == "invalid_client"


# --------------------------------------------------------------------------- PKCE


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param({}, id="no-challenge"),
        pytest.param({"code_challenge": "x" * 43}, id="challenge-without-method"),
        pytest.param({"code_challenge": "x" * 43, "code_challenge_method": "plain"}, id="plain"),
    ],
)
def test_pkce_app_requires_an_s256_challenge(xs, org, extra):
    params = authorize_params(client_id=PKCE_CLIENT, redirect_uri=PKCE_REDIRECT, **extra)
    with requests.Session() as session:
        response = open_consent(xs, session, params)
    assert ConsentPage(response.text).consent_form is None, "a consent form was offered"
    if response.status_code in (301, 302, 303, 307, 308):
        location = urljoin(response.url, response.headers.get("Location", ""))
        assert "code" not in parse_qs(urlsplit(location).query), location


def test_pkce_app_gets_tokens_with_the_right_verifier(xs, org):
    verifier, challenge = pkce_pair()
    code = obtain_code(
        xs,
        [org],
        client_id=PKCE_CLIENT,
        redirect_uri=PKCE_REDIRECT,
        code_challenge=challenge,
        code_challenge_method="S256",
    )
    response = exchange(
        xs, code, client_id=PKCE_CLIENT, secret=None, redirect_uri=PKCE_REDIRECT, verifier=verifier
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["access_token"] and body["refresh_token"]
    assert api_get(xs, "/Organisation", body["access_token"], org).status_code == 200


@pytest.mark.parametrize("verifier", ["wrong", "missing"])
def test_pkce_app_is_refused_without_the_right_verifier(xs, org, verifier):
    real_verifier, challenge = pkce_pair()
    code = obtain_code(
        xs,
        [org],
        client_id=PKCE_CLIENT,
        redirect_uri=PKCE_REDIRECT,
        code_challenge=challenge,
        code_challenge_method="S256",
    )
    sent = pkce_pair()[0] if verifier == "wrong" else None
    response = exchange(
        xs, code, client_id=PKCE_CLIENT, secret=None, redirect_uri=PKCE_REDIRECT, verifier=sent
    )
    assert response.status_code == 400, response.text
    assert "access_token" not in response.json()
    if verifier == "wrong":
        assert response.json()["error"] == "invalid_grant"


def test_pkce_app_refreshes_with_client_id_only(xs, org):
    verifier, challenge = pkce_pair()
    code = obtain_code(
        xs,
        [org],
        client_id=PKCE_CLIENT,
        redirect_uri=PKCE_REDIRECT,
        code_challenge=challenge,
        code_challenge_method="S256",
    )
    first = exchange(
        xs, code, client_id=PKCE_CLIENT, secret=None, redirect_uri=PKCE_REDIRECT, verifier=verifier
    ).json()
    response = refresh(xs, first["refresh_token"], client_id=PKCE_CLIENT, secret=None)
    assert response.status_code == 200, response.text
    assert response.json()["refresh_token"] != first["refresh_token"]


# --------------------------------------------------------------------------- token response


def test_token_response_fields(xs, org, tokens):
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == 1800
    assert isinstance(tokens["expires_in"], int)
    assert set(tokens["scope"].split()) == set(SCOPE.split())
    assert tokens["access_token"]
    assert tokens["refresh_token"]
    id_claims = jwt_payload(tokens["id_token"])
    assert id_claims["aud"] == WEB_CLIENT


def test_no_id_token_without_openid(xs, org):
    body = connect(xs, [org], scope="offline_access accounting.contacts")
    assert "id_token" not in body
    assert body["access_token"]
    assert set(body["scope"].split()) == {"offline_access", "accounting.contacts"}


def test_no_refresh_token_without_offline_access(xs, org):
    body = connect(xs, [org], scope="openid accounting.contacts")
    assert "refresh_token" not in body
    assert body["access_token"]


def test_access_token_names_its_auth_event(xs, org, tokens):
    claims = jwt_payload(tokens["access_token"])
    connections = list_connections(xs, tokens["access_token"]).json()
    assert claims["authentication_event_id"] == connections[0]["authEventId"]


# --------------------------------------------------------------------------- refresh tokens


def test_refresh_rotates_the_refresh_token(xs, org, tokens):
    response = refresh(xs, tokens["refresh_token"])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["refresh_token"] and body["refresh_token"] != tokens["refresh_token"]
    assert body["access_token"] != tokens["access_token"]
    assert body["expires_in"] == 1800
    assert body["token_type"] == "Bearer"
    assert set(body["scope"].split()) == set(SCOPE.split())
    assert api_get(xs, "/Organisation", body["access_token"], org).status_code == 200


def test_new_refresh_token_also_refreshes(xs, tokens):
    second = refresh(xs, tokens["refresh_token"]).json()
    third = refresh(xs, second["refresh_token"])
    assert third.status_code == 200, third.text


def test_previous_refresh_token_is_usable_within_30_minutes(xs, tokens):
    assert refresh(xs, tokens["refresh_token"]).status_code == 200
    xs.advance_clock(THIRTY_MINUTES - 60)
    again = refresh(xs, tokens["refresh_token"])
    assert again.status_code == 200, again.text
    assert again.json()["access_token"]


def test_previous_refresh_token_is_invalid_grant_after_30_minutes(xs, tokens):
    rotated = refresh(xs, tokens["refresh_token"]).json()
    xs.advance_clock(THIRTY_MINUTES + 1)
    assert oauth_error(refresh(xs, tokens["refresh_token"])) == "invalid_grant"
    # ... while the token it was rotated into still works.
    assert refresh(xs, rotated["refresh_token"]).status_code == 200


def test_refresh_token_still_works_after_59_days_unused(xs, tokens):
    xs.advance_clock(SIXTY_DAYS - 24 * 3600)
    response = refresh(xs, tokens["refresh_token"])
    assert response.status_code == 200, response.text


def test_refresh_token_unused_for_60_days_is_invalid_grant(xs, tokens):
    xs.advance_clock(SIXTY_DAYS + 1)
    assert oauth_error(refresh(xs, tokens["refresh_token"])) == "invalid_grant"


def test_unknown_refresh_token_is_invalid_grant(xs, tokens):
    assert oauth_error(refresh(xs, "not-a-refresh-token")) == "invalid_grant"


# --------------------------------------------------------------------------- access tokens


def test_access_token_works_for_30_minutes(xs, org, tokens):
    xs.advance_clock(THIRTY_MINUTES - 5)
    response = api_get(xs, "/Organisation", tokens["access_token"], org)
    assert response.status_code == 200, response.text


def test_expired_access_token_is_401_token_expired(xs, org, tokens):
    xs.advance_clock(THIRTY_MINUTES + 1)
    response = api_get(xs, "/Organisation", tokens["access_token"], org)
    assert response.status_code == 401, response.text
    body = response.json()
    assert body["Detail"].startswith("TokenExpired"), body
    assert body["Title"] == "Unauthorized"
    assert body["Status"] == 401


def test_garbage_access_token_is_401(xs, org, tokens):
    response = api_get(xs, "/Organisation", "not-a-token", org)
    assert response.status_code == 401, response.text


def test_api_needs_a_bearer_token(xs, org):
    response = requests.get(
        xs.api_url + "/Organisation",
        headers={"Accept": "application/json", "xero-tenant-id": org},
        timeout=TIMEOUT,
    )
    assert response.status_code == 401, response.text


# --------------------------------------------------------------------------- connections

CONNECTION_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?$")


def test_connections_lists_the_connected_tenant(xs, org, tokens):
    response = list_connections(xs, tokens["access_token"])
    assert response.status_code == 200, response.text
    connections = response.json()
    assert len(connections) == 1
    (connection,) = connections
    uuid.UUID(connection["id"])
    uuid.UUID(connection["authEventId"])
    assert connection["tenantId"] == org
    assert connection["tenantType"] == "ORGANISATION"
    assert connection["tenantName"] == ORG_NAME
    assert CONNECTION_DATE.match(connection["createdDateUtc"]), connection["createdDateUtc"]
    assert CONNECTION_DATE.match(connection["updatedDateUtc"]), connection["updatedDateUtc"]


def test_connections_with_capital_c(xs, org, tokens):
    lower = list_connections(xs, tokens["access_token"])
    upper = list_connections(xs, tokens["access_token"], path="/Connections")
    assert upper.status_code == 200, upper.text
    assert upper.json() == lower.json()


def test_connections_needs_a_bearer_token(xs, org, tokens):
    assert list_connections(xs, None).status_code == 401


def test_one_consent_can_connect_several_tenants_with_one_auth_event(xs, org, org2):
    body = connect(xs, [org, org2])
    connections = list_connections(xs, body["access_token"]).json()
    assert {c["tenantId"] for c in connections} == {org, org2}
    assert len({c["authEventId"] for c in connections}) == 1
    assert len({c["id"] for c in connections}) == 2
    for tenant in (org, org2):
        assert api_get(xs, "/Organisation", body["access_token"], tenant).status_code == 200


def test_auth_event_id_filters_connections(xs, org, org2):
    first = connect(xs, [org])
    second = connect(xs, [org2])
    (second_connection,) = [
        c for c in list_connections(xs, second["access_token"]).json() if c["tenantId"] == org2
    ]
    (first_connection,) = [
        c for c in list_connections(xs, first["access_token"]).json() if c["tenantId"] == org
    ]
    assert first_connection["authEventId"] != second_connection["authEventId"]

    only_second = list_connections(
        xs, second["access_token"], params={"authEventId": second_connection["authEventId"]}
    )
    assert only_second.status_code == 200, only_second.text
    assert [c["tenantId"] for c in only_second.json()] == [org2]

    only_first = list_connections(
        xs, second["access_token"], params={"authEventId": first_connection["authEventId"]}
    ).json()
    assert org2 not in [c["tenantId"] for c in only_first]

    nothing = list_connections(
        xs, second["access_token"], params={"authEventId": str(uuid.uuid4())}
    )
    assert nothing.status_code == 200
    assert nothing.json() == []


def test_delete_connection_then_tenant_is_403(xs, org, org2):
    body = connect(xs, [org, org2])
    token = body["access_token"]
    (connection,) = [c for c in list_connections(xs, token).json() if c["tenantId"] == org]
    response = requests.delete(
        f"{xs.url}/connections/{connection['id']}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=TIMEOUT,
    )
    assert response.status_code == 204, response.text
    assert response.content == b""
    assert_forbidden(api_get(xs, "/Organisation", token, org))
    assert [c["tenantId"] for c in list_connections(xs, token).json()] == [org2]
    assert api_get(xs, "/Organisation", token, org2).status_code == 200


def test_delete_unknown_connection_is_404(xs, org, tokens):
    response = requests.delete(
        f"{xs.url}/connections/{uuid.uuid4()}",
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
        timeout=TIMEOUT,
    )
    assert response.status_code == 404, response.text


def test_delete_connection_by_tenant_id_fails(xs, org, tokens):
    (connection,) = list_connections(xs, tokens["access_token"]).json()
    assert connection["id"] != connection["tenantId"]
    response = requests.delete(
        f"{xs.url}/connections/{org}",
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
        timeout=TIMEOUT,
    )
    assert 400 <= response.status_code < 500, response.status_code
    assert [c["tenantId"] for c in list_connections(xs, tokens["access_token"]).json()] == [org]
    assert api_get(xs, "/Organisation", tokens["access_token"], org).status_code == 200


def test_revocation_removes_every_connection(xs, org, org2):
    body = connect(xs, [org, org2])
    response = requests.post(
        xs.url + "/connect/revocation",
        data={"token": body["refresh_token"]},
        auth=(WEB_CLIENT, WEB_SECRET),
        timeout=TIMEOUT,
    )
    assert response.status_code == 200, response.text
    assert oauth_error(refresh(xs, body["refresh_token"])) == "invalid_grant"
    listed = list_connections(xs, body["access_token"])
    assert listed.status_code in (200, 401), listed.status_code
    if listed.status_code == 200:
        assert listed.json() == []
    for tenant in (org, org2):
        assert api_get(xs, "/Organisation", body["access_token"], tenant).status_code in (401, 403)


def test_revocation_needs_client_authentication(xs, org, tokens):
    response = requests.post(
        xs.url + "/connect/revocation",
        data={"token": tokens["refresh_token"]},
        auth=(WEB_CLIENT, "not-the-secret"),
        timeout=TIMEOUT,
    )
    assert response.status_code in (400, 401), response.text
    assert list_connections(xs, tokens["access_token"]).json() != []
    assert refresh(xs, tokens["refresh_token"]).status_code == 200


def test_disconnect_from_xero_side_is_403(xs, org, tokens):
    assert api_get(xs, "/Organisation", tokens["access_token"], org).status_code == 200
    xs.disconnect(org)
    assert_forbidden(api_get(xs, "/Organisation", tokens["access_token"], org))
    assert list_connections(xs, tokens["access_token"]).json() == []


def test_missing_tenant_header_is_403(xs, org, tokens):
    assert_forbidden(api_get(xs, "/Organisation", tokens["access_token"], None))


def test_tenant_not_connected_is_403(xs, org, org2, tokens):
    assert_forbidden(api_get(xs, "/Organisation", tokens["access_token"], org2))


def test_unknown_tenant_is_403(xs, org, tokens):
    assert_forbidden(api_get(xs, "/Organisation", tokens["access_token"], str(uuid.uuid4())))


# --------------------------------------------------------------------------- discovery


def test_openid_configuration_points_at_the_sandbox(xs):
    response = requests.get(xs.url + "/.well-known/openid-configuration", timeout=TIMEOUT)
    assert response.status_code == 200
    config = response.json()
    assert config["authorization_endpoint"] == xs.url + "/identity/connect/authorize"
    assert config["token_endpoint"] == xs.url + "/connect/token"
    assert config["revocation_endpoint"] == xs.url + "/connect/revocation"
    assert "code" in config["response_types_supported"]
