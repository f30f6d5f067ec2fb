"""Django admin for the Xero connection and the sync log. Tokens are never shown."""

from __future__ import annotations

import threading
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.db.models import Count, OuterRef, Subquery
from django.http import HttpRequest
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.timezone import localtime

from xero_integration import connect, contacts, health, invoices, outbox, services, taskqueue
from xero_integration.adapters import find_invoice, get_adapter, host_key
from xero_integration.messages import explain_job
from xero_integration.models import (
    ConnectAttempt,
    ConnectionStatus,
    ContactImport,
    ContactLink,
    FailedSyncJob,
    InvoiceLink,
    PaymentLink,
    SyncJob,
    SyncLog,
    TaxRateMapping,
    WebhookEvent,
    XeroConnection,
)

_labels = threading.local()


def connection_of(account_key: str) -> XeroConnection | None:
    """The account's connection, read once per account per list page."""
    cache = getattr(_labels, "connections", None)
    if cache is None:
        return XeroConnection.objects.filter(account_key=account_key).first()
    if account_key not in cache:
        cache[account_key] = XeroConnection.objects.filter(account_key=account_key).first()
    return cache[account_key]


def account_label(account_key: str) -> str:
    """The account's name from the host's adapter, asked once per account per list page (the
    host may need a query for it)."""
    cache = getattr(_labels, "cache", None)
    if cache is None:
        return get_adapter().account_label(account_key)
    if account_key not in cache:
        cache[account_key] = get_adapter().account_label(account_key)
    return cache[account_key]


class AccountLabelsMixin:
    """List pages ask the adapter for the names of the page's accounts, and read their
    connections, in one go whatever the rows."""

    def get_changelist_instance(self, request: HttpRequest) -> Any:
        changelist = super().get_changelist_instance(request)  # type: ignore[misc]
        if getattr(_labels, "cache", None) is not None:
            keys = sorted(
                {
                    str(key)
                    for key in (getattr(row, "account_key", None) for row in changelist.result_list)
                    if key
                }
                - set(_labels.cache)
            )
            if keys:
                _labels.cache.update(get_adapter(request).account_labels(keys))
                found = {
                    c.account_key: c for c in XeroConnection.objects.filter(account_key__in=keys)
                }
                _labels.connections.update({key: found.get(key) for key in keys})
        return changelist

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> Any:
        _labels.cache, _labels.connections = {}, {}
        try:
            response = super().changelist_view(request, extra_context)  # type: ignore[misc]
            if hasattr(response, "render") and not getattr(response, "is_rendered", True):
                response.render()
            return response
        finally:
            _labels.cache = _labels.connections = None


#: The integration's own sync log actions (everything else is a call to Xero, "GET /…").
EVENT_ACTIONS = (
    "alert",
    "backfill",
    "connect",
    "connect_expired",
    "contact_email",
    "contact_import",
    "contact_linked",
    "contact_match",
    "contact_merged",
    "default_accounts",
    "disconnect",
    "disconnect_requested",
    "invoice_adopted",
    "invoice_linked_by_staff",
    "invoice_removed",
    "invoice_sent_again",
    "invoice_sync",
    "load_accounts",
    "needs_reconnect",
    "payment_adopted",
    "payments_removed",
    "total_mismatch",
    "xero_changes",
)
#: Calls to Xero grouped by what they touch.
CALL_KINDS = (
    "Invoices",
    "Payments",
    "Contacts",
    "TaxRates",
    "Currencies",
    "Accounts",
    "Organisation",
    "connections",
)


class SyncLogKindFilter(admin.SimpleListFilter):
    """The log's action grouped by kind: calls to Xero by resource (not one entry per URL
    with an id in it), then the integration's own events."""

    title = "action"
    parameter_name = "kind"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        calls = [(f"call:{kind}", f"Calls: {kind}") for kind in CALL_KINDS]
        return calls + [(f"event:{action}", action.replace("_", " ")) for action in EVENT_ACTIONS]

    def queryset(self, request: HttpRequest, queryset: Any) -> Any:
        value = self.value() or ""
        if value.startswith("call:"):
            kind = value.split(":", 1)[1]
            pattern = rf"^[A-Z]+ \S*/{kind}(/|\?|$)"
            return queryset.filter(action__regex=pattern)
        if value.startswith("event:"):
            return queryset.filter(action=value.split(":", 1)[1])
        return queryset


