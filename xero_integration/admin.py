"""Django admin for the Xero connection and the sync log. Tokens are never shown."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest

from xero_integration import contacts
from xero_integration.adapters import get_adapter
from xero_integration.models import (
    ConnectAttempt,
    ContactImport,
    ContactLink,
    SyncLog,
    XeroConnection,
)


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

    actions = ["import_contact_changes"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Connections are made through Xero's consent screen only.
        return False

    @admin.action(description="Import contact changes from Xero now")
    def import_contact_changes(self, request: HttpRequest, queryset: Any) -> None:
        started = 0
        for connection in queryset:
            if connection.is_connected:
                contacts.start_import(connection)
                started += 1
        self.message_user(
            request,
            f"Contact import queued for {started} connection(s); skipped "
            f"{queryset.count() - started} that are not connected.",
            messages.INFO,
        )

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


@admin.register(ContactImport)
class ContactImportAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Contact imports and their progress ("12,000 of 48,210")."""

    list_display = ["started_at", "connection", "kind", "state", "progress", "created", "error"]
    list_filter = ["state", "kind"]
    readonly_fields = [
        "connection",
        "kind",
        "state",
        "progress",
        "modified_since",
        "high_water",
        "next_page",
        "created",
        "archived",
        "error",
        "resume_at",
        "started_at",
        "finished_at",
    ]
    fields = readonly_fields

    @admin.display(description="progress")
    def progress(self, obj: ContactImport) -> str:
        return obj.progress


@admin.register(ContactLink)
class ContactLinkAdmin(admin.ModelAdmin):
    """Which CRM contact is which Xero contact, and why. Staff may correct a link."""

    list_display = ["host_id", "xero_name", "xero_contact_id", "status", "matched_by", "account"]
    list_filter = ["status", "matched_by"]
    search_fields = ["xero_name", "xero_contact_id", "host_id", "account_key"]
    readonly_fields = [
        "account_key",
        "host_model",
        "host_id",
        "status",
        "merged_into",
        "xero_updated_at",
        "created_at",
        "updated_at",
    ]
    fields = [
        "account_key",
        "host_model",
        "host_id",
        "xero_contact_id",
        "xero_name",
        "matched_by",
        "status",
        "merged_into",
        "xero_updated_at",
        "created_at",
        "updated_at",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: ContactLink, form: Any, change: bool) -> None:
        if "xero_contact_id" in form.changed_data:
            obj.matched_by = ContactLink.MatchedBy.MANUAL
        super().save_model(request, obj, form, change)

    @admin.display(description="CRM account", ordering="account_key")
    def account(self, obj: ContactLink) -> str:
        return get_adapter().account_label(obj.account_key)
