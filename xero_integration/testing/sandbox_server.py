"""``SandboxServer``: a running sandbox plus helpers that drive it through its control API."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import requests

from xero_integration.sandbox import BackgroundSandbox

DEFAULT_SCOPE = (
    "openid profile email offline_access accounting.contacts accounting.settings "
    "accounting.invoices accounting.payments"
)


class SandboxError(AssertionError):
    """The control API refused a call; the message carries its answer, ``status`` and ``body``
    hold it (for a change Xero refused, ``body`` is Xero's ValidationException)."""

    def __init__(self, message: str, status: int | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body

    @property
    def messages(self) -> list[str]:
        """Every ``ValidationErrors[].Message`` of Xero's refusal, in order."""
        found: list[str] = []

        def walk(value: Any) -> None:
            if isinstance(value, dict):
                for error in value.get("ValidationErrors") or []:
                    if isinstance(error, dict) and error.get("Message"):
                        found.append(error["Message"])
                for key, item in value.items():
                    if key != "ValidationErrors":
                        walk(item)
            elif isinstance(value, list):
                for item in value:
                    walk(item)

        walk(self.body.get("Elements") if isinstance(self.body, dict) else None)
        return found


class SandboxServer:
    """A sandbox on a free loopback port. Every helper goes over HTTP through ``/_sandbox/``."""

    default_scope = DEFAULT_SCOPE

    def __init__(self, seed: int | None = 1) -> None:
        self._background = BackgroundSandbox(seed=seed)
        self.url: str = self._background.url
        self.api_url = f"{self.url}/api.xro/2.0"
        self.sandbox = self._background.sandbox
        self.http = requests.Session()

    def stop(self) -> None:
        self.http.close()
        self._background.stop()

    def __enter__(self) -> SandboxServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- control API -------------------------------------------------------------------
    def control(
        self, method: str, path: str, json: Any = None, params: dict | None = None
    ) -> tuple[int, Any]:
        response = self.http.request(
            method, f"{self.url}/_sandbox/{path.lstrip('/')}", json=json, params=params, timeout=30
        )
        try:
            return response.status_code, response.json()
        except ValueError:
            return response.status_code, response.text

    def _ok(self, method: str, path: str, json: Any = None, params: dict | None = None) -> Any:
        status, body = self.control(method, path, json, params)
        if status >= 400:
            raise SandboxError(f"{method} /_sandbox/{path} answered {status}: {body}", status, body)
        return body

    def reset(self) -> None:
        self._ok("POST", "reset")

    def create_organisation(
        self,
        name: str = "Demo Company (NZ)",
        country_code: str = "NZ",
        base_currency: str = "NZD",
        multicurrency: bool = True,
        daily_limit: int | None = None,
        contacts: int = 0,
        period_lock_date: str | None = None,
    ) -> dict:
        body: dict[str, Any] = {
            "name": name,
            "country_code": country_code,
            "base_currency": base_currency,
            "multicurrency": multicurrency,
            "contacts": contacts,
        }
        if daily_limit is not None:
            body["daily_limit"] = daily_limit
        if period_lock_date is not None:
            body["period_lock_date"] = period_lock_date
        return self._ok("POST", "organisations", body)

    def register_app(
        self,
        client_id: str,
        client_secret: str | None = None,
        redirect_uris: Iterable[str] = ("http://testserver/integrations/xero/callback/",),
        legacy_scopes: bool = False,
        name: str | None = None,
    ) -> dict:
        body: dict[str, Any] = {
            "client_id": client_id,
            "redirect_uris": list(redirect_uris),
            "legacy_scopes": legacy_scopes,
        }
        if client_secret:
            body["client_secret"] = client_secret
        if name:
            body["name"] = name
        return self._ok("POST", "apps", body)

    def issue_tokens(
        self, client_id: str, tenant_ids: Iterable[str], scope: str = DEFAULT_SCOPE
    ) -> dict:
        return self._ok(
            "POST",
            "tokens",
            {"client_id": client_id, "tenant_ids": list(tenant_ids), "scope": scope},
        )

    def organisation_state(self, tenant_id: str) -> dict:
        return self._ok("GET", f"organisations/{tenant_id}")

    def requests(self, tenant_id: str | None = None) -> list[dict]:
        return self._ok("GET", "requests", params={"tenant_id": tenant_id} if tenant_id else None)

    def add_fault(
        self,
        method: str,
        path: str,
        kind: str,
        count: int | None = None,
        probability: float | None = None,
        **extra: Any,
    ) -> None:
        body: dict[str, Any] = {"method": method, "path": path, "kind": kind, **extra}
        if count is not None:
            body["count"] = count
        if probability is not None:
            body["probability"] = probability
        self._ok("POST", "faults", body)

    def clear_faults(self) -> None:
        self._ok("DELETE", "faults")

    def advance_clock(self, seconds: float) -> None:
        self._ok("POST", "clock", {"advance_seconds": seconds})

    def disconnect(self, tenant_id: str) -> None:
        self._ok("POST", "disconnect", {"tenant_id": tenant_id})

    def set_limits(
        self,
        tenant_id: str,
        per_minute: int | None = None,
        per_day: int | None = None,
        concurrent: int | None = None,
    ) -> dict:
        body = {
            "tenant_id": tenant_id,
            "per_minute": per_minute,
            "per_day": per_day,
            "concurrent": concurrent,
        }
        return self._ok("POST", "limits", {k: v for k, v in body.items() if v is not None})

    def register_webhook(self, url: str, key: str) -> dict:
        status, body = self.control("POST", "webhooks", {"url": url, "key": key})
        return body

    def edit_contacts(self, tenant_id: str, contacts: list[dict]) -> list[str]:
        """Create or change contacts as a user would in Xero itself."""
        return self._ok("POST", f"organisations/{tenant_id}/contacts", {"contacts": contacts})[
            "contact_ids"
        ]

    def merge_contact(self, tenant_id: str, contact_id: str, into: str) -> dict:
        return self._ok(
            "POST", f"organisations/{tenant_id}/contacts/{contact_id}/merge", {"into": into}
        )

    def xero_user_invoices(self, tenant_id: str, invoices: list[dict]) -> list[dict]:
        """Create invoices as a person would in Xero, or edit the ones whose ``InvoiceID`` is
        given (``Status`` AUTHORISED, VOIDED or DELETED included), under Xero's rules; the
        invoices as the API returns them. A refusal raises ``SandboxError`` with Xero's body."""
        return self._ok("POST", f"organisations/{tenant_id}/invoices", {"invoices": invoices})[
            "invoices"
        ]

    def xero_user_payments(self, tenant_id: str, payments: list[dict]) -> list[dict]:
        """Record payments as a person would in Xero (``IsReconciled`` optional), or
        (un)reconcile recorded ones with ``{"PaymentID", "IsReconciled"}``; the payments as
        the API returns them. A refusal raises ``SandboxError`` with Xero's body."""
        return self._ok("POST", f"organisations/{tenant_id}/payments", {"payments": payments})[
            "payments"
        ]

    def xero_user_delete_payment(self, tenant_id: str, payment_id: str) -> None:
        """Remove a payment as a person would in Xero (refused while it is reconciled)."""
        self._ok("DELETE", f"organisations/{tenant_id}/payments/{payment_id}")

    # ---- Accounting API ----------------------------------------------------------------
    def api(
        self,
        method: str,
        path: str,
        tenant_id: str,
        access_token: str,
        json: Any = None,
        params: dict | None = None,
        headers: dict | None = None,
    ) -> requests.Response:
        """A raw Accounting API call, with the headers Xero requires."""
        all_headers = {
            "Authorization": f"Bearer {access_token}",
            "xero-tenant-id": tenant_id,
            "Accept": "application/json",
        }
        all_headers.update(headers or {})
        return self.http.request(
            method,
            f"{self.api_url}/{path.lstrip('/')}",
            json=json,
            params=params,
            headers=all_headers,
            timeout=30,
        )