class ReadOnlyAdminMixin:
    """Logs and links are written by the integration only, and never deleted by hand: the log
    is the audit trail, and a deleted link would make the next sync send its invoice or
    payment to Xero again."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class XeroConnectionForm(forms.ModelForm):
    """Default accounts chosen among the organisation's accounts read from Xero."""

    class Meta:
        model = XeroConnection
        fields = ["payment_account_id", "revenue_account_code", "untaxed_tax_type"]

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
class XeroConnectionAdmin(AccountLabelsMixin, admin.ModelAdmin):
    """Connections: status and organisation read-only, default accounts editable."""

    form = XeroConnectionForm
    list_display = [
        "account",
        "tenant_name",
        "status",
        "waiting_jobs",
        "connected_at",
        "tokens_refreshed_at",
    ]
    list_filter = ["status"]
    search_fields = ["account_key", "tenant_name", "tenant_id"]
    readonly_fields = [
        "account",
        "status",
        "status_reason",
        "waiting_jobs",
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
        (None, {"fields": ["account", "status", "status_reason", "waiting_jobs"]}),
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
        (
            "Defaults",
            {"fields": ["payment_account_id", "revenue_account_code", "untaxed_tax_type"]},
        ),
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

    actions = ["import_contact_changes", "disconnect"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Connections are made through Xero's consent screen only.
        return False

    def get_queryset(self, request: HttpRequest) -> Any:
        waiting = (
            SyncJob.objects.filter(
                account_key=OuterRef("account_key"),
                state__in=(SyncJob.State.PENDING, SyncJob.State.WAITING, SyncJob.State.RUNNING),
            )
            .values("account_key")
            .annotate(count=Count("pk"))
            .values("count")
        )
        return super().get_queryset(request).annotate(waiting=Subquery(waiting))

    @admin.display(description="Invoices waiting")
    def waiting_jobs(self, obj: XeroConnection) -> int:
        """Invoices queued for Xero (while disconnected, they wait for the reconnect)."""
        if hasattr(obj, "waiting"):
            return obj.waiting or 0
        return SyncJob.objects.filter(
            account_key=obj.account_key,
            state__in=(SyncJob.State.PENDING, SyncJob.State.WAITING, SyncJob.State.RUNNING),
        ).count()

    def save_model(
        self, request: HttpRequest, obj: XeroConnection, form: Any, change: bool
    ) -> None:
        # As on the settings page: the choice is kept for this organisation (a reconnect or a
        # switch back finds it), and invoices that failed for want of it are sent now.
        if "untaxed_tax_type" in form.changed_data:
            obj.untaxed_tax_type = obj.untaxed_tax_type.strip().upper()
            obj.untaxed_set_by_staff = bool(obj.untaxed_tax_type)
        obj.remember_defaults()
        super().save_model(request, obj, form, change)
        if obj.is_connected and obj.revenue_account_code:
            outbox.requeue_account(obj.account_key, reasons=(SyncJob.Reason.SETUP,))

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Deleting the row would leave the connection live in Xero and its tokens unrevoked;
        # the "Disconnect" action does it properly and keeps the history.
        return False

    def has_import_contacts_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("xero_integration.import_contacts_xeroconnection")

    def has_disconnect_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("xero_integration.disconnect_xeroconnection")

    @admin.action(description="Disconnect from Xero", permissions=["disconnect"])
    def disconnect(self, request: HttpRequest, queryset: Any) -> None:
        done = 0
        for connection in queryset.exclude(status=ConnectionStatus.DISCONNECTED):
            # The same path as the Disconnect button: the CRM lets go now, a task tells Xero.
            with transaction.atomic():
                connect.disconnect(connection, request.user)
                taskqueue.dispatch(
                    connect.disconnect_in_xero, connection.pk, connection.token_generation
                )
            done += 1
        self.message_user(
            request,
            f"{done} connection(s) disconnected; Xero is being told. Their history is kept.",
            messages.SUCCESS,
        )

    @admin.action(
        description="Import contact changes from Xero now", permissions=["import_contacts"]
    )
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
        return account_label(obj.account_key)


@admin.register(ConnectAttempt)
class ConnectAttemptAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Trips through the consent screen, for diagnosing a failed connect."""

    list_display = ["created_at", "account_key", "user", "state", "error"]
    list_filter = ["state"]
    fields = ["account_key", "user", "state", "error", "tenants", "chosen_tenant_id", "created_at"]
    readonly_fields = fields


@admin.register(SyncLog)
class SyncLogAdmin(AccountLabelsMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """Every call to Xero and what Xero answered, newest first (secrets redacted)."""

    # Short columns, so that the message keeps its room beside the filters at 1,280 px.
    list_display = ["when", "account", "short_action", "result", "summary"]
    list_filter = ["outcome", SyncLogKindFilter, "created_at"]
    search_fields = ["message", "correlation_id", "account_key", "host_id"]
    readonly_fields = [
        "connection",
        "account_key",
        "job",
        "host_id",
        "created_at",
        "action",
        "outcome",
        "message",
        "http_status",
        "correlation_id",
        "details",
        "request_body",
        "response_body",
    ]

    @admin.display(description="when", ordering="created_at")
    def when(self, obj: SyncLog) -> str:
        return date_format(localtime(obj.created_at), "j M H:i:s")

    @admin.display(description="account", ordering="account_key")
    def account(self, obj: SyncLog) -> str:
        return account_label(obj.account_key)

    @admin.display(description="action", ordering="action")
    def short_action(self, obj: SyncLog) -> str:
        # The API's prefix and a call's query string (where=…, summarizeErrors=…) would widen
        # the column; both stay on the entry's own page.
        return obj.action.split("?", 1)[0].replace(API_PREFIX, "")

    @admin.display(description="result", ordering="outcome")
    def result(self, obj: SyncLog) -> str:
        status = f" {obj.http_status}" if obj.http_status else ""
        return f"{obj.get_outcome_display()}{status}"

    @admin.display(description="message")
    def summary(self, obj: SyncLog) -> str:
        shown = obj.message
        if len(shown) > SUMMARY_LENGTH:
            shown = shown[:SUMMARY_LENGTH].rstrip() + "…"
        # A long token (a URL, an id) wraps instead of widening the table.
        return format_html(
            '<span title="{}" style="overflow-wrap: anywhere">{}</span>', obj.message, shown
        )


#: How much of a long message the sync log's list shows (the whole is on the entry's page).
SUMMARY_LENGTH = 160
#: The Accounting API's path prefix, left out of the sync log's list.
API_PREFIX = "/api.xro/2.0"


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
class ContactLinkAdmin(AccountLabelsMixin, admin.ModelAdmin):
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
        return account_label(obj.account_key)


def _error_summary(job: SyncJob) -> str:
    if len(job.error) <= SUMMARY_LENGTH:
        return job.error
    return format_html('<span title="{}">{}…</span>', job.error, job.error[:SUMMARY_LENGTH])


class SyncJobAdmin(AccountLabelsMixin, admin.ModelAdmin):
    """Invoices on their way to Xero. Failed ones keep Xero's message until staff fix the data
    and retry, or mark them resolved."""

    list_display = [
        "number",
        "account",
        "state",
        "reason",
        "attempts",
        "error_message",
        "meaning",
        "updated_at",
    ]
    list_filter = [
        "state",
        "reason",
        "deleted",
        "ambiguous",
        "account_key",
        "created_at",
        "updated_at",
    ]
    search_fields = ["number", "host_id", "error"]
    actions = ["retry", "mark_resolved", "link_to_existing_invoice", "send_as_new_invoice"]
    readonly_fields = [
        "account",
        "host_model",
        "host_id",
        "number",
        "state",
        "change_seq",
        "done_seq",
        "deleted",
        "attempts",
        "not_before",
        "lease_until",
        "ambiguous",
        "reason",
        "error",
        "meaning",
        "user_sees",
        "error_fields",
        "xero_link",
        "created_at",
        "updated_at",
    ]
    fields = readonly_fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("xero_integration.retry_syncjob")

    def has_resolve_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("xero_integration.resolve_syncjob")

    @admin.display(description="CRM account", ordering="account_key")
    def account(self, obj: SyncJob) -> str:
        return account_label(obj.account_key)

    @admin.display(description="Xero's message")
    def error_message(self, obj: SyncJob) -> str:
        return _error_summary(obj)

    @admin.display(description="What it means")
    def meaning(self, obj: SyncJob) -> str:
        """The staff text of the job's trouble (empty for jobs that are fine)."""
        if obj.state in (SyncJob.State.DONE, SyncJob.State.RESOLVED) or not (
            obj.error or obj.reason
        ):
            return ""
        return explain_job(obj).staff

    @admin.display(description="What the CRM's users read")
    def user_sees(self, obj: SyncJob) -> str:
        connection = XeroConnection.objects.filter(account_key=obj.account_key).first()
        return health.invoice_sync(obj, None, connection).sentence or "—"

    @admin.display(description="In Xero")
    def xero_link(self, obj: SyncJob) -> str:
        connection = XeroConnection.objects.filter(account_key=obj.account_key).first()
        link = (
            InvoiceLink.objects.of(connection)
            .filter(host_model=obj.host_model, host_id=obj.host_id)
            .first()
            if connection
            else None
        )
        if not link or not link.xero_invoice_id or not connection:
            return "Not in Xero yet"
        url = services.xero_invoice_url(
            connection.tenant_id, connection.short_code, link.xero_invoice_id
        )
        return format_html(
            '<a href="{}" target="_blank" rel="noopener">Open in Xero</a> ({})',
            url,
            link.xero_status,
        )

    @admin.action(
        description="Link to the invoice already in Xero (number in use), then retry",
        permissions=["retry"],
    )
    def link_to_existing_invoice(self, request: HttpRequest, queryset: Any) -> None:
        linked = invoices.link_to_existing(queryset)
        skipped = queryset.count() - linked
        self.message_user(
            request,
            f"{linked} job(s) linked to the Xero invoice holding their number and queued; "
            f"{skipped} skipped (no invoice in Xero holds their number).",
            messages.SUCCESS if linked else messages.WARNING,
        )

    @admin.action(
        description="Send again as a new Xero invoice (deleted in Xero)", permissions=["retry"]
    )
    def send_as_new_invoice(self, request: HttpRequest, queryset: Any) -> None:
        sent = invoices.send_again_as_new(queryset)
        skipped = queryset.count() - sent
        self.message_user(
            request,
            f"{sent} invoice(s) queued to be created again in Xero; {skipped} skipped (only "
            "invoices deleted in Xero can be sent again).",
            messages.SUCCESS if sent else messages.WARNING,
        )

    @admin.action(description="Retry the selected jobs now", permissions=["retry"])
    def retry(self, request: HttpRequest, queryset: Any) -> None:
        adapter = get_adapter(request)
        strays: dict[int, str] = {}
        for job in queryset:
            invoice = find_invoice(adapter, job.host_model, job.host_id)
            if invoice is not None and host_key(invoice) != (job.host_model, job.host_id):
                strays[job.pk] = host_key(invoice)[1]
        count = outbox.retry(queryset.exclude(pk__in=strays))
        self.message_user(request, f"{count} job(s) queued to run again.", messages.SUCCESS)
        if strays:
            # Running them would send the invoice's payments to Xero a second time.
            ids = ", ".join(sorted(set(strays.values())))
            self.message_user(
                request,
                f"{len(strays)} job(s) not retried: they name a CRM invoice by another "
                f"spelling of its id (invoice {ids}). Use Sync now on the invoice, and mark "
                "these resolved.",
                messages.WARNING,
            )

    @admin.action(description="Mark the selected jobs resolved", permissions=["resolve"])
    def mark_resolved(self, request: HttpRequest, queryset: Any) -> None:
        count = queryset.exclude(state=SyncJob.State.RUNNING).update(state=SyncJob.State.RESOLVED)
        self.message_user(request, f"{count} job(s) marked resolved.", messages.SUCCESS)


admin.site.register(SyncJob, SyncJobAdmin)


@admin.register(FailedSyncJob)
class FailedSyncJobAdmin(SyncJobAdmin):
    """What staff must look at: jobs Xero refused, and jobs that keep meeting trouble
    (``XERO_FAILING_ATTEMPTS`` tries, or ``XERO_FAILING_MINUTES`` of trouble) before they give
    up."""

    list_display = [
        "number",
        "account",
        "state",
        "reason",
        "attempts",
        "failing_since",
        "error_message",
        "meaning",
    ]

    def get_queryset(self, request: HttpRequest) -> Any:
        return health.troubled(super().get_queryset(request))

    @admin.display(description="In trouble since", ordering="failing_since")
    def failing_since(self, obj: SyncJob) -> Any:
        return getattr(obj, "failing_since", None) or obj.updated_at


@admin.register(InvoiceLink)
class InvoiceLinkAdmin(AccountLabelsMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """Each CRM invoice's invoice in Xero: status, totals on both sides, a link to open it."""

    list_display = [
        "invoice_number",
        "xero_status",
        "crm_total",
        "xero_total",
        "xero_amount_paid",
        "xero_amount_due",
        "total_mismatch",
        "drift_detail",
        "open_in_xero",
        "pushed_at",
    ]
    list_filter = ["xero_status", "total_mismatch", "drift", "tenant_id"]
    search_fields = ["invoice_number", "xero_invoice_id", "host_id"]
    actions = ["sync_now"]
    readonly_fields = [
        "account_key",
        "tenant_id",
        "host_model",
        "host_id",
        "invoice_number",
        "xero_invoice_id",
        "xero_status",
        "crm_total",
        "xero_total",
        "xero_amount_paid",
        "xero_amount_due",
        "total_mismatch",
        "drift",
        "drift_detail",
        "conflict_invoice_id",
        "unanswered_creates",
        "xero_updated_at",
        "read_at",
        "open_in_xero",
        "pushed_at",
    ]
    fields = readonly_fields

    @admin.display(description="Xero")
    def open_in_xero(self, obj: InvoiceLink) -> str:
        connection = connection_of(obj.account_key)
        if not connection or not obj.xero_invoice_id:
            return "—"
        # A link of an organisation connected before: its short code is not known any more.
        short_code = connection.short_code if connection.tenant_id == obj.tenant_id else ""
        url = services.xero_invoice_url(obj.tenant_id, short_code, obj.xero_invoice_id)
        return format_html('<a href="{}" target="_blank" rel="noopener">Open</a>', url)

    def has_sync_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("xero_integration.sync_invoicelink")

    @admin.action(description="Sync the selected invoices now", permissions=["sync"])
    def sync_now(self, request: HttpRequest, queryset: Any) -> None:
        adapter = get_adapter(request)
        queued: set[tuple[str, str, str]] = set()
        for link in queryset:
            # The invoice's own id, even for a link recorded under another spelling of it.
            invoice = find_invoice(adapter, link.host_model, link.host_id)
            key = host_key(invoice) if invoice is not None else (link.host_model, link.host_id)
            if (link.account_key, *key) in queued:
                continue
            number = adapter.invoice_number(invoice) if invoice is not None else ""
            outbox.sync_now(link.account_key, *key, number or link.invoice_number)
            queued.add((link.account_key, *key))
        self.message_user(request, f"{len(queued)} invoice(s) queued.", messages.SUCCESS)


@admin.register(PaymentLink)
class PaymentLinkAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "host_id",
        "invoice_host_id",
        "amount",
        "date",
        "xero_payment_id",
        "state",
        "origin",
        "tenant_id",
    ]
    list_filter = ["state", "origin"]
    search_fields = ["xero_payment_id", "host_id", "invoice_host_id"]


@admin.register(TaxRateMapping)
class TaxRateMappingAdmin(admin.ModelAdmin):
    """CRM taxes and the Xero tax rates they become; staff may choose the rate by hand."""

    list_display = [
        "name",
        "tax_type",
        "xero_name",
        "created_in_xero",
        "set_by_staff",
        "needs_review",
        "account_key",
        "tenant_id",
    ]
    list_filter = ["created_in_xero", "set_by_staff", "needs_review"]
    search_fields = ["name", "tax_type", "xero_name"]
    readonly_fields = [
        "account_key",
        "tenant_id",
        "host_id",
        "name",
        "xero_name",
        "created_in_xero",
        "set_by_staff",
        "rate",
        "needs_review",
    ]
    fields = [
        "account_key",
        "tenant_id",
        "host_id",
        "name",
        "tax_type",
        "xero_name",
        "created_in_xero",
        "set_by_staff",
        "rate",
        "needs_review",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def save_model(
        self, request: HttpRequest, obj: TaxRateMapping, form: Any, change: bool
    ) -> None:
        if "tax_type" in form.changed_data or obj.needs_review:
            # Staff chose (or confirmed) the rate for the CRM tax as it is now: the CRM's rate
            # is taken again at its next use.
            obj.tax_type = obj.tax_type.strip().upper()
            obj.set_by_staff = True
            obj.created_in_xero = False
            obj.rate = None
            obj.needs_review = False
            if "tax_type" in form.changed_data:
                obj.xero_name = ""
        super().save_model(request, obj, form, change)


class WebhookEventStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("waiting", "Waiting"), ("failing", "Failing"), ("given_up", "Given up")]

    def queryset(self, request: HttpRequest, queryset: Any) -> Any:
        waiting = queryset.filter(processed_at=None, given_up_at=None)
        if self.value() == "waiting":
            return waiting
        if self.value() == "failing":
            return waiting.exclude(attempts=0)
        if self.value() == "given_up":
            return queryset.exclude(given_up_at=None)
        return queryset


@admin.register(WebhookEvent)
class WebhookEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The events Xero's webhooks delivered, and any whose processing keeps failing."""

    list_display = [
        "received_at",
        "category",
        "event_type",
        "resource_id",
        "tenant_id",
        "processed_at",
        "attempts",
        "error",
        "given_up_at",
    ]
    list_filter = [WebhookEventStateFilter, "category"]
    search_fields = ["resource_id", "tenant_id", "error"]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
