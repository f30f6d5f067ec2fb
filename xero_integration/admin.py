"""Django admin for the Xero connection and the sync log. Tokens are never shown."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from xero_integration.adapters import get_adapter
from xero_integration.models import ConnectAttempt, SyncLog, XeroConnection


class ReadOnlyAdminMixin:
    """Logs are written by the integration only."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class XeroConnectionForm(forms.ModelForm):
    """Default accounts chosen among the organisation's accounts read from Xero."""

    class Meta:
        model = XeroConnection
        fields = ["payment_account_id", "revenue_account_code"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        connection = self.instance
        self.fields["payment_account_id"] = forms.ChoiceField(
            label="Payment account",
            required=False,
            choices=[("", "—")]
            + [(a["AccountID"], a["Name"]) for a in connection.payment_accounts()],
            help_text="Only accounts that accept payments (bank accounts, or “Enable payments "
            "to this account” in Xero).",
        )
        self.fields["revenue_account_code"] = forms.ChoiceField(
            label="Revenue account",
            required=False,
            choices=[("", "—")]
            + [(a["Code"], f"{a['Code']} – {a['Name']}") for a in connection.revenue_accounts()],
        )


@admin.register(XeroConnection)
class XeroConnectionAdmin(admin.ModelAdmin):
    """Connections: status and organisation read-only, default accounts editable."""

    form = XeroConnectionForm
    list_display = ["account", "tenant_name", "status", "connected_at", "tokens_refreshed_at"]
    list_filter = ["status"]
    search_fields = ["account_key", "tenant_name", "tenant_id"]
    readonly_fields = [
        "account",
        "status",
        "status_reason",
        "tenant_name",
        "tenant_id",
        "connection_id",
        "short_code",
        "base_currency",
        "country_code",
        "scopes",
        "connected_by",
        "connected_at",
        "disconnected_at",
        "access_token_expires_at",
        "tokens_refreshed_at",
        "accounts_loaded_at",
    ]
    fieldsets = [
        (None, {"fields": ["account", "status", "status_reason"]}),
        (
            "Organisation",
            {
                "fields": [
                    "tenant_name",
                    "tenant_id",
                    "connection_id",
                    "short_code",
                    "base_currency",
                    "country_code",
                ]
            },
        ),
        ("Default accounts", {"fields": ["payment_account_id", "revenue_account_code"]}),
        (
            "Authorisation",
            {
                "fields": [
                    "scopes",
                    "connected_by",
                    "connected_at",
                    "disconnected_at",
                    "access_token_expires_at",
                    "tokens_refreshed_at",
                    "accounts_loaded_at",
                ]
            },
        ),
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Connections are made through Xero's consent screen only.
        return False

    @admin.display(description="CRM account", ordering="account_key")
    def account(self, obj: XeroConnection) -> str:
        return get_adapter().account_label(obj.account_key)


@admin.register(ConnectAttempt)
class ConnectAttemptAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Trips through the consent screen, for diagnosing a failed connect."""

    list_display = ["created_at", "account_key", "user", "state", "error"]
    list_filter = ["state"]
    fields = ["account_key", "user", "state", "error", "tenants", "chosen_tenant_id", "created_at"]
    readonly_fields = fields


@admin.register(SyncLog)
class SyncLogAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Everything the integration did with Xero, newest first."""

    list_display = ["created_at", "account_key", "action", "outcome", "http_status", "message"]
    list_filter = ["outcome", "action", "created_at"]
    search_fields = ["message", "correlation_id", "account_key"]
    readonly_fields = [
        "connection",
        "account_key",
        "created_at",
        "action",
        "outcome",
        "message",
        "http_status",
        "correlation_id",
        "details",
    ]
