"""Models of xero_integration: the connection of a CRM account to one Xero organisation, and logs.

Host objects are referred to by ``host_model`` ("app_label.model") and ``host_id`` strings, and
CRM accounts by ``account_key``, so these tables never depend on the host's migrations.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

from xero_integration.fields import EncryptedTextField


class ConnectionStatus(models.TextChoices):
    """Where a CRM account stands with Xero."""

    CONNECTED = "connected", "Connected"
    NEEDS_RECONNECT = "needs_reconnect", "Needs reconnect"
    DISCONNECTED = "disconnected", "Disconnected"


class XeroConnection(models.Model):
    """One CRM account's connection to one Xero organisation (tenant), with its tokens.

    Tokens are encrypted at rest and refreshed by one worker at a time (see tokens.py). The row is
    kept after a disconnect so that the account's sync history stays readable.
    """

    account_key = models.CharField(max_length=100, unique=True)
    status = models.CharField(
        max_length=20, choices=ConnectionStatus.choices, default=ConnectionStatus.DISCONNECTED
    )
    status_reason = models.TextField(blank=True)

    tenant_id = models.CharField("Xero tenant id", max_length=64, blank=True)
    tenant_name = models.CharField("organisation", max_length=255, blank=True)
    tenant_type = models.CharField(max_length=30, blank=True)
    connection_id = models.CharField("Xero connection id", max_length=64, blank=True)
    short_code = models.CharField(max_length=20, blank=True)
    base_currency = models.CharField(max_length=3, blank=True)
    country_code = models.CharField(max_length=2, blank=True)
    scopes = models.TextField(blank=True)

    access_token = EncryptedTextField(blank=True)
    refresh_token = EncryptedTextField(blank=True)
    access_token_expires_at = models.DateTimeField(null=True, blank=True)
    tokens_refreshed_at = models.DateTimeField(null=True, blank=True)
    # Bumped by every refresh: the first write of a refresh takes the row's write lock (on SQLite
    # the database's), so concurrent refreshers queue behind it.
    token_generation = models.PositiveIntegerField(default=0)

    connected_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    connected_at = models.DateTimeField(null=True, blank=True)
    disconnected_at = models.DateTimeField(null=True, blank=True)

    # Reference data read from Xero after connecting (by a task, never inside a web request).
    accounts = models.JSONField(default=list, blank=True)
    accounts_loaded_at = models.DateTimeField(null=True, blank=True)
    payment_account_id = models.CharField("payment account", max_length=64, blank=True)
    revenue_account_code = models.CharField("revenue account", max_length=10, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "Xero connection"

    def __str__(self) -> str:
        return f"{self.tenant_name or 'Xero'} ({self.get_status_display()})"

    @property
    def is_connected(self) -> bool:
        """True when sync work for this account can run now."""
        return self.status == ConnectionStatus.CONNECTED

    def access_token_is_fresh(self, margin: timedelta = timedelta(seconds=60)) -> bool:
        """True while the access token stays valid for at least ``margin`` longer."""
        return bool(
            self.access_token
            and self.access_token_expires_at
            and self.access_token_expires_at - margin > timezone.now()
        )

    def payment_accounts(self) -> list[dict[str, Any]]:
        """ACTIVE accounts that accept payments: bank accounts or EnablePaymentsToAccount."""
        return [
            account
            for account in self.accounts
            if account.get("Status") == "ACTIVE"
            and (account.get("Type") == "BANK" or account.get("EnablePaymentsToAccount"))
        ]

    def revenue_accounts(self) -> list[dict[str, Any]]:
        """ACTIVE revenue-class accounts with a code, for invoice lines."""
        return [
            account
            for account in self.accounts
            if account.get("Status") == "ACTIVE"
            and account.get("Class") == "REVENUE"
            and account.get("Code")
        ]

    def account_name(self, *, account_id: str = "", code: str = "") -> str:
        """The name of a cached account, by id or code; empty when unknown."""
        for account in self.accounts:
            if (account_id and account.get("AccountID") == account_id) or (
                code and account.get("Code") == code
            ):
                return account.get("Name", "")
        return ""

    def wipe_tokens(self) -> None:
        """Forget the tokens (the caller saves)."""
        self.access_token = ""
        self.refresh_token = ""
        self.access_token_expires_at = None


class ConnectAttempt(models.Model):
    """One trip through Xero's consent screen, completed by a background task.

    The callback view only records the code; the task exchanges it, so no web request waits on
    Xero. When the user ticked several organisations the attempt holds their list until the user
    picks the one this CRM account keeps.
    """

    class State(models.TextChoices):
        EXCHANGING = "exchanging", "Exchanging the code"
        CHOOSING = "choosing", "Choosing an organisation"
        FINISHING = "finishing", "Finishing"
        DONE = "done", "Connected"
        FAILED = "failed", "Failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account_key = models.CharField(max_length=100)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    state = models.CharField(max_length=20, choices=State.choices, default=State.EXCHANGING)
    error = models.TextField(blank=True)
    code = EncryptedTextField(blank=True)
    code_verifier = EncryptedTextField(blank=True)
    redirect_uri = models.CharField(max_length=500)
    access_token = EncryptedTextField(blank=True)
    refresh_token = EncryptedTextField(blank=True)
    access_token_expires_at = models.DateTimeField(null=True, blank=True)
    scopes = models.TextField(blank=True)
    tenants = models.JSONField(default=list, blank=True)
    chosen_tenant_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Connect attempt {self.id} ({self.get_state_display()})"

    def forget_secrets(self) -> None:
        """Drop the code and tokens once they have moved to the connection (the caller saves)."""
        self.code = ""
        self.code_verifier = ""
        self.access_token = ""
        self.refresh_token = ""


class SyncLog(models.Model):
    """An append-only record of what the integration did with Xero and what Xero answered."""

    class Outcome(models.TextChoices):
        OK = "ok", "OK"
        FAILED = "failed", "Failed"
        INFO = "info", "Info"

    connection = models.ForeignKey(
        XeroConnection, null=True, blank=True, on_delete=models.CASCADE, related_name="logs"
    )
    account_key = models.CharField(max_length=100, db_index=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    action = models.CharField(max_length=60)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.OK)
    message = models.TextField(blank=True)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    correlation_id = models.CharField(max_length=64, blank=True)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["connection", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.action} {self.outcome}"
