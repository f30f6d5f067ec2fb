"""Pushing a host invoice (and its payments) to Xero: the sync job's run.

One run brings Xero to the invoice's current state: contact, tax rates, currency, the invoice
(created once, then updated only when its payload changed), status, payments, void or delete.
Every write carries an Idempotency-Key tied to the job's change and payload; a write whose
outcome is unknown is reconciled (by invoice number, or by the invoice's payments) before it is
made again. Transient trouble makes the job wait and retry; Xero's refusals fail it with
Xero's message until staff fix the data and retry.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from xero_integration import app_settings, connect, contacts
from xero_integration.adapters import DefaultXeroAdapter, get_adapter
from xero_integration.calllog import CallRecorder
from xero_integration.data import HostInvoice, HostPayment, InvoiceStatus
from xero_integration.exceptions import ConnectionNotReady
from xero_integration.models import (
    ConnectionStatus,
    InvoiceLink,
    PaymentLink,
    SyncJob,
    SyncLog,
    TaxRateMapping,
    XeroConnection,
)
from xero_integration.sync import invoices as rules
from xero_integration.xero.client import XeroClient
from xero_integration.xero.errors import (
    FieldError,
    Forbidden,
    RateLimited,
    ThrottledLocally,
    ValidationError,
    XeroError,
    XeroTransportError,
    element_errors,
)

logger = logging.getLogger(__name__)

#: A running job not finished within this time is taken to have lost its worker; each write
#: renews it.
LEASE = timedelta(minutes=5)
#: A batch run stops starting new jobs after this long and hands the rest back.
RUN_LIMIT = timedelta(minutes=2)
#: How many times a refusal caused by out-of-date reference data is retried after a refresh.
STALE_RETRIES = 2
#: Xero recommends about 50 elements per batch call.
BATCH_SIZE = 50
BACKOFF_CAP = 3600.0
DUPLICATE_NUMBER = "Invoice # must be unique."
CURRENCY_HELP = (
    "Organisation is not subscribed to currency {code}. The invoice's currency is not enabled "
    "in Xero and could not be added: enable multi-currency in your Xero plan, or add {code} in "
    "Xero (Settings → Currencies); the invoice is sent again when you retry."
)


class JobFailed(Exception):
    """Xero refused, or the data cannot go to Xero: kept on the job until staff act."""

    def __init__(self, message: str, fields: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.fields = fields or []


class JobWaits(Exception):
    """Try again later (after ``seconds``, or when the connection is back if None)."""

    def __init__(self, message: str, seconds: float | None, ambiguous: bool = False) -> None:
        super().__init__(message)
        self.seconds = seconds
        self.ambiguous = ambiguous


def _fields(errors: list[FieldError]) -> list[dict[str, str]]:
    return [{"path": error.path, "message": error.message} for error in errors]


# ---- claiming and finishing ---------------------------------------------------------------


def claim(account_key: str, host_model: str, host_id: str) -> SyncJob | None:
    """Take the job for this worker if it is due: pending, waiting and past its time, or
    running with an expired lease (its worker died). Only one worker wins."""
    now = timezone.now()
    due = (
        Q(state=SyncJob.State.PENDING)
        | Q(state=SyncJob.State.WAITING, not_before__lte=now)
        | Q(state=SyncJob.State.WAITING, not_before=None)
        | Q(state=SyncJob.State.RUNNING, lease_until__lt=now)
    )
    jobs = SyncJob.objects.filter(account_key=account_key, host_model=host_model, host_id=host_id)
    token = uuid.uuid4().hex
    claimed = jobs.filter(due).update(
        state=SyncJob.State.RUNNING, lease_until=now + LEASE, updated_at=now, claim_token=token
    )
    if not claimed:
        return None
    job = jobs.first()
    return job if job is not None and job.claim_token == token else None


class LostClaim(Exception):
    """The job's lease ran out and another worker took it over: this worker stops touching it."""


def _ours(job: SyncJob):
    return SyncJob.objects.filter(
        pk=job.pk, claim_token=job.claim_token, state=SyncJob.State.RUNNING
    )


def keep_claim(job: SyncJob) -> None:
    """Renew the job's lease before a write; raise LostClaim when another worker has it."""
    if not _ours(job).update(lease_until=timezone.now() + LEASE):
        raise LostClaim(f"Sync job {job.pk} was taken over by another worker.")


def _release(job: SyncJob) -> None:
    """Hand a claimed job back untouched (this run took long enough)."""
    if _ours(job).update(state=SyncJob.State.PENDING, lease_until=None):
        _redispatch(job)


def _finish(job: SyncJob, seq: int) -> None:
    now = timezone.now()
    done = (
        _ours(job)
        .filter(change_seq=seq)
        .update(
            state=SyncJob.State.DONE,
            done_seq=seq,
            error="",
            error_fields=[],
            attempts=0,
            ambiguous=False,
            lease_until=None,
            not_before=None,
            updated_at=now,
        )
    )
    if not done and _ours(job).update(
        state=SyncJob.State.PENDING, lease_until=None, ambiguous=False, updated_at=now
    ):
        # The invoice changed while it was being pushed: push it again.
        _redispatch(job)


