"""Pushing a host invoice (and its payments) to Xero: the sync job's run.

One run brings the connected organisation to the invoice's current state: contact, tax rates,
currency, the invoice (created once, then updated only when its payload changed), status,
payments, void or delete. The decisions are made by ``rules.plan`` from plain values; this
module reads what those decisions need, makes the calls and records what happened.

Every write carries an Idempotency-Key tied to the job's change and payload, and is recorded
before it is sent (an invoice create as a fingerprint on its link, a payment create or delete
as the payment link's state), so a write whose answer is lost is settled from Xero's side on
the next run before anything is sent again. Transient trouble makes the job wait and retry;
Xero's refusals fail it with Xero's message until staff fix the data and retry. A run stops
starting calls at its deadline, well inside the task's timeout.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.db import connection as db_connection
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from xero_integration import (
    app_settings,
    connect,
    contacts,
    outcomes,
    preflight,
    rules,
    signals,
    taskqueue,
)
from xero_integration.adapters import DefaultXeroAdapter, get_adapter
from xero_integration.calllog import Call, CallRecorder
from xero_integration.data import HostContact, HostInvoice, HostPayment
from xero_integration.exceptions import ConnectionNotReady
from xero_integration.models import (
    ConnectionStatus,
    ContactLink,
    InvoiceLink,
    PaymentLink,
    SyncJob,
    SyncLog,
    TaxRateMapping,
    XeroConnection,
)
from xero_integration.rules import plan
from xero_integration.rules.preflight import lines_fingerprint
from xero_integration.xero.client import XeroClient
from xero_integration.xero.errors import (
    DeadlineReached,
    FieldError,
    ValidationError,
    XeroError,
    element_errors,
)

logger = logging.getLogger(__name__)

#: How many times a refusal caused by out-of-date reference data is retried after a refresh.
STALE_RETRIES = 2
#: Xero recommends about 50 elements per batch call.
BATCH_SIZE = 50
#: In a backlog, a batch settles the contacts of this many invoices after it too.
CONTACTS_AHEAD = 200
BACKOFF_CAP = 3600.0
#: Work put back for less than this is queued again by a timer in the worker; longer waits
#: are the sweeper's (it runs every minute).
WAKE_WITHIN_SECONDS = 90.0
CURRENCY_HELP = (
    "Organisation is not subscribed to currency {code}. The invoice's currency is not enabled "
    "in Xero and could not be added: enable multi-currency in your Xero plan, or add {code} in "
    "Xero (Settings → Currencies); the invoice is sent again when you retry."
)
Reason = SyncJob.Reason
#: Waits that end by themselves (Xero back, its budget back, an answer found, a reconnect):
#: while a job goes from one to another, its log gains no rows.
PASSING_REASONS = frozenset(
    {Reason.UNAVAILABLE, Reason.RATE_LIMIT, Reason.UNANSWERED, Reason.RECONNECT}
)
#: The clock runs measure their time by (tests replace it).
clock: Callable[[], float] = time.monotonic


def run_seconds() -> float:
    """How long one run may keep starting calls to Xero."""
    return app_settings.RUN_SECONDS


def lease() -> timedelta:
    """How long a claimed job stays claimed without news from its worker: the run, one call
    after its deadline, and a margin. Each write renews it."""
    return timedelta(seconds=run_seconds() + app_settings.REQUEST_TIMEOUT + 30)


class JobFailed(Exception):
    """Xero refused, or the data cannot go to Xero: kept on the job until staff act."""

    def __init__(
        self,
        message: str,
        fields: list[dict[str, str]] | None = None,
        reason: str = Reason.REFUSED,
    ) -> None:
        super().__init__(message)
        self.fields = fields or []
        self.reason = reason


class JobWaits(Exception):
    """Try again later (after ``seconds``, or when the connection is back if None)."""

    def __init__(self, message: str, seconds: float | None, reason: str = Reason.UNAVAILABLE):
        super().__init__(message)
        self.seconds = seconds
        self.reason = reason


class LostClaim(Exception):
    """The job's lease ran out and another worker took it over: this worker stops touching it."""


class Released(Exception):
    """The run's time is up before this job's work was done: it goes back to the queue."""


class Deferred(Exception):
    """The job's create waits for the batch's shared call."""


def _fields(errors: list[FieldError]) -> list[dict[str, str]]:
    return [{"path": error.path, "message": error.message} for error in errors]


# ---- claiming and finishing ---------------------------------------------------------------


def claim(
    account_key: str, host_model: str, host_id: str, token: str | None = None
) -> SyncJob | None:
    """Take the job for this worker if it is due: pending, waiting and past its time, or
    running with an expired lease (its worker died). Only one worker wins."""
    jobs = SyncJob.objects.filter(account_key=account_key, host_model=host_model, host_id=host_id)
    token = token or uuid.uuid4().hex
    if not jobs.due(connected=True).claim(token, timezone.now() + lease()):
        return None
    job = jobs.first()
    return job if job is not None and job.claim_token == token else None


def _ours(job: SyncJob) -> Any:
    return SyncJob.objects.filter(pk=job.pk).held(job.claim_token)


def keep_claim(job: SyncJob) -> None:
    """Renew the job's lease before a write; raise LostClaim when another worker has it."""
    if not _ours(job).renew(timezone.now() + lease()):
        raise LostClaim(f"Sync job {job.pk} was taken over by another worker.")


def _release(job: SyncJob) -> None:
    """Hand a claimed job back (this run's time is up)."""
    if _ours(job).hand_back():
        _redispatch(job)


def _finish(job: SyncJob, seq: int) -> None:
    if not _ours(job).finish(seq) and _ours(job).hand_back(settled=True):
        # The invoice changed while it was being pushed: push it again.
        _redispatch(job)


def _finish_many(jobs: list[SyncJob]) -> None:
    """Mark jobs done together: one statement per change sequence pushed; a job saved again
    meanwhile runs again (see _finish)."""
    by_seq: dict[int, list[SyncJob]] = {}
    for job in jobs:
        by_seq.setdefault(job.change_seq, []).append(job)
    finished: set[int] = set()
    for seq, group in by_seq.items():
        pks, token = [j.pk for j in group], group[0].claim_token
        updated = SyncJob.objects.filter(pk__in=pks).held(token).finish(seq)
        if updated == len(group):
            finished |= set(pks)
        elif updated:
            finished |= set(
                SyncJob.objects.filter(
                    pk__in=pks, claim_token=token, state=SyncJob.State.DONE, done_seq=seq
                ).values_list("pk", flat=True)
            )
    for job in jobs:
        if job.pk not in finished:
            _finish(job, job.change_seq)


def _redispatch(job: SyncJob) -> None:
    queue_run(job.account_key)


def queue_run(account_key: str) -> None:
    """Queue a run of the account's due jobs after the commit, unless one is queued already."""
    taskqueue.dispatch_unique(run_batch, account_key)


def _fail(job: SyncJob, outcome: JobFailed) -> None:
    _ours(job).fail(str(outcome), outcome.fields, outcome.reason)


