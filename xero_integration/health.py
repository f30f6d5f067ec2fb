"""Where a CRM account's invoices stand with Xero: synced, sending, waiting or failed, and why.

Read by the tile, the settings page, the host's invoice list, admin's "Failed syncs" and the
alerts, so that each shows the same thing. A job that keeps meeting trouble counts as failing
before it gives up: after ``XERO_FAILING_ATTEMPTS`` tries, or ``XERO_FAILING_MINUTES`` of trouble.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db.models import DateTimeField, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from xero_integration import app_settings
from xero_integration.messages import Explanation, explain_job
from xero_integration.models import InvoiceLink, SyncJob, SyncLog, XeroConnection

State = SyncJob.State
Reason = SyncJob.Reason

#: Jobs on their way to Xero.
ACTIVE_STATES = (State.PENDING, State.RUNNING, State.WAITING)
#: Waits that are not failures however long they last: for a person to reconnect, or for
#: Xero's limits, which the integration respects by design.
PATIENT_REASONS = (Reason.RECONNECT, Reason.RATE_LIMIT)
#: The connection's fields a job fails for want of, and waits on from the user's point of view.
DEFAULT_ACCOUNT_FIELDS = ("revenue_account_code", "payment_account_id")
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


class SyncState:
    """An invoice's standing with Xero as users see it."""

    SYNCED = "synced"
    SENDING = "sending"
    WAITING = "waiting"
    FAILED = "failed"
    NOT_SENT = "not_sent"

    LABELS: dict[str, str | Promise] = {
        SYNCED: _("Synced"),
        SENDING: _("Sending"),
        WAITING: _("Waiting"),
        FAILED: _("Failed"),
        NOT_SENT: _("Not sent"),
    }


def with_failing_since(jobs: QuerySet[SyncJob]) -> QuerySet[SyncJob]:
    """Annotate ``failing_since``: when the job's current trouble began (its first run that
    did not end well since the last one that did), or None."""
    last_ok = (
        SyncLog.objects.filter(
            job=OuterRef(OuterRef("pk")), action="invoice_sync", outcome=SyncLog.Outcome.OK
        )
        .order_by("-created_at")
        .values("created_at")[:1]
    )
    first_trouble = (
        SyncLog.objects.filter(job=OuterRef("pk"), action="invoice_sync")
        .exclude(outcome=SyncLog.Outcome.OK)
        .filter(
            created_at__gt=Coalesce(Subquery(last_ok), Value(_EPOCH, output_field=DateTimeField()))
        )
        .order_by("created_at")
        .values("created_at")[:1]
    )
    return jobs.annotate(failing_since=Subquery(first_trouble, output_field=DateTimeField()))


def keeps_failing(now: datetime.datetime | None = None) -> Q:
    """Waiting jobs that keep meeting trouble (on a queryset annotated ``with_failing_since``)."""
    now = now or timezone.now()
    since = now - datetime.timedelta(minutes=app_settings.FAILING_MINUTES)
    return (
        Q(state=State.WAITING)
        & ~Q(reason__in=PATIENT_REASONS)
        & (Q(attempts__gte=app_settings.FAILING_ATTEMPTS) | Q(failing_since__lte=since))
    )


def troubled(jobs: QuerySet[SyncJob], now: datetime.datetime | None = None) -> QuerySet[SyncJob]:
    """The jobs staff must look at: those that failed, and those that keep failing."""
    return with_failing_since(jobs).filter(Q(state=State.FAILED) | keeps_failing(now))


def awaits_default_accounts(job: SyncJob, connection: XeroConnection | None) -> bool:
    """A job that failed only because the connection lacks a default account: to its users
    it waits for set-up (saving the accounts sends it again)."""
    if connection is None or job.state != State.FAILED or job.reason != Reason.SETUP:
        return False
    missing = {name for name in DEFAULT_ACCOUNT_FIELDS if not getattr(connection, name)}
    if "revenue_account_code" in missing:
        # Checked before anything else is sent: every set-up failure is this one.
        return True
    paths = {str(entry.get("path")) for entry in job.error_fields if isinstance(entry, dict)}
    return bool(missing & paths)


def _failing(job: SyncJob, now: datetime.datetime) -> bool:
    if job.state != State.WAITING or job.reason in PATIENT_REASONS:
        return False
    if job.attempts >= app_settings.FAILING_ATTEMPTS:
        return True
    since = getattr(job, "failing_since", None)
    return bool(since and since <= now - datetime.timedelta(minutes=app_settings.FAILING_MINUTES))


@dataclass
class InvoiceSync:
    """One invoice's standing with Xero: ``state`` (a SyncState), and why when it is not
    synced."""

    state: str
    job: SyncJob | None = None
    link: InvoiceLink | None = None
    explanation: Explanation | None = None
    #: The host's page of the invoice, where a page lists it (see ``host_invoice_url``).
    url: str = ""

    @property
    def label(self) -> str:
        return str(SyncState.LABELS[self.state])

    @property
    def sentence(self) -> str:
        """The plain sentence users read about it (empty when there is nothing to say)."""
        if self.explanation is not None:
            return self.explanation.user
        if self.state == SyncState.SENDING:
            return str(_("On its way to Xero."))
        if self.state == SyncState.SYNCED and self.link is not None and self.link.xero_status:
            return str(_("In Xero: {status}.")).format(status=self.link.xero_status.title())
        return ""