def _redispatch(job: SyncJob) -> None:
    from xero_integration.tasks import dispatch

    dispatch("xero_integration.tasks.push_invoice", job.account_key, job.host_model, job.host_id)


def _fail(job: SyncJob, message: str, fields: list[dict[str, str]]) -> None:
    _ours(job).update(
        state=SyncJob.State.FAILED,
        error=message,
        error_fields=fields,
        lease_until=None,
        updated_at=timezone.now(),
    )


def _wait(job: SyncJob, reason: JobWaits) -> None:
    now = timezone.now()
    not_before = None if reason.seconds is None else now + timedelta(seconds=reason.seconds)
    _ours(job).update(
        state=SyncJob.State.WAITING,
        error=str(reason),
        not_before=not_before,
        lease_until=None,
        attempts=job.attempts + 1,
        ambiguous=job.ambiguous or reason.ambiguous,
        updated_at=now,
    )


def backoff(attempts: int) -> float:
    """Capped exponential backoff with jitter, for a job that keeps meeting trouble."""
    step = min(BACKOFF_CAP, app_settings.RETRY_BASE_SECONDS * (2 ** min(attempts, 12)))
    return step * (0.5 + random.random() / 2)


# ---- the run ------------------------------------------------------------------------------


def run(account_key: str, host_model: str, host_id: str) -> None:
    """Run the sync job of one host invoice, with any other jobs of its organisation that are
    due (up to a batch): their new invoices and payments go to Xero in shared calls."""
    run_batch(account_key, first=(host_model, host_id))


def claim_batch(
    account_key: str, first: tuple[str, str] | None = None, limit: int = BATCH_SIZE
) -> list[SyncJob]:
    """Claim up to ``limit`` due jobs of one CRM account, ``first`` first."""
    jobs: list[SyncJob] = []
    if first is not None:
        job = claim(account_key, *first)
        if job is not None:
            jobs.append(job)
    now = timezone.now()
    due = (
        Q(state=SyncJob.State.PENDING)
        | Q(state=SyncJob.State.WAITING, not_before__lte=now)
        | Q(state=SyncJob.State.RUNNING, lease_until__lt=now)
    )
    if XeroConnection.objects.filter(
        account_key=account_key, status=ConnectionStatus.CONNECTED
    ).exists():
        # Jobs that waited for a reconnect are due once it happened.
        due |= Q(state=SyncJob.State.WAITING, not_before=None)
    candidates = (
        SyncJob.objects.filter(account_key=account_key)
        .filter(due)
        .exclude(pk__in=[j.pk for j in jobs])
        .order_by("created_at", "pk")
        .values_list("host_model", "host_id")[: max(0, limit - len(jobs))]
    )
    for host_model, host_id in list(candidates):
        job = claim(account_key, host_model, host_id)
        if job is not None:
            jobs.append(job)
    return jobs


@dataclass
class Batch:
    """Creations collected from several jobs, sent in shared calls (summarizeErrors=false)."""

    invoices: list[tuple[Any, HostInvoice, InvoiceLink, dict[str, Any], str]] = field(
        default_factory=list
    )
    payments: list[tuple[Any, HostPayment, dict[str, Any]]] = field(default_factory=list)


class Deferred(Exception):
    """The job's create waits for the batch call."""


def run_batch(account_key: str, first: tuple[str, str] | None = None) -> int:
    """Claim and run the due jobs of one CRM account; return how many ran."""
    jobs = claim_batch(account_key, first)
    if not jobs:
        return 0
    started = time.monotonic()
    recorder = CallRecorder()
    connection = XeroConnection.objects.filter(account_key=account_key).first()
    outcomes: dict[int, Exception | None] = {}
    batch = Batch()
    client: XeroClient | None = None
    adapter = get_adapter()
    preloaded: dict[int, tuple[Any, HostInvoice]] = {}
    contact_ids: dict[str, str] = {}
    if connection is not None and connection.is_connected and len(jobs) > 1:
        client = connect.api_client(connection, recorder)
        preloaded, contact_ids = _prepare(jobs, connection, adapter, client)
    for job in jobs:
        if time.monotonic() - started > RUN_LIMIT.total_seconds():
            # Well inside the lease: the rest go back to the queue rather than risk it.
            outcomes[job.pk] = Released()
            continue
        try:
            if connection is None or connection.status == ConnectionStatus.DISCONNECTED:
                raise JobFailed("This CRM account is not connected to Xero.")
            if not connection.is_connected:
                raise JobWaits("Waiting for the Xero connection to be reconnected.", None)
            push = Push(job, connection, adapter, recorder, batch=batch)
            push.preloaded = preloaded.get(job.pk)
            push.contact_ids = contact_ids
            if client is not None:
                push._client = client
            try:
                push.run()
            finally:
                client = getattr(push, "_client", client)
            outcomes[job.pk] = None
        except Deferred:
            outcomes[job.pk] = None
        except (JobFailed, JobWaits, LostClaim) as outcome:
            outcomes[job.pk] = outcome
        except Exception as exc:  # a bug must leave the job retryable and readable, not lost
            logger.exception("Sync job %s crashed", job.pk)
            outcomes[job.pk] = JobWaits(
                f"Unexpected error: {exc.__class__.__name__}: {exc}", backoff(job.attempts)
            )
    if batch.invoices or batch.payments:
        try:
            _send_batch(batch, outcomes)
        except Exception as exc:  # as above: nothing is lost, everything is retried
            logger.exception("Batch for account %s crashed", account_key)
            for push, *_ in [*batch.invoices, *batch.payments]:
                outcomes[push.job.pk] = JobWaits(
                    f"Unexpected error: {exc}", backoff(0), ambiguous=True
                )
    batch_calls = recorder.drain()
    for job in jobs:
        outcome = outcomes.get(job.pk)
        calls = batch_calls if job is jobs[0] else []
        if isinstance(outcome, LostClaim):
            continue  # another worker runs it now
        if isinstance(outcome, Released):
            _release(job)
            continue
        if isinstance(outcome, JobFailed):
            _fail(job, str(outcome), outcome.fields)
            outcome_name, message = SyncLog.Outcome.FAILED, str(outcome)
        elif isinstance(outcome, JobWaits):
            _wait(job, outcome)
            outcome_name, message = SyncLog.Outcome.INFO, str(outcome)
        else:
            _finish(job, job.change_seq)
            outcome_name, message = SyncLog.Outcome.OK, ""
        try:
            _log(job, connection, calls, outcome_name, message)
        except Exception:  # the jobs' states are saved; a log that cannot be written is not fatal
            logger.exception("Could not write the sync log of job %s", job.pk)
    return len(jobs)