def _wait(job: SyncJob, outcome: JobWaits) -> None:
    not_before = (
        None if outcome.seconds is None else timezone.now() + timedelta(seconds=outcome.seconds)
    )
    # Waiting for Xero's budget is no trouble with the job: it does not lengthen the backoff
    # of the job's next real trouble (a lost answer would otherwise park it for an hour).
    tries = 0 if outcome.reason == Reason.RATE_LIMIT else 1
    _ours(job).wait(
        str(outcome),
        outcome.reason,
        not_before,
        attempts=job.attempts + tries,
        ambiguous=job.ambiguous or outcome.reason == Reason.UNANSWERED,
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
    """Claim up to ``limit`` due jobs of one CRM account, ``first`` first, all under one claim
    token (so the run moves them together)."""
    jobs: list[SyncJob] = []
    token = uuid.uuid4().hex
    if first is not None:
        job = claim(account_key, *first, token=token)
        if job is not None:
            jobs.append(job)
    connected = XeroConnection.objects.filter(
        account_key=account_key, status=ConnectionStatus.CONNECTED
    ).exists()
    now = timezone.now()
    candidates = list(
        SyncJob.objects.filter(account_key=account_key)
        .due(now, connected)
        .exclude(pk__in=[j.pk for j in jobs])
        .order_by("created_at", "pk")
        .values_list("pk", flat=True)[: max(0, limit - len(jobs))]
    )
    if candidates:
        # One statement claims them all; a job another worker took meanwhile is no longer
        # due and stays with it.
        SyncJob.objects.filter(pk__in=candidates).due(now, connected).claim(token, now + lease())
        jobs += list(SyncJob.objects.filter(pk__in=candidates).held(token).order_by("pk"))
    return jobs


#: The outcome of a job whose work waits in the batch's shared calls.
PENDING = object()


@dataclass
class Batch:
    """Creations collected from several jobs, sent in shared calls (summarizeErrors=false)."""

    invoices: list[tuple[Push, HostInvoice, InvoiceLink, dict[str, Any], str]] = field(
        default_factory=list
    )
    payments: list[tuple[Push, HostPayment, dict[str, Any]]] = field(default_factory=list)


class Run:
    """One worker's run over a batch of claimed jobs of one CRM account."""

    def __init__(self, account_key: str, jobs: list[SyncJob]) -> None:
        self.account_key = account_key
        self.jobs = jobs
        self.deadline = clock() + run_seconds()
        self.connection = XeroConnection.objects.filter(account_key=account_key).first()
        self.adapter = get_adapter()
        self.job_outcomes: dict[int, Any] = {}
        self.batch = Batch()
        self.serving: list[SyncJob] = []
        # Calls made inside a database transaction (a contact created under a row lock) are
        # written once it ends: a row written inside would vanish if it rolled back.
        self.unlogged: list[tuple[Call, list[SyncJob]]] = []
        self.recorder = CallRecorder(on_call=self._log_call)
        self._client: XeroClient | None = None
        #: The organisation's tax rates, read at most once a run.
        self.tax_rates: list[dict[str, Any]] | None = None

    @property
    def client(self) -> XeroClient:
        if self._client is None:
            assert self.connection is not None
            self._client = connect.api_client(self.connection, self.recorder)
            self._client.deadline = self.deadline
            # A worker never sleeps for Xero's budget: the work waits in the database.
            self._client.max_wait = 0
        return self._client

    @contextmanager
    def serving_jobs(self, jobs: list[SyncJob]) -> Iterator[None]:
        """Calls made inside are recorded against these jobs."""
        previous, self.serving = self.serving, jobs
        try:
            yield
        finally:
            self.serving = previous
            self._flush_log()

    def _log_call(self, call: Call) -> None:
        """Write each call to the sync log as it happens: a run killed mid-way loses none."""
        jobs = list(self.serving or self.jobs[:1])
        if transaction.get_connection().in_atomic_block:
            self.unlogged.append((call, jobs))
            return
        self._flush_log()
        self._write_call(call, jobs)

    def _flush_log(self) -> None:
        if self.unlogged and not transaction.get_connection().in_atomic_block:
            unlogged, self.unlogged = self.unlogged, []
            for call, jobs in unlogged:
                self._write_call(call, jobs)

    def _write_call(self, call: Call, jobs: list[SyncJob]) -> None:
        """One entry per invoice the call served, so that each invoice's log shows it; a
        shared call's bodies are kept once, on its first entry. A call Xero did not answer
        (or answered 429 or 5xx) is one entry, naming every invoice it served: the invoices'
        own entries say they wait, so an outage does not write a row per invoice and call."""
        numbers = ", ".join(j.number or j.host_id for j in jobs[:10])
        more = f" and {len(jobs) - 10} more" if len(jobs) > 10 else ""
        label = "Invoice" if len(jobs) == 1 else "Invoices"
        details: dict[str, Any] = {"query": call.query} if call.query else {}
        if len(jobs) > 1:
            details["jobs"] = [j.pk for j in jobs]

        def entry(job: SyncJob, **extra: Any) -> SyncLog:
            return SyncLog(
                connection=self.connection,
                account_key=self.account_key,
                job=job,
                host_id=job.host_id,
                action=f"{call.method} {call.path}"[:255],
                outcome=SyncLog.Outcome.OK if call.status < 400 else SyncLog.Outcome.FAILED,
                http_status=call.status or None,
                correlation_id=call.correlation_id,
                message=f"{label} {numbers}{more}",
                **extra,
            )

        try:
            first = entry(
                jobs[0],
                details=details,
                request_body=call.request_body,
                response_body=call.response_body,
            )
            first.save()
            if len(jobs) > 1 and not _failed_for_a_while(call):
                shared = {**details, "same_call_as": first.pk}
                SyncLog.objects.bulk_create([entry(job, details=shared) for job in jobs[1:]])
        except Exception:  # the call happened; a log row that cannot be written is not fatal
            logger.exception("Could not record a call to Xero in the sync log")

    def execute(self) -> int:
        connection = self.connection
        preloaded: dict[int, tuple[Any, HostInvoice]] = {}
        contact_ids: dict[str, str] = {}
        if connection is not None and connection.is_connected and len(self.jobs) > 1:
            with self.serving_jobs(self.jobs), suppress(DeadlineReached):
                preloaded, contact_ids = _prepare(self, self.jobs)
        for job in self.jobs:
            if clock() >= self.deadline:
                self.job_outcomes[job.pk] = Released()
                continue
            try:
                if connection is None or not connection.is_connected:
                    raise JobWaits(
                        "Waiting for the CRM account to be reconnected to Xero.",
                        None,
                        Reason.RECONNECT,
                    )
                push = Push(self, job)
                push.preloaded = preloaded.get(job.pk)
                push.contact_ids = contact_ids
                with self.serving_jobs([job]):
                    push.run()
                self.job_outcomes[job.pk] = None
            except Deferred:
                self.job_outcomes[job.pk] = PENDING
            except (JobFailed, JobWaits, LostClaim, Released) as outcome:
                self.job_outcomes[job.pk] = outcome
            except AdapterFailed as exc:
                logger.exception("The CRM's adapter failed on sync job %s", job.pk)
                self.job_outcomes[job.pk] = _adapter_outcome(exc, job)
            except Exception as exc:  # a bug must leave the job retryable and readable
                logger.exception("Sync job %s crashed", job.pk)
                self.job_outcomes[job.pk] = _crashed(exc, job)
        if self.batch.invoices or self.batch.payments:
            try:
                _send_batch(self)
            except Exception as exc:  # as above: nothing is lost, everything is retried
                logger.exception("Batch for account %s crashed", self.account_key)
                for job_pk, outcome in self.job_outcomes.items():
                    if outcome is PENDING:
                        self.job_outcomes[job_pk] = JobWaits(
                            f"Unexpected error: {exc}", backoff(0), Reason.CRASHED
                        )
        done = [job for job in self.jobs if self.job_outcomes.get(job.pk, PENDING) is None]
        _finish_many(done)
        rows = [self._settle(job, self.job_outcomes.get(job.pk, PENDING)) for job in self.jobs]
        try:
            SyncLog.objects.bulk_create([row for row in rows if row is not None])
        except Exception:  # the jobs' states are saved; a log that cannot be written is not fatal
            logger.exception("Could not write the sync log of a run for %s", self.account_key)
        self._tell_the_host(done)
        self._wake_for_waiting()
        return len(self.jobs)

    def _wake_for_waiting(self) -> None:
        """Jobs put back for a short while (Xero's minute budget, a brief outage) run again
        when it ends, rather than at the sweeper's next pass."""
        waits = [
            outcome.seconds
            for outcome in self.job_outcomes.values()
            if isinstance(outcome, JobWaits) and outcome.seconds is not None
        ]
        if waits and min(waits) < WAKE_WITHIN_SECONDS:
            taskqueue.dispatch_later(run_batch, self.account_key, seconds=min(waits))

    def _tell_the_host(self, done: list[SyncJob]) -> None:
        """The host's signals: each invoice synced, and each that failed for someone to fix."""
        in_xero: dict[tuple[str, str], str] = {}
        if done and self.connection is not None:
            in_xero = {
                (link.host_model, link.host_id): link.xero_invoice_id
                for link in InvoiceLink.objects.of(self.connection).filter(
                    host_id__in=[job.host_id for job in done]
                )
            }
        for job in done:
            signals.invoice_synced.send(
                sender=SyncJob,
                account_key=job.account_key,
                host_model=job.host_model,
                host_id=job.host_id,
                xero_invoice_id=in_xero.get((job.host_model, job.host_id), ""),
            )
        for job in self.jobs:
            outcome = self.job_outcomes.get(job.pk)
            if isinstance(outcome, JobFailed):
                signals.invoice_sync_failed.send(
                    sender=SyncJob,
                    account_key=job.account_key,
                    host_model=job.host_model,
                    host_id=job.host_id,
                    reason=outcome.reason,
                    message=str(outcome),
                )

    def _settle(self, job: SyncJob, outcome: Any) -> SyncLog | None:
        """Move the job to its outcome; the log entry saying so (None when another worker or a
        later run will say it)."""
        if outcome is PENDING:
            # Every part of a batch sets its jobs' outcomes; one left over is retried rather
            # than marked done with work undone.
            outcome = JobWaits("The batch ended before this invoice's turn.", 1, Reason.CRASHED)
        if isinstance(outcome, LostClaim):
            return None  # another worker runs it now
        if isinstance(outcome, Released):
            _release(job)
            return None
        details: dict[str, Any] = {}
        if isinstance(outcome, JobFailed):
            _fail(job, outcome)
            outcome_name, message = SyncLog.Outcome.FAILED, str(outcome)
            details["reason"] = outcome.reason
        elif isinstance(outcome, JobWaits):
            still_waiting = job.reason in PASSING_REASONS and outcome.reason in PASSING_REASONS
            _wait(job, outcome)
            if still_waiting:
                return None  # its log already says what it waits for
            outcome_name, message = SyncLog.Outcome.INFO, str(outcome)
            details["reason"] = outcome.reason
        else:
            outcome_name, message = SyncLog.Outcome.OK, ""  # finished by _finish_many
        return SyncLog(
            connection=self.connection,
            account_key=job.account_key,
            job=job,
            host_id=job.host_id,
            action="invoice_sync",
            outcome=outcome_name,
            message=f"Invoice {job.number}: {message}" if message else f"Invoice {job.number}",
            details=details,
        )


def _failed_for_a_while(call: Call) -> bool:
    """Xero did not answer, was down, or throttled: nothing about the invoice itself."""
    return call.status == 0 or call.status == 429 or call.status >= 500


def _crashed(exc: Exception, job: SyncJob) -> JobWaits:
    return JobWaits(
        f"Unexpected error: {exc.__class__.__name__}: {exc}", backoff(job.attempts), Reason.CRASHED
    )


def run_batch(
    account_key: str, first: tuple[str, str] | None = None, *, queue_rest: bool = True
) -> int:
    """Claim and run a batch of the due jobs of one CRM account; return how many ran.

    A run never waits for Xero's budget: work that must wait goes back with its time, and
    the worker moves on. A full batch queues the next run behind the other accounts' runs,
    so one account's backlog cannot starve the rest (``queue_rest=False``: the caller runs
    the batches itself, as the history backfill does)."""
    taskqueue.started(run_batch, account_key)
    jobs = claim_batch(account_key, first)
    if not jobs:
        return 0
    ran = Run(account_key, jobs).execute()
    if queue_rest and len(jobs) >= BATCH_SIZE:
        queue_run(account_key)
    return ran


@contextmanager
def consistent_read() -> Iterator[None]:
    """Read the host's invoice, lines and payments as of one moment: one transaction, and on
    PostgreSQL a repeatable-read snapshot (its default isolation lets each query see a
    different commit)."""
    if transaction.get_connection().in_atomic_block:
        yield
        return
    with transaction.atomic():
        if db_connection.vendor == "postgresql":
            with db_connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        yield


def read_invoice(
    adapter: DefaultXeroAdapter, job: SyncJob
) -> tuple[Any | None, HostInvoice | None]:
    """The host invoice of a job and its plain data, read consistently; (None, None) when it
    was deleted, (instance, None) when it does not belong in Xero. The host's own errors come
    out as AdapterFailed."""
    with consistent_read():
        try:
            instance = None if job.deleted else adapter.load_invoice(job.host_model, job.host_id)
            if instance is None:
                return None, None
            if not adapter.should_sync(instance):
                return instance, None
            return instance, adapter.to_invoice(instance)
        except Exception as exc:
            raise AdapterFailed(exc) from exc


class AdapterFailed(Exception):
    """The host's adapter raised while the invoice was read: the CRM's bug or data, which
    retrying rarely mends."""

    def __init__(self, error: Exception) -> None:
        super().__init__(f"The CRM's adapter raised {error.__class__.__name__}: {error}")
        self.error = error


#: Reads of an invoice whose adapter raises, before the job fails for staff to see.
ADAPTER_ATTEMPTS = 3


def _adapter_outcome(exc: AdapterFailed, job: SyncJob) -> JobFailed | JobWaits:
    if job.attempts + 1 >= ADAPTER_ATTEMPTS:
        return JobFailed(
            f"{exc} (after {ADAPTER_ATTEMPTS} tries; nothing was sent to Xero). Fix the "
            "invoice or the adapter, then save the invoice or retry.",
            [{"path": "invoice", "message": str(exc)}],
            Reason.ADAPTER,
        )
    return JobWaits(str(exc), backoff(job.attempts), Reason.ADAPTER)


def _contacts_ahead(run: Run, jobs: list[SyncJob], hosts: dict[str, HostContact]) -> None:
    """In a backlog (a full batch), add the contacts of the next due invoices to the batch's
    own, when some of the batch's are new to Xero: the contacts a whole drain needs are then
    looked up and created in a few shared calls instead of a few in every batch."""
    if len(jobs) < BATCH_SIZE or run.connection is None:
        return
    linked = (
        ContactLink.objects.of(run.connection)
        .filter(host_id__in=list(hosts))
        .exclude(xero_contact_id=None)
        .count()
    )
    if linked >= len(hosts):
        return
    ahead = (
        SyncJob.objects.filter(account_key=run.account_key, deleted=False)
        .due(timezone.now(), connected=True)
        .exclude(pk__in=[job.pk for job in jobs])
        .order_by("created_at", "pk")[:CONTACTS_AHEAD]
    )
    for job in ahead:
        try:
            _instance, data = read_invoice(run.adapter, job)
        except Exception:  # its own run reports it
            continue
        if data is not None and rules.invoices.goes_to_xero(data, app_settings.SYNC_DRAFTS):
            hosts.setdefault(data.contact.host_id, data.contact)


def _prepare(
    run: Run, jobs: list[SyncJob]
) -> tuple[dict[int, tuple[Any, HostInvoice]], dict[str, str]]:
    """Read the batch's invoices once, and settle their contacts in a few shared calls (with
    those of the invoices next in a backlog). An invoice that cannot be read here is left to
    its own run, which reports the problem."""
    preloaded: dict[int, tuple[Any, HostInvoice]] = {}
    hosts: dict[str, HostContact] = {}
    for job in jobs:
        if job.deleted:
            continue
        try:
            instance, data = read_invoice(run.adapter, job)
        except Exception:  # reported by the job's own run
            logger.exception("Could not read invoice %s for a batch", job.host_id)
            continue
        if instance is None or data is None:
            continue
        preloaded[job.pk] = (instance, data)
        if rules.invoices.goes_to_xero(data, app_settings.SYNC_DRAFTS):
            hosts.setdefault(data.contact.host_id, data.contact)
    _contacts_ahead(run, jobs, hosts)
    contact_ids: dict[str, str] = {}
    if len(hosts) > 1 and run.connection is not None:
        try:
            contact_ids = contacts.xero_contact_ids(
                run.connection, run.client, list(hosts.values())
            )
        except DeadlineReached:
            raise
        except (XeroError, ConnectionNotReady) as exc:
            # Xero's answer (a spent budget, say): each invoice settles its contact itself and
            # meets it there, in its own outcome.
            logger.info("The batch's contacts were not settled together: %s", exc)
        except Exception:  # a bug: each invoice still settles its contact itself
            logger.exception("Could not settle the batch's contacts together")
    return preloaded, contact_ids


# ---- staff's decisions ------------------------------------------------------------------------


def retry(jobs: Any) -> int:
    """Staff's "Retry": run failed, waiting or resolved jobs again now, with new
    Idempotency-Keys (after staff fixed something in Xero, Xero must not replay the refusal
    it gave the old ones)."""
    keys = jobs.retry()
    for account_key in dict.fromkeys(key[0] for key in keys):
        queue_run(account_key)
    return len(keys)


def _links_of(jobs: Any) -> list[tuple[SyncJob, InvoiceLink]]:
    pairs = []
    for job in jobs:
        connection = XeroConnection.objects.filter(account_key=job.account_key).first()
        if connection is None:
            continue
        link = (
            InvoiceLink.objects.of(connection)
            .filter(host_model=job.host_model, host_id=job.host_id)
            .first()
        )
        if link is not None:
            pairs.append((job, link))
    return pairs


def link_to_existing(jobs: Any) -> int:
    """Staff say the invoice Xero already holds under a job's number is this CRM invoice: link
    it, and retry (the CRM's invoice is then sent as an update of it)."""

    chosen = []
    for job, link in _links_of(jobs):
        if not link.conflict_invoice_id or link.xero_invoice_id:
            continue
        link.xero_invoice_id = link.conflict_invoice_id
        link.conflict_invoice_id = ""
        link.xero_status = ""
        link.payload_hash = ""
        link.unanswered_creates = []
        link.save()
        SyncLog.objects.create(
            account_key=job.account_key,
            job=job,
            host_id=job.host_id,
            action="invoice_linked_by_staff",
            outcome=SyncLog.Outcome.INFO,
            message=f"Invoice {job.number}: linked by staff to the invoice Xero holds under its "
            f"number (InvoiceID {link.xero_invoice_id}).",
        )
        chosen.append(job.pk)
    if chosen:
        retry(SyncJob.objects.filter(pk__in=chosen))
    return len(chosen)


def send_again_as_new(jobs: Any) -> int:
    """Staff want an invoice that was deleted in Xero created there again: forget the deleted
    one, and retry."""

    chosen = []
    for job, link in _links_of(jobs):
        if link.xero_status != "DELETED":
            continue
        deleted_id = link.xero_invoice_id
        InvoiceLink.objects.filter(pk=link.pk).update(
            xero_invoice_id="",
            xero_status="",
            payload_hash="",
            unanswered_creates=[],
            xero_total=None,
            xero_amount_due=None,
            xero_amount_paid=None,
            total_mismatch=False,
            drift=False,
            drift_detail="",
        )
        SyncLog.objects.create(
            account_key=job.account_key,
            job=job,
            host_id=job.host_id,
            action="invoice_sent_again",
            outcome=SyncLog.Outcome.INFO,
            message=f"Invoice {job.number}: deleted in Xero (InvoiceID {deleted_id}); staff "
            "chose to create it there again.",
        )
        chosen.append(job.pk)
    if chosen:
        retry(SyncJob.objects.filter(pk__in=chosen))
    return len(chosen)


# ---- the shared calls of a batch ------------------------------------------------------------


def _claimed(entries: list, job_outcomes: dict[int, Any], ambiguous: bool = False) -> list:
    """The entries whose job this worker still holds (a lost claim stops its part), their
    leases renewed in one statement; ``ambiguous`` flags them for staff before a write."""
    jobs = {entry[0].job.pk: entry[0].job for entry in entries}
    if not jobs:
        return []
    token = next(iter(jobs.values())).claim_token
    held = SyncJob.objects.filter(pk__in=list(jobs)).held(token)
    if held.renew(timezone.now() + lease(), ambiguous) < len(jobs):
        still = set(held.values_list("pk", flat=True))
    else:
        still = set(jobs)
    kept = []
    for entry in entries:
        job = entry[0].job
        if job.pk not in still:
            job_outcomes[job.pk] = LostClaim(f"Sync job {job.pk} was taken over by another worker.")
            continue
        job.ambiguous = job.ambiguous or ambiguous
        kept.append(entry)
    return kept


def _send_batch(run: Run) -> None:
    """The shared calls: new invoices (then their payments), results matched by position; one
    refused invoice fails alone. Every job with work here leaves with an outcome."""
    job_outcomes = run.job_outcomes
    entries = _claimed(run.batch.invoices, job_outcomes, ambiguous=True)
    if entries:
        _create_invoices_together(run, entries)
    payments = [
        entry for entry in run.batch.payments if job_outcomes.get(entry[0].job.pk) is PENDING
    ]
    payments = _claimed(payments, job_outcomes, ambiguous=True)
    for start in range(0, len(payments), BATCH_SIZE):
        _create_payments_together(run, payments[start : start + BATCH_SIZE])
    for entry in run.batch.payments:
        if job_outcomes.get(entry[0].job.pk) is PENDING:
            job_outcomes[entry[0].job.pk] = None


def _outcome(push: Push, exc: Exception) -> Exception:
    """What an exception from a call means for the job (see Push.guarded)."""

    def reraise() -> None:
        raise exc

    try:
        push.guarded(reraise)
    except (JobFailed, JobWaits, LostClaim, Released) as outcome:
        return outcome
    return exc


def certainly_not_applied(exc: BaseException) -> bool:
    """Whether a write that raised ``exc`` certainly made nothing in Xero (refused with an
    answer, or never sent)."""
    if not isinstance(exc, XeroError | ConnectionNotReady):
        return False
    return not outcomes.classify(exc).maybe_applied


def _create_invoices_together(run: Run, entries: list) -> None:
    job_outcomes = run.job_outcomes
    first = entries[0][0]
    payloads = [entry[3] for entry in entries]
    for push, _invoice, link, payload, _digest in entries:
        push.record_create(link, payload, flag=False)  # flagged together by _claimed
    key = _batch_key([entry[0] for entry in entries], "create", payloads)
    try:
        with run.serving_jobs([entry[0].job for entry in entries]):
            results = run.client.put_invoices(payloads, summarize_errors=False, idempotency_key=key)
    except Exception as exc:
        if certainly_not_applied(exc):
            for push, _invoice, link, payload, _digest in entries:
                push.answered_create(link, payload)
            if isinstance(exc, ValidationError) and len(entries) > 1:
                # The whole call was refused (one unreadable invoice, or too big): each alone.
                _send_alone(run, entries)
                return
        outcome = _outcome(first, exc)
        for push, *_ in entries:
            job_outcomes[push.job.pk] = outcome
        return
    if len(results) != len(entries):
        for push, *_ in entries:
            job_outcomes[push.job.pk] = JobWaits(
                "Xero's answer did not list every invoice sent; checking before sending again.",
                backoff(push.job.attempts),
                Reason.UNANSWERED,
            )
        return
    for (push, invoice, link, payload, digest), result in zip(entries, results, strict=True):
        try:
            with run.serving_jobs([push.job]):
                push.guarded(
                    lambda p=push, i=invoice, k=link, r=result, s=payload, d=digest: p.created(
                        k, i, r, s, d
                    )
                )
            job_outcomes[push.job.pk] = None
        except Deferred:
            job_outcomes[push.job.pk] = PENDING
        except (JobFailed, JobWaits, LostClaim, Released) as outcome:
            job_outcomes[push.job.pk] = outcome


def _create_payments_together(run: Run, chunk: list) -> None:
    job_outcomes = run.job_outcomes
    # Payments of invoices created in this batch learn their InvoiceID only now.
    bodies = [{**body, "Invoice": {"InvoiceID": push.link_id()}} for push, _, body in chunk]
    records = [
        push.record_payment_create(payment, body, flag=False) for push, payment, body in chunk
    ]
    first = chunk[0][0]
    key = _batch_key([entry[0] for entry in chunk], "payments", bodies)
    try:
        with run.serving_jobs([entry[0].job for entry in chunk]):
            results = run.client.put_payments(bodies, summarize_errors=False, idempotency_key=key)
    except Exception as exc:
        if certainly_not_applied(exc):
            for record in records:
                record.delete()  # refused with an answer, or never sent: nothing was created
        outcome = _outcome(first, exc)
        for push, *_ in chunk:
            job_outcomes[push.job.pk] = outcome
        return
    if len(results) != len(chunk):
        for push, *_ in chunk:
            job_outcomes[push.job.pk] = JobWaits(
                "Xero's answer did not list every payment sent; checking before sending again.",
                backoff(push.job.attempts),
                Reason.UNANSWERED,
            )
        return
    for (push, _payment, _body), record, result in zip(chunk, records, results, strict=True):
        errors = element_errors(result)
        if errors:
            record.delete()
            job_outcomes[push.job.pk] = JobFailed(
                "; ".join(str(e) for e in errors), _fields(errors)
            )
        elif not result.get("PaymentID"):
            job_outcomes[push.job.pk] = JobWaits(
                "Xero's answer named no payment; checking before sending again.",
                backoff(push.job.attempts),
                Reason.UNANSWERED,
            )
        else:
            push.payment_created(record, str(result["PaymentID"]))
            push.update_amount_due()


def _send_alone(run: Run, entries: list) -> None:
    """Send each invoice of a refused batch on its own, so that one bad invoice fails alone."""
    for push, invoice, link, payload, digest in entries:
        try:
            with run.serving_jobs([push.job]):
                push.guarded(
                    lambda p=push, i=invoice, k=link, s=payload, d=digest: p.create_now(k, i, s, d)
                )
            run.job_outcomes[push.job.pk] = None
        except Deferred:
            run.job_outcomes[push.job.pk] = PENDING
        except (JobFailed, JobWaits, LostClaim, Released) as outcome:
            run.job_outcomes[push.job.pk] = outcome


def _batch_key(pushes: list[Any], operation: str, payload: Any) -> str:
    parts = "|".join(f"{p.job.pk}:{p.job.change_seq}:{p.job.key_generation}" for p in pushes)
    digest = hashlib.sha256(
        f"{parts}|{operation}|{rules.invoices.payload_hash({'p': payload})}".encode()
    ).hexdigest()
    return f"batch-{digest[:58]}"


# ---- one job's push ------------------------------------------------------------------------


class Push:
    """Bring one host invoice up to date in the connected organisation."""

    def __init__(self, run: Run, job: SyncJob) -> None:
        assert run.connection is not None
        self.run_ = run
        self.job = job
        self.connection: XeroConnection = run.connection
        self.adapter = run.adapter
        self.batch: Batch | None = run.batch if len(run.jobs) > 1 else None
        self.preloaded: tuple[Any, HostInvoice] | None = None
        self.contact_ids: dict[str, str] = {}
        self.contact_id = ""
        self.invoice_link: InvoiceLink | None = None
        #: The CRM taxes of the invoice (their mappings are forgotten if Xero refuses one).
        self.used_tax_mappings: list[str] = []

    @property
    def client(self) -> XeroClient:
        return self.run_.client

    def run(self) -> None:
        self.guarded(self._run)

    def guarded(self, work: Callable[[], Any]) -> Any:
        """Run ``work``, turning Xero's answers into the job's outcome (fail, or wait) through
        the one classifier (outcomes.classify)."""
        try:
            return work()
        except contacts.ContactRejected as exc:
            raise JobFailed(f"Xero refused the contact: {exc}") from exc
        except (XeroError, ConnectionNotReady) as exc:
            raise self.outcome_of(exc) from exc

    def outcome_of(self, exc: XeroError | ConnectionNotReady) -> Exception:
        """The job's outcome for an exception from a call to Xero."""
        found = outcomes.classify(exc, backoff=backoff(self.job.attempts))
        if found.kind == outcomes.Kind.OUT_OF_TIME:
            return Released(found.message)
        if found.kind == outcomes.Kind.CHECK_CONNECTION:
            # Still connected: a passing refusal, tried again later; gone: wait for reconnect.
            still = connect.confirm_still_connected(self.connection)
            return JobWaits(
                f"Xero refused access to the organisation: {found.message}",
                found.seconds if still else None,
                Reason.UNAVAILABLE if still else Reason.RECONNECT,
            )
        if found.kind in (outcomes.Kind.RETRY, outcomes.Kind.RECONNECT):
            return JobWaits(found.message, found.seconds, found.reason)
        if found.refresh:
            self.refresh(found)
        fields = _fields(exc.errors) if isinstance(exc, ValidationError) else []
        return JobFailed(found.message, fields)

    # -- plumbing --------------------------------------------------------------------------

    def key(self, operation: str, payload: Any) -> str:
        """One Idempotency-Key per change of the invoice, operation and payload: a retry of this
        attempt repeats it (Xero replays the answer), a new change gets a new one. Asked for
        before every write, so it also renews this worker's claim on the job."""
        keep_claim(self.job)
        digest = hashlib.sha256(
            f"{self.connection.tenant_id}|{self.job.host_model}|{self.job.host_id}|"
            f"{self.job.change_seq}|{self.job.key_generation}|{operation}|"
            f"{rules.invoices.payload_hash({'p': payload})}".encode()
        ).hexdigest()
        return f"inv-{digest[:60]}"

    def organisation_key(self, operation: str, payload: Any) -> str:
        """A key for a write that belongs to the organisation rather than to one invoice (a
        tax rate): every job making the same one sends the same key."""
        keep_claim(self.job)
        digest = hashlib.sha256(
            f"{self.connection.tenant_id}|{self.job.key_generation}|{operation}|"
            f"{rules.invoices.payload_hash({'p': payload})}".encode()
        ).hexdigest()
        return f"org-{digest[:60]}"

    def find_link(self) -> InvoiceLink | None:
        return (
            InvoiceLink.objects.of(self.connection)
            .filter(host_model=self.job.host_model, host_id=self.job.host_id)
            .first()
        )

    def new_link(self) -> InvoiceLink:
        """A link for an invoice not yet in this organisation, saved with its first create."""
        return InvoiceLink(
            account_key=self.job.account_key,
            tenant_id=self.connection.tenant_id,
            host_model=self.job.host_model,
            host_id=self.job.host_id,
        )

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
        """Flag the job for staff (admin's "unanswered writes") before a write; the proof used
        to settle it later is recorded on the links."""
        if not _ours(self.job).renew(timezone.now() + lease(), ambiguous=True):
            raise LostClaim(f"Sync job {self.job.pk} was taken over by another worker.")
        self.job.ambiguous = True

    # -- the work --------------------------------------------------------------------------

    def _run(self) -> None:
        job, adapter = self.job, self.adapter
        link = self.find_link()
        if self.preloaded is not None:
            instance, invoice = self.preloaded
        else:
            instance, invoice = read_invoice(adapter, job)
        decided = plan.invoice_step(
            invoice,
            deleted_in_crm=instance is None,
            in_xero=bool(link and link.xero_invoice_id),
            removed_in_xero=bool(link and link.removed_in_xero),
            sync_drafts=app_settings.SYNC_DRAFTS,
        )
        if decided.step == plan.Step.REMOVE:
            numbers = [invoice.number if invoice is not None else job.number]
            link = self.settle_unanswered_create(link, numbers, removing=True)
            if link and link.xero_invoice_id:
                self.remove(link, decided.why)
            return
        if decided.step == plan.Step.NOTHING:
            return
        if decided.step == plan.Step.REFUSE:
            assert link is not None
            raise JobFailed(
                plan.removed_in_xero_message(link.xero_status),
                [{"path": "status", "message": f"{link.xero_status.title()} in Xero."}],
                Reason.CHANGED_IN_XERO,
            )
        assert invoice is not None
        self.preflight(invoice, link)
        contact_id = self.contact_ids.get(invoice.contact.host_id) or contacts.xero_contact_id(
            self.connection, self.client, invoice.contact
        )
        self.contact_id = contact_id
        tax_types = self.tax_types(invoice)
        untaxed = self.untaxed_tax_type() if any(not line.tax for line in invoice.lines) else ""
        self.ensure_currency(invoice.currency)
        payload = rules.invoices.invoice_payload(
            invoice, contact_id, self.connection.revenue_account_code, tax_types, untaxed
        )
        link = self.push_invoice(link, invoice, payload)
        if link.xero_status in ("AUTHORISED", "PAID") or invoice.payments:
            self.push_payments(link, invoice)
        self.check_drift(link, invoice)

    # -- the invoice ------------------------------------------------------------------------

    def push_invoice(
        self, link: InvoiceLink | None, invoice: HostInvoice, payload: dict[str, Any]
    ) -> InvoiceLink:
        digest = rules.invoices.payload_hash(payload)
        link = self.settle_unanswered_create(link, [invoice.number])
        if link and link.xero_invoice_id and link.payload_hash == digest:
            self.refresh_totals(link, invoice)  # unchanged: no call
            self.invoice_link = link
            return link
        link = link or self.new_link()
        self.invoice_link = link
        if not link.xero_invoice_id:
            # Remembered with the create (record_create), to find it by after an unanswered call
            # even if the number is edited meanwhile.
            link.invoice_number = invoice.number
            if self.batch is not None:
                self.batch.invoices.append((self, invoice, link, payload, digest))
                raise Deferred
            if self.create_now(link, invoice, payload, digest):
                return link
        return self.update(link, invoice, payload, digest)

    def update(
        self, link: InvoiceLink, invoice: HostInvoice, payload: dict[str, Any], digest: str
    ) -> InvoiceLink:
        update = {"InvoiceID": link.xero_invoice_id, **payload}
        if link.xero_status == "PAID" or (
            link.xero_status == "AUTHORISED" and payload["Status"] == "AUTHORISED"
        ):
            update.pop("Status")
        try:
            result = self.client.post_invoice(update, idempotency_key=self.key("update", update))
        except ValidationError as exc:
            if outcomes.refused_with(exc, "not_modifiable"):
                self.learn_removed_in_xero(link, "changed", exc)
            raise
        self.save_result(link, invoice, result, digest)
        return link

    def learn_removed_in_xero(self, link: InvoiceLink, crm_change: str, exc: Exception) -> None:
        """Xero refused a change as not allowed for the invoice's status: read it, and when
        someone voided or deleted it in Xero, say so instead of repeating Xero's refusal."""
        current = self.client.invoice(link.xero_invoice_id) or {}
        status = str(current.get("Status") or "")
        if status not in ("VOIDED", "DELETED"):
            return
        self.take_xero_side(link, current)
        raise JobFailed(
            plan.removed_in_xero_message(status, crm_change),
            [{"path": "status", "message": f"{status.title()} in Xero."}],
            Reason.CHANGED_IN_XERO,
        ) from exc

    def record_create(self, link: InvoiceLink, payload: dict[str, Any], flag: bool = True) -> None:
        """Before a create is sent: its fingerprint is the proof, should the answer be lost,
        that an invoice Xero then holds under this number is ours."""
        if flag:
            self.mark_ambiguous()
        link.unanswered_creates = [*link.unanswered_creates, plan.invoice_fingerprint(payload)]
        if link.pk is None:
            link.save()
        else:
            link.save(update_fields=["invoice_number", "unanswered_creates"])

    def answered_create(
        self, link: InvoiceLink, payload: dict[str, Any], save: bool = True
    ) -> None:
        """The create was answered (or certainly never sent): it is no longer a proof."""
        fingerprint = plan.invoice_fingerprint(payload)
        remaining = list(link.unanswered_creates)
        if fingerprint in remaining:
            remaining.remove(fingerprint)
            link.unanswered_creates = remaining
            if save:
                link.save(update_fields=["unanswered_creates"])

    def create_now(
        self, link: InvoiceLink, invoice: HostInvoice, payload: dict[str, Any], digest: str
    ) -> bool:
        """Create the invoice on its own; False when it existed already (adopted, to be
        updated)."""
        self.record_create(link, payload)
        try:
            results = self.client.put_invoices(
                [payload], summarize_errors=False, idempotency_key=self.key("create", payload)
            )
        except Exception as exc:
            if certainly_not_applied(exc):
                self.answered_create(link, payload)
            raise
        return self.created(link, invoice, results[0] if results else {}, payload, digest)

    def created(
        self,
        link: InvoiceLink,
        invoice: HostInvoice,
        result: dict[str, Any],
        payload: dict[str, Any],
        digest: str,
    ) -> bool:
        """Take the answer to a create; False when the invoice existed already (adopted, and
        to be updated)."""
        if not result:
            raise JobWaits(
                "Xero's answer named no invoice; checking before sending again.",
                backoff(self.job.attempts),
                Reason.UNANSWERED,
            )
        errors = element_errors(result)
        if not errors and not result.get("InvoiceID"):
            raise JobWaits(
                "Xero's answer named no invoice; checking before sending again.",
                backoff(self.job.attempts),
                Reason.UNANSWERED,
            )
        # Answered: no longer a proof. Saved with the result below, or at once on a refusal.
        self.answered_create(link, payload, save=bool(errors))
        if outcomes.refused_with(errors, "number_taken"):
            self.settle_number(link, [invoice.number])
            if not link.xero_invoice_id:
                raise JobWaits(
                    "Xero says the invoice number is in use but shows no such invoice yet; "
                    "checking again.",
                    backoff(self.job.attempts),
                    Reason.UNANSWERED,
                )
            if self.batch is not None:
                # Its update and payments follow on the job's next run, at once.
                raise JobWaits("Found the invoice made earlier; updating it next.", 0)
            return False
        if errors:
            self.refresh_if_stale(errors)
            raise JobFailed("; ".join(str(e) for e in errors), _fields(errors))
        self.save_result(link, invoice, result, digest)
        self.invoice_link = link
        if self.batch is not None and invoice.payments and link.xero_status == "AUTHORISED":
            self.push_payments(link, invoice)
        return True

    def settle_unanswered_create(
        self, link: InvoiceLink | None, numbers: list[str], removing: bool = False
    ) -> InvoiceLink | None:
        """A create of an earlier run went unanswered: find what Xero made of it before doing
        anything else with the invoice. When the invoice is being removed, a number held by an
        invoice that is not ours only means our create made nothing."""
        if link is None or link.xero_invoice_id or not link.unanswered_creates:
            return link
        self.settle_number(link, [link.invoice_number, *numbers], fail_on_conflict=not removing)
        return link

    def settle_number(
        self, link: InvoiceLink, numbers: list[str], fail_on_conflict: bool = True
    ) -> None:
        """Look up the invoice number in Xero: adopt the invoice an unanswered create of ours
        made (proven by its fingerprint); fail with a clear message when the number belongs to
        an invoice that is not ours; otherwise forget the unanswered creates (they made
        nothing)."""
        wanted = [n for n in dict.fromkeys(numbers) if n and "," not in n]
        if not wanted:
            return
        found = self.client.invoices_by_numbers(wanted)
        conflict = None
        for number in wanted:
            decision = plan.settle_existing_number(found, number, link.unanswered_creates)
            if decision.adopt is not None:
                link.unanswered_creates = []
                link.conflict_invoice_id = ""
                self.save_result(link, None, decision.adopt, "")
                self.note(
                    "invoice_adopted",
                    SyncLog.Outcome.INFO,
                    f"Invoice {decision.adopt.get('InvoiceNumber')}: an earlier create whose "
                    "answer was lost had made it in Xero; it is linked now.",
                )
                return
            conflict = conflict or decision.conflict
        link.unanswered_creates = []
        link.save(update_fields=["unanswered_creates"])
        if conflict is not None and fail_on_conflict:
            link.conflict_invoice_id = str(conflict.get("InvoiceID") or "")
            link.save(update_fields=["conflict_invoice_id"])
            number = str(conflict.get("InvoiceNumber") or wanted[-1])
            raise JobFailed(
                plan.number_taken_message(number, conflict),
                [{"path": "number", "message": "Invoice number already used in Xero."}],
                Reason.NUMBER_TAKEN,
            )

    def save_result(
        self, link: InvoiceLink, invoice: HostInvoice | None, result: dict[str, Any], digest: str
    ) -> None:
        link.xero_invoice_id = str(result.get("InvoiceID") or link.xero_invoice_id)
        link.invoice_number = str(result.get("InvoiceNumber") or link.invoice_number)
        link.xero_status = str(result.get("Status") or link.xero_status)
        link.payload_hash = digest
        link.conflict_invoice_id = ""
        _take_amounts(link, result)
        if invoice is not None:
            link.crm_total = rules.invoices.cents(invoice.total)
            link.lines_fingerprint = lines_fingerprint(invoice)
        link.pushed_at = timezone.now()
        self._save_mismatch(link)

    def refresh_totals(self, link: InvoiceLink, invoice: HostInvoice) -> None:
        """An unchanged payload still refreshes the CRM's side of the total comparison (and a
        flag that no longer matches the figures)."""
        total = rules.invoices.cents(invoice.total)
        mismatch = link.xero_total is not None and total != link.xero_total
        if link.crm_total != total or link.total_mismatch != mismatch:
            link.crm_total = total
            self._save_mismatch(link)

    def _save_mismatch(self, link: InvoiceLink) -> None:
        was = link.total_mismatch
        link.total_mismatch = bool(
            link.crm_total is not None
            and link.xero_total is not None
            and link.crm_total != link.xero_total
        )
        link.save()
        if link.total_mismatch and not was:
            self.note(
                "total_mismatch",
                SyncLog.Outcome.FAILED,
                f"Invoice {link.invoice_number}: the CRM's total {link.crm_total} differs "
                f"from Xero's {link.xero_total}.",
            )

    def take_xero_side(self, link: InvoiceLink, xero_invoice: dict[str, Any]) -> None:
        link.xero_status = str(xero_invoice.get("Status") or link.xero_status)
        _take_amounts(link, xero_invoice)
        link.read_at = timezone.now()
        link.save()

    def check_drift(self, link: InvoiceLink, invoice: HostInvoice) -> None:
        """After a push that left nothing to send: does Xero agree with the CRM?"""
        if link.xero_amount_paid is None:
            return
        detail = plan.drift(invoice, link.xero_status, link.xero_total, link.xero_amount_paid)
        if detail != link.drift_detail:
            link.drift, link.drift_detail = bool(detail), detail
            link.save(update_fields=["drift", "drift_detail"])

    def refresh_if_stale(self, errors: list[FieldError]) -> None:
        """Xero refused one element of a shared call: as ``refresh`` for its refusal."""
        found = outcomes.classify_elements(errors)
        if found.refresh:
            self.refresh(found)

    def refresh(self, found: outcomes.Outcome) -> None:
        """Xero's refusal says our copy of its reference data is out of date (a tax rate or an
        account changed in Xero, a currency unknown, a contact merged): forget that data and
        try again soon; the next run reads it afresh. Staff's own tax mappings are kept. Gives
        up after a few tries, leaving Xero's message on the job."""
        if self.job.attempts >= STALE_RETRIES:
            return
        stale = []
        if "tax_rates" in found.refresh:
            # Only what this invoice used: a refused tax never wipes the other mappings.
            TaxRateMapping.objects.of(self.connection).filter(
                set_by_staff=False, host_id__in=self.used_tax_mappings
            ).delete()
            XeroConnection.objects.filter(pk=self.connection.pk, untaxed_set_by_staff=False).update(
                untaxed_tax_type=""
            )
            self.run_.tax_rates = None
            stale.append("tax rates")
        if "currencies" in found.refresh:
            XeroConnection.objects.filter(pk=self.connection.pk).update(currencies=[])
            stale.append("currencies")
        if "accounts" in found.refresh:
            connect.load_reference_data(self.connection.pk)
            stale.append("accounts")
        if "contacts" in found.refresh and contacts.follow_merge(
            self.connection, self.client, self.contact_id
        ):
            stale.append("contacts")
        if stale:
            # New keys for the next try: Xero would replay its refusal for the old ones.
            SyncJob.objects.filter(pk=self.job.pk).update(key_generation=F("key_generation") + 1)
            raise JobWaits(
                f"Xero's {' and '.join(stale)} changed; reading them again. ({found.message})", 1
            )

    def link_id(self) -> str:
        assert self.invoice_link is not None
        return self.invoice_link.xero_invoice_id

    # -- taxes and currencies ---------------------------------------------------------------

    def preflight(self, invoice: HostInvoice, link: InvoiceLink | None) -> None:
        """What Xero would refuse is not sent: the job waits for a fix in the CRM (or for the
        default accounts to be chosen), with every problem named."""
        found = preflight.check_data(invoice, self.connection, link)
        if not found:
            return
        setup = {"revenue_account_code", "payment_account_id"}
        reason = Reason.SETUP if all(p.field in setup for p in found) else Reason.NEEDS_FIX
        raise JobFailed(" ".join(p.message for p in found), [p.as_dict() for p in found], reason)

    def tax_rates(self) -> list[dict[str, Any]]:
        """The organisation's tax rates, read once a run."""
        if self.run_.tax_rates is None:
            self.run_.tax_rates = self.client.tax_rates()
        return self.run_.tax_rates

    def untaxed_tax_type(self) -> str:
        """The organisation's own rate for lines without a tax: chosen by staff, or read once
        from its rates and kept (Australia has no NONE)."""
        connection = self.connection
        if connection.untaxed_tax_type:
            return connection.untaxed_tax_type
        chosen = rules.invoices.untaxed_rate(self.tax_rates(), connection.country_code)
        if chosen is None:
            raise JobFailed(
                "The organisation has no tax rate for lines without a tax (0%, for revenue). "
                "Choose one in admin (the Xero connection's “tax rate for untaxed lines”), "
                "then retry.",
                [{"path": "tax", "message": "No Xero tax rate for untaxed lines."}],
                Reason.SETUP,
            )
        connection.untaxed_tax_type = str(chosen["TaxType"])
        XeroConnection.objects.filter(pk=connection.pk, untaxed_set_by_staff=False).update(
            untaxed_tax_type=connection.untaxed_tax_type
        )
        return connection.untaxed_tax_type

    def staff_mapping(self, mapping: TaxRateMapping, tax: Any) -> str:
        """Staff chose this Xero rate for the CRM tax at its rate then: a later change of the
        CRM's rate is flagged for them, never used silently."""
        rate = rules.invoices.effective_rate([(c.rate, c.compound) for c in tax.components])
        if mapping.rate is None and not mapping.needs_review:
            TaxRateMapping.objects.filter(pk=mapping.pk).update(rate=rate)
        elif mapping.needs_review or rules.invoices.four(mapping.rate) != rate:
            TaxRateMapping.objects.filter(pk=mapping.pk).update(needs_review=True)
            was = f" when it was {mapping.rate.normalize():f}%" if mapping.rate is not None else ""
            raise JobFailed(
                f"The CRM tax “{tax.name}” is {rate.normalize():f}% now; staff mapped it to "
                f"Xero's {mapping.xero_name or mapping.tax_type} ({mapping.tax_type}){was}. "
                "Check the mapping in admin (Xero tax rate mappings) and save it again, then "
                "retry.",
                [{"path": "tax", "message": f"The mapping of {tax.name} needs a review."}],
                Reason.SETUP,
            )
        return mapping.tax_type

    def tax_types(self, invoice: HostInvoice) -> dict[str, str]:
        import json

        taxes = {line.tax.host_id: line.tax for line in invoice.lines if line.tax}
        self.used_tax_mappings = list(taxes)
        if not taxes:
            return {}
        mappings = {
            m.host_id: m
            for m in TaxRateMapping.objects.of(self.connection).filter(host_id__in=list(taxes))
        }
        result: dict[str, str] = {}
        rates: list[dict[str, Any]] | None = None
        for host_id, tax in taxes.items():
            mapping = mappings.get(host_id)
            components = json.dumps(rules.invoices.host_tax_signature(tax))
            if mapping and mapping.tax_type and mapping.set_by_staff:
                result[host_id] = self.staff_mapping(mapping, tax)
                continue
            if mapping and mapping.tax_type and mapping.components == components:
                result[host_id] = mapping.tax_type
                continue
            if rates is None:
                rates = self.tax_rates()
            match = rules.invoices.match_tax_rate(
                tax, rates, untaxed=self.connection.untaxed_tax_type or "NONE"
            )
            created = False
            if match is None:
                if not app_settings.CREATE_TAX_RATES:
                    TaxRateMapping.objects.get_or_create(
                        account_key=self.job.account_key,
                        tenant_id=self.connection.tenant_id,
                        host_id=host_id,
                        defaults={"name": tax.name},
                    )
                    raise JobFailed(
                        f"No Xero tax rate matches the CRM tax “{tax.name}”. Map it to a Xero tax "
                        "rate in admin (Xero tax rate mappings), then retry.",
                        [{"path": "tax", "message": f"Unmapped tax {tax.name}"}],
                        Reason.SETUP,
                    )
                body = rules.invoices.new_tax_rate(tax, self.connection.country_code)
                taken = {str(r.get("Name", "")).strip().lower() for r in rates}
                if body["Name"].strip().lower() in taken:
                    # Xero keeps tax rate names unique: say the rate in the new one's name.
                    body["Name"] = rules.invoices.distinct_tax_name(tax)
                match = self.client.create_tax_rate(
                    body, idempotency_key=self.organisation_key("tax", body)
                )
                created = True
            TaxRateMapping.objects.update_or_create(
                account_key=self.job.account_key,
                tenant_id=self.connection.tenant_id,
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
                    Reason.SETUP,
                )
            try:
                self.client.add_currency(code, idempotency_key=self.key("currency", code))
            except ValidationError as exc:
                raise JobFailed(
                    CURRENCY_HELP.format(code=code), _fields(exc.errors), Reason.SETUP
                ) from exc
            known.append(code)
        connection.currencies = sorted(set(known))
        XeroConnection.objects.filter(pk=connection.pk).update(currencies=connection.currencies)

    # -- payments ----------------------------------------------------------------------------

    def payment_links(self) -> list[PaymentLink]:
        return list(
            PaymentLink.objects.of(self.connection)
            .filter(invoice_host_id=self.job.host_id)
            .exclude(state=PaymentLink.State.DELETED)
            .order_by("pk")
        )

    def xero_payments(self, link: InvoiceLink) -> list[plan.XeroPayment]:
        """The invoice's payments as Xero holds them now (one read)."""
        current = self.client.invoice(link.xero_invoice_id) or {}
        if current:
            self.take_xero_side(link, current)
        return plan.xero_payments(current)

    def push_payments(self, link: InvoiceLink, invoice: HostInvoice) -> None:
        links = self.payment_links()
        records = [_record(p) for p in links]
        xero = self.xero_payments(link) if plan.needs_xero_payments(records) else None
        decided = plan.plan_payments(invoice.payments, records, xero)
        self.settle_payment_records(links, decided)
        for record in decided.delete:
            self.delete_payment(_find(links, record))
        creations = list(decided.create)
        if creations:
            account_id = self.connection.payment_account_id
            if not account_id:
                raise JobFailed(
                    "Choose the account payments go to in Settings → Integrations → Xero, then "
                    "retry.",
                    [{"path": "payment_account_id", "message": "No payment account chosen."}],
                    Reason.SETUP,
                )
            bodies = [
                rules.invoices.payment_payload(p, link.xero_invoice_id, account_id)
                for p in creations
            ]
            if self.batch is not None and not decided.delete and not decided.refusals:
                self.invoice_link = link
                self.batch.payments.extend(
                    (self, payment, body) for payment, body in zip(creations, bodies, strict=True)
                )
                raise Deferred
            self.create_payments(creations, bodies)
        self.update_amount_due(link)
        if decided.refusals:
            raise JobFailed(
                " ".join(decided.refusals),
                [{"path": "payments", "message": r} for r in decided.refusals],
                Reason.CHANGED_IN_XERO,
            )

    def settle_payment_records(self, links: list[PaymentLink], decided: plan.PaymentPlan) -> None:
        """What Xero showed of unanswered payment writes, written to the links."""
        for record, payment_id in decided.adopt:
            found = _find(links, record)
            found.xero_payment_id, found.state = payment_id, PaymentLink.State.LINKED
            found.save(update_fields=["xero_payment_id", "state", "updated_at"])
            self.note(
                "payment_adopted",
                SyncLog.Outcome.INFO,
                f"Invoice {self.job.number}: the payment of {found.amount} on {found.date}, whose "
                "answer was lost, is in Xero; linked.",
            )
        for record in decided.forget:
            _find(links, record).delete()
        for record in decided.confirm_deleted:
            found = _find(links, record)
            found.state = PaymentLink.State.DELETED
            found.save(update_fields=["state", "updated_at"])

    def delete_payment(self, payment: PaymentLink) -> None:
        """Delete one of our payments in Xero, recording the attempt first; Xero saying it is
        deleted already counts as done."""
        payment.state = PaymentLink.State.DELETING
        payment.save(update_fields=["state", "updated_at"])
        try:
            self.client.delete_payment(
                payment.xero_payment_id,
                idempotency_key=self.key("delete", payment.xero_payment_id),
            )
        except Exception as exc:
            already_gone = isinstance(exc, ValidationError) and outcomes.refused_with(
                exc, "payment_already_deleted"
            )
            if not already_gone:
                if certainly_not_applied(exc):
                    payment.state = PaymentLink.State.LINKED  # still in Xero
                    payment.save(update_fields=["state", "updated_at"])
                raise
        payment.state = PaymentLink.State.DELETED
        payment.save(update_fields=["state", "updated_at"])

    def record_payment_create(
        self, payment: HostPayment, body: dict[str, Any], flag: bool = True
    ) -> PaymentLink:
        """Before a payment create is sent: the record that settles it should the answer be
        lost."""
        if flag:
            self.mark_ambiguous()
        return PaymentLink.objects.create(
            account_key=self.job.account_key,
            tenant_id=self.connection.tenant_id,
            invoice_host_id=self.job.host_id,
            host_model=payment.host_model,
            host_id=payment.host_id,
            xero_payment_id="",
            state=PaymentLink.State.SENDING,
            origin=PaymentLink.Origin.CRM,
            amount=rules.invoices.cents(payment.amount),
            date=payment.date,
            reference=(payment.reference or "")[:255],
            account_id=str((body.get("Account") or {}).get("AccountID") or ""),
        )

    def payment_created(self, record: PaymentLink, payment_id: str) -> None:
        record.xero_payment_id, record.state = payment_id, PaymentLink.State.LINKED
        record.save(update_fields=["xero_payment_id", "state", "updated_at"])

    def create_payments(self, creations: list[HostPayment], bodies: list[dict[str, Any]]) -> None:
        records = [self.record_payment_create(p, b) for p, b in zip(creations, bodies, strict=True)]
        try:
            results = self.client.put_payments(
                bodies, summarize_errors=False, idempotency_key=self.key("payments", bodies)
            )
        except Exception as exc:
            if certainly_not_applied(exc):
                for record in records:
                    record.delete()
            raise
        if len(results) != len(records):
            raise JobWaits(
                "Xero's answer did not list every payment sent; checking before sending again.",
                backoff(self.job.attempts),
                Reason.UNANSWERED,
            )
        problems: list[FieldError] = []
        for record, result in zip(records, results, strict=True):
            errors = element_errors(result)
            if errors:
                record.delete()
                problems.extend(errors)
            elif result.get("PaymentID"):
                self.payment_created(record, str(result["PaymentID"]))
        if problems:
            raise JobFailed("; ".join(str(e) for e in problems), _fields(problems))

    def update_amount_due(self, link: InvoiceLink | None = None) -> None:
        link = link or self.invoice_link
        assert link is not None
        paid = sum(
            (
                p.amount
                for p in PaymentLink.objects.of(self.connection).filter(
                    invoice_host_id=self.job.host_id, state=PaymentLink.State.LINKED
                )
            ),
            Decimal("0"),
        )
        if link.xero_total is not None and link.xero_status in ("AUTHORISED", "PAID"):
            link.xero_amount_paid = paid
            link.xero_amount_due = link.xero_total - paid
            link.xero_status = "PAID" if link.xero_amount_due <= 0 else "AUTHORISED"
            link.save(update_fields=["xero_amount_paid", "xero_amount_due", "xero_status"])

    # -- void and delete ---------------------------------------------------------------------

    def remove(self, link: InvoiceLink, why: str) -> None:
        """Void the Xero invoice (delete it if it is a draft there), our payments first. A
        payment someone recorded in Xero is never deleted: the void then fails, naming it."""
        if link.removed_in_xero:
            return
        links = self.payment_links()
        records = [_record(p) for p in links]
        ours_paid = sum((r.amount for r in records if r.origin == plan.FROM_CRM), Decimal(0))
        xero = None
        if plan.needs_xero_payments(records) or (
            link.xero_amount_paid is not None and link.xero_amount_paid > ours_paid
        ):
            xero = self.xero_payments(link)
            if link.removed_in_xero:
                return
        if xero is not None:
            decided = plan.plan_payments((), records, xero)
            self.settle_payment_records(links, decided)
            links = self.payment_links()
            records = [_record(p) for p in links]
            foreign = plan.foreign_payments(xero, records)
            if foreign:
                raise JobFailed(
                    plan.void_refused_message(foreign),
                    [{"path": "payments", "message": p.describe()} for p in foreign],
                    Reason.CHANGED_IN_XERO,
                )
        target = "DELETED" if link.xero_status in ("DRAFT", "SUBMITTED") else "VOIDED"
        if target == "VOIDED":
            ours = [p for p in links if p.origin == PaymentLink.Origin.CRM]
            for payment in ours:
                self.delete_payment(payment)
            if ours:
                self.note(
                    "payments_removed",
                    SyncLog.Outcome.INFO,
                    f"Invoice {link.invoice_number}: removed {len(ours)} payment(s) sent from "
                    "the CRM so that the invoice could be voided.",
                )
        body = {"InvoiceID": link.xero_invoice_id, "Status": target}
        try:
            result = self.client.post_invoice(body, idempotency_key=self.key(target, body))
        except ValidationError as exc:
            if outcomes.refused_with(exc, "payment_allocated") or outcomes.refused_with(
                exc, "not_modifiable"
            ):
                self.explain_refused_removal(link, exc)
            raise
        self.save_result(link, None, result, link.payload_hash)
        self.note(
            "invoice_removed",
            SyncLog.Outcome.INFO,
            f"Invoice {link.invoice_number}: {why} It is {target.lower()} in Xero.",
        )

    def explain_refused_removal(self, link: InvoiceLink, exc: Exception) -> None:
        """Xero refused the void or delete: read the invoice and say why in plain words (a
        payment recorded in Xero, or the invoice already voided, deleted or approved there)."""
        xero = self.xero_payments(link)
        if link.removed_in_xero:
            raise JobWaits("Xero's copy changed; settling it.", 0) from exc
        foreign = plan.foreign_payments(xero, [_record(p) for p in self.payment_links()])
        if foreign:
            raise JobFailed(
                plan.void_refused_message(foreign),
                [{"path": "payments", "message": p.describe()} for p in foreign],
                Reason.CHANGED_IN_XERO,
            ) from exc
        if link.xero_status not in ("DRAFT", "SUBMITTED"):
            # Approved in Xero since we last looked: the next try voids instead of deleting.
            raise JobWaits("The invoice was approved in Xero; voiding it instead.", 0) from exc


def _take_amounts(link: InvoiceLink, xero_invoice: dict[str, Any]) -> None:
    for name, key in (
        ("xero_total", "Total"),
        ("xero_amount_due", "AmountDue"),
        ("xero_amount_paid", "AmountPaid"),
    ):
        if xero_invoice.get(key) is not None:
            setattr(link, name, rules.invoices.cents(Decimal(str(xero_invoice[key]))))


def _record(link: PaymentLink) -> plan.PaymentRecord:
    return plan.PaymentRecord(
        host_model=link.host_model,
        host_id=link.host_id,
        xero_payment_id=link.xero_payment_id,
        state=link.state,
        origin=link.origin,
        amount=link.amount,
        date=link.date,
        reference=link.reference,
        account_id=link.account_id,
    )


def _find(links: list[PaymentLink], record: plan.PaymentRecord) -> PaymentLink:
    """The link a record was made from (an adopted one carries its PaymentID by now)."""
    return next(
        link
        for link in links
        if (link.host_model, link.host_id, link.xero_payment_id)
        == (record.host_model, record.host_id, record.xero_payment_id)
    )
