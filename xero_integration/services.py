"""Building the wire-layer clients from settings, for one connection or for the OAuth flow."""

from __future__ import annotations

import threading
from urllib.parse import urlencode

import requests

from xero_integration import app_settings
from xero_integration.xero._http import DEFAULT_USER_AGENT
from xero_integration.xero.oauth import OAuthClient
from xero_integration.xero.ratelimit import InMemoryLimiter, Limiter

_limiter: Limiter | None = None
_limiter_lock = threading.Lock()


def user_agent() -> str:
    """The versioned User-Agent sent on every call to Xero."""
    return DEFAULT_USER_AGENT


def new_session() -> requests.Session:
    """A requests session carrying the integration's User-Agent."""
    session = requests.Session()
    session.headers["User-Agent"] = user_agent()
    return session


def oauth_client(redirect_uri: str = "") -> OAuthClient:
    """An OAuth client for the configured Xero app (web app, or PKCE app without a secret)."""
    return OAuthClient(
        client_id=app_settings.CLIENT_ID,
        client_secret=app_settings.CLIENT_SECRET or None,
        redirect_uri=redirect_uri,
        scopes=app_settings.SCOPES.split(),
        login_url=app_settings.LOGIN_URL,
        identity_url=app_settings.IDENTITY_URL,
        api_url=app_settings.API_URL,
        session=new_session(),
        timeout=app_settings.REQUEST_TIMEOUT,
        user_agent=user_agent(),
    )


def limiter() -> Limiter:
    """The rate limiter every client shares, so that all calls to one organisation draw on one
    budget (5 in flight, 60 a minute, the day's remainder): in Redis across every worker when
    ``XERO_LIMITER_REDIS_URL`` is set, else in this process."""
    global _limiter
    with _limiter_lock:
        if _limiter is None:
            if app_settings.LIMITER_REDIS_URL:
                import redis

                from xero_integration.xero.redis_limiter import RedisLimiter

                _limiter = RedisLimiter(
                    redis.Redis.from_url(app_settings.LIMITER_REDIS_URL),
                    per_minute=app_settings.CALLS_PER_MINUTE,
                )
            else:
                _limiter = InMemoryLimiter(per_minute=app_settings.CALLS_PER_MINUTE)
        return _limiter


def reset_limiter() -> None:
    """Forget every budget (tests; a worker never needs this)."""
    global _limiter
    with _limiter_lock:
        _limiter = None


def xero_invoice_url(tenant_id: str, short_code: str, invoice_id: str) -> str:
    """A link that opens the invoice in Xero (the organisation's ShortCode deep link), or the
    sandbox's page of the organisation when the API is the sandbox."""
    if not invoice_id:
        return ""
    api_url = app_settings.API_URL
    if api_url.rstrip("/") == "https://api.xero.com":
        return "https://go.xero.com/organisationlogin/default.aspx?" + urlencode(
            {
                "shortcode": short_code,
                "redirecturl": f"/AccountsReceivable/View.aspx?InvoiceID={invoice_id}",
            }
        )
    return f"{api_url}/_sandbox/org/{tenant_id}#invoice-{invoice_id}"