class Released(Exception):
    """The run handed this job back unstarted."""


def _prepare(
    jobs: list[SyncJob], connection: XeroConnection, adapter: DefaultXeroAdapter, client: Any
) -> tuple[dict[int, tuple[Any, HostInvoice]], dict[str, str]]:
    """Read the batch's invoices once, and settle their contacts in a few shared calls. An
    invoice that cannot be read here is left to its own run, which reports the problem."""
    preloaded: dict[int, tuple[Any, HostInvoice]] = {}
    hosts = {}
    for job in jobs:
        if job.deleted:
            continue
        try:
            instance = adapter.load_invoice(job.host_model, job.host_id)
            if instance is None or not adapter.should_sync(instance):
                continue
            data = adapter.to_invoice(instance)
        except Exception:  # reported by the job's own run
            logger.exception("Could not read invoice %s for a batch", job.host_id)
            continue
        preloaded[job.pk] = (instance, data)
        kept_back = data.status == InvoiceStatus.DRAFT and not app_settings.SYNC_DRAFTS
        if data.status != InvoiceStatus.VOID and not kept_back:
            hosts.setdefault(data.contact.host_id, data.contact)
    contact_ids: dict[str, str] = {}
    if len(hosts) > 1:
        try:
            contact_ids = contacts.xero_contact_ids(connection, client, list(hosts.values()))
        except Exception:  # each invoice settles its contact itself, and meets the trouble there
            logger.exception("Could not settle the contacts of a batch together")
            contact_ids = {}
    return preloaded, contact_ids


def _claimed(entries: list, outcomes: dict[int, Exception | None]) -> list:
    """The entries whose jobs are still this worker's (leases renewed); the others dropped."""
    kept = []
    for entry in entries:
        try:
            keep_claim(entry[0].job)
        except LostClaim as lost:
            outcomes[entry[0].job.pk] = lost
            continue
        kept.append(entry)
    return kept


def _send_batch(batch: Batch, outcomes: dict[int, Exception | None]) -> None:
    """The shared calls: new invoices (then their payments), results matched by position; one
    refused invoice fails alone."""
    entries = _claimed(batch.invoices, outcomes)
    if entries:
        first = entries[0][0]
        payloads = [entry[3] for entry in entries]
        for push, *_ in entries:
            push.mark_ambiguous()
        key = _batch_key([entry[0] for entry in entries], "create", payloads)
        try:
            results = first.guarded(
                lambda: first.client.put_invoices(
                    payloads, summarize_errors=False, idempotency_key=key
                )
            )
        except JobFailed as outcome:
            if len(entries) == 1:
                outcomes[first.job.pk] = outcome
            else:
                # The whole call was refused (one unreadable invoice, or too big): each alone.
                _send_alone(entries, outcomes)
            results = None
        except JobWaits as outcome:
            for push, *_ in entries:
                outcomes[push.job.pk] = outcome
            return
        if results is not None and len(results) != len(entries):
            for push, *_ in entries:
                outcomes[push.job.pk] = JobWaits(
                    "Xero's answer did not list every invoice sent; checking before sending again.",
                    backoff(0),
                    ambiguous=True,
                )
            return
        for (push, invoice, link, _payload, digest), result in zip(
            entries, results or [], strict=True
        ):
            try:
                push.guarded(
                    lambda p=push, i=invoice, k=link, r=result, d=digest: p.created(k, i, r, d)
                )
                outcomes[push.job.pk] = None
            except (JobFailed, JobWaits) as outcome:
                outcomes[push.job.pk] = outcome
    payments = [entry for entry in batch.payments if outcomes.get(entry[0].job.pk) is None]
    payments = _claimed(payments, outcomes)
    for start in range(0, len(payments), BATCH_SIZE):
        chunk = payments[start : start + BATCH_SIZE]
        # Payments of invoices created in this batch learn their InvoiceID only now.
        bodies = [{**body, "Invoice": {"InvoiceID": push.link_id()}} for push, _, body in chunk]
        first = chunk[0][0]
        for push, *_ in chunk:
            push.mark_ambiguous()
        key = _batch_key([entry[0] for entry in chunk], "payments", bodies)
        try:
            results = first.guarded(
                lambda b=bodies, k=key, f=first: f.client.put_payments(
                    b, summarize_errors=False, idempotency_key=k
                )
            )
        except (JobFailed, JobWaits) as outcome:
            for push, *_ in chunk:
                outcomes[push.job.pk] = outcome
            continue
        if len(results) != len(chunk):
            for push, *_ in chunk:
                outcomes[push.job.pk] = JobWaits(
                    "Xero's answer did not list every payment sent; checking before sending again.",
                    backoff(0),
                    ambiguous=True,
                )
            continue
        for (push, payment, _body), result in zip(chunk, results, strict=True):
            errors = element_errors(result)
            if errors:
                outcomes[push.job.pk] = JobFailed(
                    "; ".join(str(e) for e in errors), _fields(errors)
                )
            elif not result.get("PaymentID"):
                outcomes[push.job.pk] = JobWaits(
                    "Xero's answer named no payment; checking before sending again.",
                    backoff(0),
                    ambiguous=True,
                )
            else:
                push.save_payment(payment, str(result["PaymentID"]))
                push.update_amount_due()