def invoice_sync(
    job: SyncJob | None,
    link: InvoiceLink | None,
    connection: XeroConnection | None,
    now: datetime.datetime | None = None,
) -> InvoiceSync:
    """Where one invoice stands, from its sync job and its link in the connected organisation."""
    now = now or timezone.now()
    in_xero = bool(link and link.xero_invoice_id)
    if job is None or job.state in (State.DONE, State.RESOLVED):
        return InvoiceSync(SyncState.SYNCED if in_xero else SyncState.NOT_SENT, job, link)
    if job.state in (State.PENDING, State.RUNNING):
        return InvoiceSync(SyncState.SENDING, job, link)
    explanation = explain_job(job)
    if job.state == State.WAITING:
        state = SyncState.FAILED if _failing(job, now) else SyncState.WAITING
        if explanation.code == "settling":
            state = SyncState.SENDING
        return InvoiceSync(state, job, link, explanation)
    if awaits_default_accounts(job, connection):
        return InvoiceSync(SyncState.WAITING, job, link, explain_setup_wait())
    return InvoiceSync(SyncState.FAILED, job, link, explanation)


def explain_setup_wait() -> Explanation:
    """What users read about an invoice that waits for the default accounts."""
    from xero_integration.messages import explain

    return explain(
        Reason.SETUP,
        "Choose the revenue account for invoice lines in Settings → Integrations → Xero.",
    )


def invoice_syncs(
    account_key: str, host_model: str, host_ids: Iterable[str]
) -> dict[str, InvoiceSync]:
    """Where each of these host invoices stands (two queries, whatever their number)."""
    ids = [str(host_id) for host_id in host_ids]
    connection = XeroConnection.objects.filter(account_key=account_key).first()
    if connection is None or not ids:
        return {}
    jobs = {
        job.host_id: job
        for job in with_failing_since(
            SyncJob.objects.filter(account_key=account_key, host_model=host_model, host_id__in=ids)
        )
    }
    links = {
        link.host_id: link
        for link in InvoiceLink.objects.of(connection).filter(
            host_model=host_model, host_id__in=ids
        )
    }
    now = timezone.now()
    return {
        host_id: invoice_sync(jobs.get(host_id), links.get(host_id), connection, now)
        for host_id in ids
    }


@dataclass
class AccountHealth:
    """A CRM account's connection and its invoices' standing: counts and the first few."""

    connection: XeroConnection | None
    sending: int = 0
    waiting: int = 0
    failed: int = 0
    #: The first invoices that failed and that wait, with the plain sentence of each.
    failures: list[InvoiceSync] = field(default_factory=list)
    waits: list[InvoiceSync] = field(default_factory=list)

    @property
    def needs_default_accounts(self) -> bool:
        """Connected, the chart of accounts is read, and a default account is not chosen."""
        connection = self.connection
        return bool(
            connection
            and connection.is_connected
            and connection.accounts_loaded_at
            and not all(getattr(connection, name) for name in DEFAULT_ACCOUNT_FIELDS)
        )

    @property
    def tone(self) -> str:
        """``ok``, ``attention`` (something waits for someone) or ``problem``."""
        connection = self.connection
        if connection is None or connection.status == "disconnected":
            return "attention" if self.waiting else "ok"
        if connection.status == "needs_reconnect" or self.failed:
            return "problem"
        if self.needs_default_accounts:
            return "attention"
        return "ok"


def account_health(
    account_key: str, connection: XeroConnection | None = None, listed: int = 10
) -> AccountHealth:
    """How the account's invoices stand with Xero, counted in the database; the first
    ``listed`` failures and waits come with their sentences."""
    if connection is None:
        connection = XeroConnection.objects.filter(account_key=account_key).first()
    health = AccountHealth(connection)
    now = timezone.now()
    jobs = with_failing_since(
        SyncJob.objects.filter(account_key=account_key, state__in=(*ACTIVE_STATES, State.FAILED))
    )
    failing = keeps_failing(now)
    health.sending = jobs.filter(state__in=(State.PENDING, State.RUNNING)).count()
    waiting = jobs.filter(Q(state=State.WAITING) & ~failing)
    failed = jobs.filter(Q(state=State.FAILED) | failing)
    # Set-up failures are few; which of them only wait for the default accounts is decided
    # job by job.
    setup = [
        job
        for job in jobs.filter(state=State.FAILED, reason=Reason.SETUP).only(
            "pk", "state", "reason", "error_fields"
        )
        if awaits_default_accounts(job, connection)
    ]
    setup_ids = [job.pk for job in setup]
    health.waiting = waiting.count() + len(setup_ids)
    health.failed = failed.exclude(pk__in=setup_ids).count()

    def first(queryset: QuerySet[SyncJob]) -> list[InvoiceSync]:
        return [
            invoice_sync(job, None, connection, now)
            for job in queryset.order_by("-updated_at", "-pk")[:listed]
        ]

    health.failures = first(failed.exclude(pk__in=setup_ids))
    health.waits = first(jobs.filter((Q(state=State.WAITING) & ~failing) | Q(pk__in=setup_ids)))
    return health


def host_invoice_url(job: SyncJob) -> str:
    """The host's page of a job's invoice, when the host's model has ``get_absolute_url``."""
    from xero_integration.adapters import find_invoice, get_adapter

    invoice: Any = find_invoice(get_adapter(), job.host_model, job.host_id)
    get_url = getattr(invoice, "get_absolute_url", None)
    return get_url() if callable(get_url) else ""
