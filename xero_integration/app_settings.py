"""Settings of xero_integration, read from Django settings each time they are accessed.

Every setting is named ``XERO_<NAME>`` in the host's settings; reading at access time keeps
``override_settings`` working in tests (the django-allauth pattern).
"""

from __future__ import annotations

from typing import Any

from xero_integration.xero import oauth

DEFAULT_SCOPES = " ".join(oauth.DEFAULT_SCOPES)
# Apps created before March 2026 keep the broad scope until Xero retires it.
LEGACY_SCOPES = " ".join(oauth.LEGACY_SCOPES)


class AppSettings:
    """One documented property per setting; defaults apply when the host sets nothing."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def _setting(self, name: str, default: Any) -> Any:
        from django.conf import settings

        return getattr(settings, self.prefix + name, default)

    @property
    def ADAPTER(self) -> str:
        """Dotted path of the host CRM's adapter class (a DefaultXeroAdapter subclass)."""
        return self._setting("ADAPTER", "xero_integration.adapters.DefaultXeroAdapter")

    @property
    def CLIENT_ID(self) -> str:
        """The Xero app's client id (developer.xero.com → My Apps)."""
        return self._setting("CLIENT_ID", "")

    @property
    def CLIENT_SECRET(self) -> str:
        """The Xero web app's client secret; empty for an "Auth Code with PKCE" app."""
        return self._setting("CLIENT_SECRET", "")

    @property
    def LOGIN_URL(self) -> str:
        """Base URL of Xero's consent screen; the sandbox's URL in the demo and tests."""
        return self._setting("LOGIN_URL", "https://login.xero.com").rstrip("/")

    @property
    def IDENTITY_URL(self) -> str:
        """Base URL of Xero's token and revocation endpoints."""
        return self._setting("IDENTITY_URL", "https://identity.xero.com").rstrip("/")

    @property
    def API_URL(self) -> str:
        """Base URL of Xero's API host (``/connections`` and ``/api.xro/2.0``)."""
        return self._setting("API_URL", "https://api.xero.com").rstrip("/")

    @property
    def REDIRECT_URI(self) -> str:
        """The callback URL registered with Xero; built from the request when empty."""
        return self._setting("REDIRECT_URI", "")

    @property
    def SCOPES(self) -> str:
        """Space-separated OAuth scopes; granular scopes unless USE_LEGACY_SCOPES is set."""
        default = LEGACY_SCOPES if self.USE_LEGACY_SCOPES else DEFAULT_SCOPES
        return self._setting("SCOPES", default)

    @property
    def USE_LEGACY_SCOPES(self) -> bool:
        """Ask for ``accounting.transactions`` (apps created before March 2026)."""
        return bool(self._setting("USE_LEGACY_SCOPES", False))

    @property
    def ENCRYPTION_KEYS(self) -> list[str]:
        """Fernet keys for tokens at rest, newest first; older keys still decrypt (rotation)."""
        keys = self._setting("ENCRYPTION_KEYS", [])
        if isinstance(keys, str):
            keys = [k for k in keys.split(",") if k.strip()]
        return [k.strip() for k in keys]

    @property
    def DRIFT_DAYS(self) -> int:
        """The daily drift check reads every invoice sent to Xero in this many days."""
        return int(self._setting("DRIFT_DAYS", 30))

    @property
    def CHANGES_MINUTES(self) -> int:
        """How often invoice and payment changes made in Xero are read (If-Modified-Since)."""
        return int(self._setting("CHANGES_MINUTES", 15))

    @property
    def RUN_SECONDS(self) -> float:
        """How long one sync run may keep starting calls to Xero (well inside the task
        timeout: see the system check xero_integration.E004)."""
        return float(self._setting("RUN_SECONDS", 60))

    @property
    def REQUEST_TIMEOUT(self) -> float:
        """Seconds to wait for Xero to answer one call before giving up on it."""
        return float(self._setting("REQUEST_TIMEOUT", 30))

    @property
    def SYNC_DRAFTS(self) -> bool:
        """Push draft invoices to Xero as DRAFT; when False, invoices wait until they are sent."""
        return bool(self._setting("SYNC_DRAFTS", True))

    @property
    def CREATE_TAX_RATES(self) -> bool:
        """Create a Xero tax rate when no existing one matches a CRM tax."""
        return bool(self._setting("CREATE_TAX_RATES", True))

    @property
    def CONTACT_NUMBER_PREFIX(self) -> str:
        """Written before the CRM contact's id in Xero's ContactNumber ("CRM-42")."""
        return str(self._setting("CONTACT_NUMBER_PREFIX", "CRM-"))

    @property
    def CONTACT_IMPORT_MINUTES(self) -> int:
        """How often contact changes are read from Xero (If-Modified-Since)."""
        return int(self._setting("CONTACT_IMPORT_MINUTES", 15))

    @property
    def WEBHOOK_KEY(self) -> str:
        """The webhook signing key Xero's developer portal shows for the app ("" turns the
        webhook endpoint off)."""
        return str(self._setting("WEBHOOK_KEY", ""))

    @property
    def RETRY_BASE_SECONDS(self) -> float:
        """The first wait of a sync job that met trouble; it doubles on each try (to an hour)."""
        return float(self._setting("RETRY_BASE_SECONDS", 30.0))

    @property
    def FAILING_ATTEMPTS(self) -> int:
        """A waiting sync job that has met trouble this many times in a row counts as failing
        (admin's "Failed syncs", the health shown to users, alerts)."""
        return int(self._setting("FAILING_ATTEMPTS", 5))

    @property
    def FAILING_MINUTES(self) -> int:
        """A sync job in trouble for this long counts as failing, however few its tries; the
        account's managers are alerted once its trouble lasts this long."""
        return int(self._setting("FAILING_MINUTES", 60))

    @property
    def SITE_URL(self) -> str:
        """The CRM's address (``https://crm.example.com``), for links in alert emails; empty:
        the emails name the page instead of linking to it."""
        return str(self._setting("SITE_URL", "")).rstrip("/")

    @property
    def CALLS_PER_MINUTE(self) -> int:
        """Calls a minute to one organisation (Xero allows 60; lower it to leave room for
        other apps)."""
        return int(self._setting("CALLS_PER_MINUTE", 60))

    @property
    def LIMITER_REDIS_URL(self) -> str:
        """Redis that holds the rate-limit budgets shared by every worker ("" keeps them in
        each process, right for a single worker)."""
        return str(self._setting("LIMITER_REDIS_URL", ""))


app_settings = AppSettings("XERO_")


def __getattr__(name: str) -> Any:
    """Module-level access: ``app_settings.CLIENT_ID`` reads the setting now (PEP 562)."""
    return getattr(app_settings, name)