def _send_alone(entries: list, outcomes: dict[int, Exception | None]) -> None:
    """Send each invoice of a refused batch on its own, so that one bad invoice fails alone."""
    for push, invoice, link, payload, digest in entries:
        try:
            results = push.guarded(
                lambda p=push, body=payload: p.client.put_invoices(
                    [body], summarize_errors=False, idempotency_key=p.key("create", body)
                )
            )
            push.guarded(
                lambda p=push, i=invoice, k=link, r=results, d=digest: p.created(
                    k, i, r[0] if r else {}, d
                )
            )
            outcomes[push.job.pk] = None
        except (JobFailed, JobWaits, LostClaim) as outcome:
            outcomes[push.job.pk] = outcome


def _batch_key(pushes: list[Any], operation: str, payload: Any) -> str:
    parts = "|".join(f"{p.job.pk}:{p.job.change_seq}:{p.job.key_generation}" for p in pushes)
    digest = hashlib.sha256(
        f"{parts}|{operation}|{rules.payload_hash({'p': payload})}".encode()
    ).hexdigest()
    return f"batch-{digest[:58]}"


def _log(
    job: SyncJob,
    connection: XeroConnection | None,
    calls: list,
    outcome: str,
    message: str,
) -> None:
    rows = [
        SyncLog(
            connection=connection,
            account_key=job.account_key,
            job=job,
            host_id=job.host_id,
            action=f"{call.method} {call.path}"[:255],
            outcome=SyncLog.Outcome.OK if call.status < 400 else SyncLog.Outcome.FAILED,
            http_status=call.status or None,
            correlation_id=call.correlation_id,
            message=f"Invoice {job.number}",
            details={"query": call.query} if call.query else {},
            request_body=call.request_body,
            response_body=call.response_body,
        )
        for call in calls
    ]
    if message or not rows:
        rows.append(
            SyncLog(
                connection=connection,
                account_key=job.account_key,
                job=job,
                host_id=job.host_id,
                action="invoice_sync",
                outcome=outcome,
                message=f"Invoice {job.number}: {message}" if message else f"Invoice {job.number}",
            )
        )
    SyncLog.objects.bulk_create(rows)


@dataclass
class Push:
    job: SyncJob
    connection: XeroConnection
    adapter: DefaultXeroAdapter
    recorder: CallRecorder
    batch: Batch | None = None

    def __post_init__(self) -> None:
        # A write of an earlier run whose outcome is unknown: look in Xero before writing.
        self.reconcile = self.job.ambiguous
        self.preloaded: tuple[Any, HostInvoice] | None = None
        self.contact_ids: dict[str, str] = {}

    def run(self) -> None:
        self.guarded(self._run)

    def guarded(self, work: Any) -> Any:
        """Run ``work``, turning Xero's answers into the job's outcome (fail, or wait)."""
        try:
            return work()
        except ConnectionNotReady as exc:
            raise JobWaits(str(exc), None) from exc
        except (ThrottledLocally, RateLimited) as exc:
            raise JobWaits(f"Waiting for Xero's rate limit: {exc}", exc.retry_after or 60) from exc
        except Forbidden as exc:
            # Still connected: a passing refusal, tried again later; gone: wait for reconnect.
            still = connect.confirm_still_connected(self.connection)
            raise JobWaits(
                f"Xero refused access to the organisation: {exc}",
                backoff(self.job.attempts) if still else None,
            ) from exc
        except contacts.ContactRejected as exc:
            raise JobFailed(f"Xero refused the contact: {exc}") from exc
        except ValidationError as exc:
            self.refresh_if_stale(exc.errors)
            raise JobFailed(
                "; ".join(str(e) for e in exc.errors) or str(exc), _fields(exc.errors)
            ) from exc
        except XeroTransportError as exc:
            raise JobWaits(f"{exc}", backoff(self.job.attempts), ambiguous=True) from exc
        except XeroError as exc:
            if exc.retryable:
                raise JobWaits(str(exc), backoff(self.job.attempts), ambiguous=True) from exc
            raise JobFailed(str(exc)) from exc

    # -- plumbing --------------------------------------------------------------------------

    @property
    def client(self) -> XeroClient:
        if not hasattr(self, "_client"):
            self._client = connect.api_client(self.connection, self.recorder)
        return self._client

    def key(self, operation: str, payload: Any) -> str:
        """One Idempotency-Key per change of the invoice, operation and payload: a retry of this
        attempt repeats it (Xero replays the answer), a new change gets a new one. Asked for
        before every write, so it also renews this worker's claim on the job."""
        keep_claim(self.job)
        digest = hashlib.sha256(
            f"{self.connection.tenant_id}|{self.job.host_model}|{self.job.host_id}|"
            f"{self.job.change_seq}|{self.job.key_generation}|{operation}|"
            f"{rules.payload_hash({'p': payload})}".encode()
        ).hexdigest()
        return f"inv-{digest[:60]}"

    def organisation_key(self, operation: str, payload: Any) -> str:
        """A key for a write that belongs to the organisation rather than to one invoice (a
        tax rate): every job making the same one sends the same key."""
        keep_claim(self.job)
        digest = hashlib.sha256(
            f"{self.connection.tenant_id}|{self.job.key_generation}|{operation}|"
            f"{rules.payload_hash({'p': payload})}".encode()
        ).hexdigest()
        return f"org-{digest[:60]}"

    def link(self) -> InvoiceLink:
        link, _ = InvoiceLink.objects.get_or_create(
            account_key=self.job.account_key,
            host_model=self.job.host_model,
            host_id=self.job.host_id,
        )
        return link

    def note(self, action: str, outcome: str, message: str) -> None:
        """A sync log entry about this job's invoice."""
        SyncLog.objects.create(
            connection=self.connection,
            account_key=self.job.account_key,
            job=self.job,
            host_id=self.job.host_id,
            action=action,
            outcome=outcome,
            message=message,
        )

    def mark_ambiguous(self) -> None:
        # Set before a create: if this worker dies mid-call, the next run looks before writing.
        if not _ours(self.job).update(ambiguous=True, lease_until=timezone.now() + LEASE):
            raise LostClaim(f"Sync job {self.job.pk} was taken over by another worker.")
        self.job.ambiguous = True

    # -- the work --------------------------------------------------------------------------

    def _run(self) -> None:
        job, adapter = self.job, self.adapter
        link = InvoiceLink.objects.filter(
            account_key=job.account_key, host_model=job.host_model, host_id=job.host_id
        ).first()
        if self.preloaded is not None:
            instance, preloaded = self.preloaded
        else:
            instance = None if job.deleted else adapter.load_invoice(job.host_model, job.host_id)
            preloaded = None
        if instance is None:
            # Deleted in the CRM: voided in Xero (deleted if still a draft there).
            link = self.reconciled(link, job.number)
            if link and link.xero_invoice_id:
                self.remove(link, "The invoice was deleted in the CRM.")
            return
        if not adapter.should_sync(instance):
            return
        invoice = preloaded or adapter.to_invoice(instance)
        if invoice.status == InvoiceStatus.VOID:
            link = self.reconciled(link, invoice.number)
            if link and link.xero_invoice_id:
                self.remove(link, "The invoice was voided in the CRM.")
            return
        if (
            invoice.status == InvoiceStatus.DRAFT
            and not app_settings.SYNC_DRAFTS
            and not (link and link.xero_invoice_id)
        ):
            return
        try:
            rules.check_sendable(invoice)
        except rules.InvoiceNotSendable as exc:
            raise JobFailed(str(exc), [{"path": exc.field, "message": str(exc)}]) from exc
        if not self.connection.revenue_account_code:
            raise JobFailed(
                "Choose the revenue account for invoice lines in Settings → Integrations → "
                "Xero, then retry.",
                [{"path": "revenue_account_code", "message": "No revenue account chosen."}],
            )
        contact_id = self.contact_ids.get(invoice.contact.host_id) or contacts.xero_contact_id(
            self.connection, self.client, invoice.contact
        )
        tax_types = self.tax_types(invoice)
        self.ensure_currency(invoice.currency)
        payload = rules.invoice_payload(
            invoice, contact_id, self.connection.revenue_account_code, tax_types
        )
        link = self.push_invoice(link, invoice, payload)
        if link.xero_status in ("AUTHORISED", "PAID") or invoice.payments:
            self.push_payments(link, invoice)

    def push_invoice(
        self, link: InvoiceLink | None, invoice: HostInvoice, payload: dict[str, Any]
    ) -> InvoiceLink:
        digest = rules.payload_hash(payload)
        if link and link.xero_invoice_id and link.payload_hash == digest:
            return link  # unchanged: no call
        link = link or self.link()
        contact_id = payload["Contact"]["ContactID"]
        if not link.xero_invoice_id and self.reconcile:
            self.adopt_existing(link, [link.invoice_number, invoice.number], contact_id)
        if not link.xero_invoice_id:
            if link.invoice_number != invoice.number:
                # Remembered before the create, to find it by after an unanswered call even if
                # the number is edited meanwhile.
                link.invoice_number = invoice.number
                link.save(update_fields=["invoice_number"])
            if self.batch is not None:
                self.batch.invoices.append((self, invoice, link, payload, digest))
                raise Deferred
            self.mark_ambiguous()
            results = self.client.put_invoices(
                [payload], summarize_errors=False, idempotency_key=self.key("create", payload)
            )
            if self.created(link, invoice, results[0] if results else {}, digest):
                return link
        if link.xero_status in ("VOIDED", "DELETED"):
            raise JobFailed(
                f"The invoice is {link.xero_status.lower()} in Xero and cannot be changed there; "
                "create a new invoice in the CRM instead."
            )
        update = {"InvoiceID": link.xero_invoice_id, **payload}
        if link.xero_status == "PAID" or (
            link.xero_status == "AUTHORISED" and payload["Status"] == "AUTHORISED"
        ):
            update.pop("Status")
        result = self.client.post_invoice(update, idempotency_key=self.key("update", update))
        self.save_result(link, invoice, result, digest)
        return link

    def created(
        self, link: InvoiceLink, invoice: HostInvoice, result: dict[str, Any], digest: str
    ) -> bool:
        """Take the answer to a create; False when the invoice existed already (adopted, and
        to be updated)."""
        errors = element_errors(result)
        if any(e.message == DUPLICATE_NUMBER for e in errors):
            # Made before by a run whose answer was lost: take it and update it.
            self.adopt_existing(
                link, [invoice.number], str(result.get("Contact", {}).get("ContactID") or "")
            )
            if not link.xero_invoice_id:
                raise JobFailed(DUPLICATE_NUMBER, _fields(errors))
            if self.batch is not None:
                # Its update and payments follow on the job's next run, at once.
                raise JobWaits("Found the invoice made earlier; updating it next.", 0)
            return False
        if errors:
            self.refresh_if_stale(errors)
            raise JobFailed("; ".join(str(e) for e in errors), _fields(errors))
        if not result.get("InvoiceID"):
            raise JobWaits(
                "Xero's answer named no invoice; checking before sending again.",
                backoff(self.job.attempts),
                ambiguous=True,
            )
        self.save_result(link, invoice, result, digest)
        self.invoice_link = link
        if self.batch is not None and invoice.payments and link.xero_status == "AUTHORISED":
            self.push_payments(link, invoice)
        return True

    def refresh_if_stale(self, errors: list[FieldError]) -> None:
        """When Xero's refusal says our cached reference data is out of date (a tax rate or an
        account changed in Xero, a currency unknown), forget that data and try again soon; the
        next run reads it afresh. Staff's own tax mappings are kept. Gives up after a few tries,
        leaving Xero's message on the job."""
        if self.job.attempts >= STALE_RETRIES:
            return
        text = " ".join(error.message for error in errors)
        stale = []
        if "Tax rate must be valid" in text or "TaxType code" in text:
            TaxRateMapping.objects.filter(
                account_key=self.job.account_key, set_by_staff=False
            ).delete()
            stale.append("tax rates")
        if "not subscribed to currency" in text:
            XeroConnection.objects.filter(pk=self.connection.pk).update(currencies=[])
            stale.append("currencies")
        if "is not a valid code for this document" in text or "Account must be valid" in text:
            connect.load_reference_data(self.connection.pk)
            stale.append("accounts")
        if stale:
            # New keys for the next try: Xero would replay its refusal for the old ones.
            SyncJob.objects.filter(pk=self.job.pk).update(key_generation=F("key_generation") + 1)
            raise JobWaits(f"Xero's {' and '.join(stale)} changed; reading them again. ({text})", 1)

    def link_id(self) -> str:
        return self.invoice_link.xero_invoice_id

    def reconciled(self, link: InvoiceLink | None, number: str) -> InvoiceLink | None:
        """After an unanswered create, the invoice Xero may hold for this one (to void it)."""
        if self.reconcile and not (link and link.xero_invoice_id):
            link = link or self.link()
            self.adopt_existing(link, [link.invoice_number, number], "")
        return link

    def adopt_existing(self, link: InvoiceLink, numbers: list[str], contact_id: str) -> None:
        """Find the invoice an earlier, unanswered create may have made, by its number. One of
        another contact is someone else's invoice of the same number: never taken over."""
        wanted = [n for n in dict.fromkeys(numbers) if n and "," not in n]
        if not wanted:
            return
        found = [
            i
            for i in self.client.invoices_by_numbers(wanted)
            if i.get("Type") == "ACCREC" and i.get("Status") != "DELETED"
        ]
        ours = [
            i
            for i in found
            if not contact_id or (i.get("Contact") or {}).get("ContactID") == contact_id
        ]
        if ours:
            self.save_result(link, None, ours[0], "")
        elif found:
            raise JobFailed(
                f"Invoice number {found[0].get('InvoiceNumber')} is already used by another "
                "invoice in Xero (for another contact). Give the CRM invoice another number, or "
                "remove the other invoice in Xero, then retry.",
                [{"path": "number", "message": "Invoice number already used in Xero."}],
            )

    def save_result(
        self, link: InvoiceLink, invoice: HostInvoice | None, result: dict[str, Any], digest: str
    ) -> None:
        link.xero_invoice_id = str(result.get("InvoiceID") or link.xero_invoice_id)
        link.invoice_number = str(result.get("InvoiceNumber") or link.invoice_number)
        link.xero_status = str(result.get("Status") or link.xero_status)
        link.payload_hash = digest
        if result.get("Total") is not None:
            link.xero_total = rules.cents(Decimal(str(result["Total"])))
        if result.get("AmountDue") is not None:
            link.xero_amount_due = rules.cents(Decimal(str(result["AmountDue"])))
        if invoice is not None:
            link.crm_total = rules.cents(invoice.total)
        link.total_mismatch = bool(
            link.crm_total is not None
            and link.xero_total is not None
            and link.crm_total != link.xero_total
        )
        link.pushed_at = timezone.now()
        link.save()
        if link.total_mismatch:
            self.note(
                "total_mismatch",
                SyncLog.Outcome.FAILED,
                f"Invoice {link.invoice_number}: the CRM's total {link.crm_total} differs "
                f"from Xero's {link.xero_total}.",
            )

    # -- taxes and currencies ---------------------------------------------------------------

    def tax_types(self, invoice: HostInvoice) -> dict[str, str]:
        taxes = {line.tax.host_id: line.tax for line in invoice.lines if line.tax}
        if not taxes:
            return {}
        mappings = {
            m.host_id: m
            for m in TaxRateMapping.objects.filter(
                account_key=self.job.account_key, host_id__in=list(taxes)
            )
        }
        result: dict[str, str] = {}
        rates: list[dict[str, Any]] | None = None
        for host_id, tax in taxes.items():
            mapping = mappings.get(host_id)
            components = json.dumps(rules.host_tax_signature(tax))
            if (
                mapping
                and mapping.tax_type
                and (mapping.set_by_staff or mapping.components == components)
            ):
                result[host_id] = mapping.tax_type
                continue
            if rates is None:
                rates = self.client.tax_rates()
            match = rules.match_tax_rate(tax, rates)
            created = False
            if match is None:
                if not app_settings.CREATE_TAX_RATES:
                    TaxRateMapping.objects.get_or_create(
                        account_key=self.job.account_key,
                        host_id=host_id,
                        defaults={"name": tax.name},
                    )
                    raise JobFailed(
                        f"No Xero tax rate matches the CRM tax “{tax.name}”. Map it to a Xero tax "
                        "rate in admin (Xero tax rate mappings), then retry.",
                        [{"path": "tax", "message": f"Unmapped tax {tax.name}"}],
                    )
                body = rules.new_tax_rate(tax, self.connection.country_code)
                taken = {str(r.get("Name", "")).strip().lower() for r in rates}
                if body["Name"].strip().lower() in taken:
                    # Xero keeps tax rate names unique: say the rate in the new one's name.
                    body["Name"] = rules.distinct_tax_name(tax)
                match = self.client.create_tax_rate(
                    body, idempotency_key=self.organisation_key("tax", body)
                )
                created = True
            TaxRateMapping.objects.update_or_create(
                account_key=self.job.account_key,
                host_id=host_id,
                defaults={
                    "name": tax.name,
                    "tax_type": match["TaxType"],
                    "xero_name": match.get("Name", ""),
                    "components": components,
                    "created_in_xero": created,
                    "set_by_staff": False,
                },
            )
            result[host_id] = match["TaxType"]
        return result

    def ensure_currency(self, code: str) -> None:
        connection = self.connection
        if not code or code == connection.base_currency or code in connection.currencies:
            return
        known = [c.get("Code") for c in self.client.currencies()]
        if code not in known:
            if self.client.organisation_actions().get("UseMulticurrency") != "ALLOWED":
                raise JobFailed(
                    CURRENCY_HELP.format(code=code),
                    [{"path": "currency", "message": f"{code} is not enabled in Xero."}],
                )
            try:
                self.client.add_currency(code, idempotency_key=self.key("currency", code))
            except ValidationError as exc:
                raise JobFailed(CURRENCY_HELP.format(code=code), _fields(exc.errors)) from exc
            known.append(code)
        connection.currencies = sorted(set(known))
        XeroConnection.objects.filter(pk=connection.pk).update(currencies=connection.currencies)

    # -- payments ----------------------------------------------------------------------------

    def push_payments(self, link: InvoiceLink, invoice: HostInvoice) -> None:
        pushed = list(
            PaymentLink.objects.filter(
                account_key=self.job.account_key,
                invoice_host_id=self.job.host_id,
                deleted_in_xero=False,
            )
        )
        linked = {
            (p.host_model, p.host_id): {
                "xero_payment_id": p.xero_payment_id,
                "amount": p.amount,
                "date": p.date,
                "reference": p.reference,
            }
            for p in pushed
        }
        plan = rules.plan_payments(invoice.payments, linked)
        if not plan.delete and not plan.create:
            return
        for payment_id in plan.delete:
            self.client.delete_payment(payment_id, idempotency_key=self.key("delete", payment_id))
            PaymentLink.objects.filter(
                account_key=self.job.account_key, xero_payment_id=payment_id
            ).update(deleted_in_xero=True)
        creations = list(plan.create)
        if creations and self.reconcile:
            creations = self.adopt_payments(link, creations)
        if creations:
            account_id = self.connection.payment_account_id
            if not account_id:
                raise JobFailed(
                    "Choose the account payments go to in Settings → Integrations → Xero, then "
                    "retry.",
                    [{"path": "payment_account_id", "message": "No payment account chosen."}],
                )
            bodies = [rules.payment_payload(p, link.xero_invoice_id, account_id) for p in creations]
            if self.batch is not None and not plan.delete:
                self.invoice_link = link
                self.batch.payments.extend(
                    (self, payment, body) for payment, body in zip(creations, bodies, strict=True)
                )
                return
            self.mark_ambiguous()
            results = self.client.put_payments(
                bodies, summarize_errors=False, idempotency_key=self.key("payments", bodies)
            )
            problems: list[FieldError] = []
            for payment, result in zip(creations, results, strict=False):
                errors = element_errors(result)
                if errors:
                    problems.extend(errors)
                    continue
                self.save_payment(payment, str(result.get("PaymentID")))
            if problems:
                raise JobFailed("; ".join(str(e) for e in problems), _fields(problems))
        self.update_amount_due(link)

    def update_amount_due(self, link: InvoiceLink | None = None) -> None:
        link = link or self.invoice_link
        paid = sum(
            (
                p.amount
                for p in PaymentLink.objects.filter(
                    account_key=self.job.account_key,
                    invoice_host_id=self.job.host_id,
                    deleted_in_xero=False,
                )
            ),
            Decimal("0"),
        )
        if link.xero_total is not None:
            link.xero_amount_due = link.xero_total - paid
            link.xero_status = "PAID" if link.xero_amount_due <= 0 else "AUTHORISED"
            link.save(update_fields=["xero_amount_due", "xero_status"])

    def adopt_payments(self, link: InvoiceLink, creations: list) -> list:
        """After an unanswered payment call: link the payments Xero already has for this
        invoice (same amount, date and reference) instead of paying twice."""
        xero_invoice = self.client.invoice(link.xero_invoice_id) or {}
        taken = set(
            PaymentLink.objects.filter(account_key=self.job.account_key).values_list(
                "xero_payment_id", flat=True
            )
        )
        remaining = []
        for payment in creations:
            match = next(
                (
                    p
                    for p in xero_invoice.get("Payments") or []
                    if p.get("PaymentID") not in taken and rules.same_payment(p, payment)
                ),
                None,
            )
            if match is None:
                remaining.append(payment)
                continue
            taken.add(match["PaymentID"])
            self.save_payment(payment, str(match["PaymentID"]))
        return remaining

    def save_payment(self, payment, payment_id: str) -> None:
        with transaction.atomic():
            PaymentLink.objects.get_or_create(
                account_key=self.job.account_key,
                host_model=payment.host_model,
                host_id=payment.host_id,
                xero_payment_id=payment_id,
                defaults={
                    "invoice_host_id": self.job.host_id,
                    "amount": rules.cents(payment.amount),
                    "date": payment.date,
                    "reference": (payment.reference or "")[:255],
                },
            )

    # -- void and delete ---------------------------------------------------------------------

    def remove(self, link: InvoiceLink, why: str) -> None:
        """Void the Xero invoice (delete it if it is a draft there); payments go first."""
        current = self.client.invoice(link.xero_invoice_id) or {}
        status = current.get("Status") or link.xero_status
        if status in ("VOIDED", "DELETED"):
            link.xero_status = status
            link.save(update_fields=["xero_status"])
            return
        if status in ("DRAFT", "SUBMITTED"):
            target = "DELETED"
        else:
            target = "VOIDED"
            payments = [p for p in current.get("Payments") or [] if p.get("PaymentID")]
            for payment in payments:
                self.client.delete_payment(
                    payment["PaymentID"], idempotency_key=self.key("delete", payment["PaymentID"])
                )
                # Marked one by one: if a later delete fails, the links still say what Xero has.
                PaymentLink.objects.filter(
                    account_key=self.job.account_key, xero_payment_id=payment["PaymentID"]
                ).update(deleted_in_xero=True)
            if payments:
                self.note(
                    "payments_removed",
                    SyncLog.Outcome.INFO,
                    f"Invoice {link.invoice_number}: removed {len(payments)} payment(s) in "
                    "Xero so that the invoice could be voided.",
                )
        body = {"InvoiceID": link.xero_invoice_id, "Status": target}
        result = self.client.post_invoice(body, idempotency_key=self.key(target, body))
        self.save_result(link, None, result, link.payload_hash)
        self.note(
            "invoice_removed",
            SyncLog.Outcome.INFO,
            f"Invoice {link.invoice_number}: {why} It is {target.lower()} in Xero.",
        )
