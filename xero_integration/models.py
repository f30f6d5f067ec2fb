"""Models of xero_integration: the connection of a CRM account to one Xero organisation, and logs.

Host objects are referred to by ``host_model`` ("app_label.model") and ``host_id`` strings, and
CRM accounts by ``account_key``, so these tables never depend on the host's migrations.
"""

from __future__ import annotations

import enum
import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

from xero_integration.fields import EncryptedTextField, UnreadableSecret


class OrganisationQuerySet(models.QuerySet):
    """Rows that belong to one CRM account's facts about one Xero organisation."""

    def of(self, connection: XeroConnection) -> OrganisationQuerySet:
        """This account's rows for the organisation it is connected to now."""
        return self.filter(account_key=connection.account_key, tenant_id=connection.tenant_id)


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
    # Currency codes the organisation has added (its base currency included), as last read.
    currencies = models.JSONField(default=list, blank=True)
    payment_account_id = models.CharField("payment account", max_length=64, blank=True)
    revenue_account_code = models.CharField("revenue account", max_length=10, blank=True)
    # The default accounts chosen for each organisation this account has been connected to,
    # so that switching back to an organisation carries on with its own choices.
    organisation_defaults = models.JSONField(default=dict, blank=True)
    # Xero's clock at the last read of invoice and payment changes (If-Modified-Since).
    xero_changes_read_until = models.DateTimeField(null=True, blank=True)
    # The organisation's tax rate for lines without a tax: chosen from its own rates (NONE where
    # it exists; AU has none), or by staff.
    untaxed_tax_type = models.CharField(
        "tax rate for untaxed lines",
        max_length=50,
        blank=True,
        help_text="The TaxType Xero gets for invoice lines without a tax (e.g. NONE, or "
        "EXEMPTOUTPUT in Australia). Empty: chosen from the organisation's own rates.",
    )
    untaxed_set_by_staff = models.BooleanField(default=False)
    # Read from /Organisation and /Organisation/Actions, for the pre-flight check.
    period_lock_date = models.DateField(null=True, blank=True)
    end_of_year_lock_date = models.DateField(null=True, blank=True)
    multicurrency = models.BooleanField("multi-currency allowed", null=True, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    #: Set on load: the tokens cannot be decrypted with the configured keys...
    tokens_unreadable = False
    #: ...and the row says connected, so it was loaded as needing a reconnect.
    stored_as_connected = False

    #: Why a connection whose tokens no configured key decrypts needs reconnecting.
    UNREADABLE_TOKENS_REASON = (
        "The stored Xero authorisation cannot be decrypted: the encryption key it was saved "
        "with is no longer in XERO_ENCRYPTION_KEYS. Reconnect to Xero to resume syncing."
    )

    class Meta:
        verbose_name = "Xero connection"
        permissions = [
            ("import_contacts_xeroconnection", "Can import contact changes from Xero now"),
            ("disconnect_xeroconnection", "Can disconnect a CRM account from Xero"),
        ]
        constraints = [
            # One CRM account per organisation: Xero's webhooks for it reach one account, and
            # no account's disconnect can end another's connection.
            models.UniqueConstraint(
                fields=["tenant_id"],
                condition=models.Q(
                    status__in=[ConnectionStatus.CONNECTED, ConnectionStatus.NEEDS_RECONNECT]
                )
                & ~models.Q(tenant_id=""),
                name="xero_connection_one_account_per_tenant",
            )
        ]

    def __str__(self) -> str:
        return f"{self.tenant_name or 'Xero'} ({self.get_status_display()})"

    @classmethod
    def from_db(cls, db: str | None, field_names: Any, values: Any) -> XeroConnection:
        """A connected row whose tokens cannot be decrypted loads as needing a reconnect (with
        the reason), so pages show what to do and workers wait instead of failing."""
        instance = super().from_db(db, field_names, values)
        # __dict__, not attributes: reading a deferred field here would query again.
        loaded = instance.__dict__
        instance.tokens_unreadable = any(
            isinstance(loaded.get(name), UnreadableSecret)
            for name in ("access_token", "refresh_token")
        )
        if instance.tokens_unreadable and loaded.get("status") == ConnectionStatus.CONNECTED:
            instance.status = ConnectionStatus.NEEDS_RECONNECT
            instance.status_reason = cls.UNREADABLE_TOKENS_REASON
            instance.stored_as_connected = True
        return instance

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

    def remember_defaults(self) -> None:
        """Keep the current organisation's default accounts (the caller saves)."""
        if self.tenant_id:
            self.organisation_defaults[self.tenant_id] = {
                "payment_account_id": self.payment_account_id,
                "revenue_account_code": self.revenue_account_code,
                "untaxed_tax_type": self.untaxed_tax_type if self.untaxed_set_by_staff else "",
            }

    def switch_organisation(self, tenant_id: str) -> None:
        """Point the connection at another organisation: what was read from the previous one
        (accounts, currencies, details) is dropped, and the new one's default accounts are those
        chosen when it was last connected (the caller saves). Links and mappings are kept per
        organisation, so nothing of the previous organisation is used for the new one."""
        self.remember_defaults()
        defaults = self.organisation_defaults.get(tenant_id, {})
        self.tenant_id = tenant_id
        self.accounts = []
        self.accounts_loaded_at = None
        self.currencies = []
        self.short_code = ""
        self.base_currency = ""
        self.country_code = ""
        self.xero_changes_read_until = None
        self.period_lock_date = self.end_of_year_lock_date = self.multicurrency = None
        self.payment_account_id = defaults.get("payment_account_id", "")
        self.revenue_account_code = defaults.get("revenue_account_code", "")
        self.untaxed_set_by_staff = bool(defaults.get("untaxed_tax_type"))
        self.untaxed_tax_type = defaults.get("untaxed_tax_type", "")

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
    """An append-only record of what the integration did with Xero and what Xero answered.

    It outlives its connection (``account_key`` still says whose it is): a deleted connection
    leaves its log in place.
    """

    class Outcome(models.TextChoices):
        OK = "ok", "OK"
        FAILED = "failed", "Failed"
        INFO = "info", "Info"

    connection = models.ForeignKey(
        XeroConnection, null=True, blank=True, on_delete=models.SET_NULL, related_name="logs"
    )
    account_key = models.CharField(max_length=100, db_index=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    action = models.CharField(max_length=255)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.OK)
    message = models.TextField(blank=True)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    correlation_id = models.CharField(max_length=64, blank=True)
    details = models.JSONField(default=dict, blank=True)
    job = models.ForeignKey(
        "SyncJob", null=True, blank=True, on_delete=models.SET_NULL, related_name="logs"
    )
    host_id = models.CharField(max_length=64, blank=True, db_index=True)
    request_body = models.TextField(blank=True)
    response_body = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["connection", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.action} {self.outcome}"


class ContactLink(models.Model):
    """A host CRM contact linked to one Xero contact, and how the link was made.

    A row without ``xero_contact_id`` is a claim: the worker holding its lock is finding or
    creating the contact in Xero, and others wait for it instead of creating a second one.
    """

    class Status(models.TextChoices):
        ACTIVE = "active", "Active in Xero"
        ARCHIVED = "archived", "Archived in Xero"
        MERGED = "merged", "Merged in Xero"

    class MatchedBy(models.TextChoices):
        IMPORTED = "imported", "Imported from Xero"
        CONTACT_NUMBER = "contact_number", "Contact number"
        EMAIL = "email", "Email"
        NAME = "name", "Name"
        CREATED = "created", "Created in Xero"
        MANUAL = "manual", "Linked by staff"

    account_key = models.CharField(max_length=100)
    tenant_id = models.CharField("Xero tenant id", max_length=64, blank=True)
    host_model = models.CharField(max_length=100)
    host_id = models.CharField(max_length=64)
    xero_contact_id = models.CharField("Xero ContactID", max_length=64, null=True, blank=True)
    xero_name = models.CharField("name in Xero", max_length=255, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    merged_into = models.CharField("merged into ContactID", max_length=64, blank=True)
    matched_by = models.CharField(max_length=20, choices=MatchedBy.choices, blank=True)
    xero_updated_at = models.DateTimeField("updated in Xero", null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = OrganisationQuerySet.as_manager()

    class Meta:
        verbose_name = "Xero contact link"
        constraints = [
            models.UniqueConstraint(
                fields=["account_key", "tenant_id", "host_model", "host_id"],
                name="xero_contact_link_host",
            ),
        ]
        # Two CRM contacts may be one Xero contact (the same customer entered twice).
        indexes = [models.Index(fields=["account_key", "tenant_id", "xero_contact_id"])]

    def __str__(self) -> str:
        return f"{self.host_model}:{self.host_id} → {self.xero_name or self.xero_contact_id}"


class ContactImport(models.Model):
    """One run of the contact import (full on connect, or incremental), resumable by page."""

    class Kind(models.TextChoices):
        FULL = "full", "All active contacts"
        CHANGES = "changes", "Changes since the last import"

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        WAITING = "waiting", "Waiting for Xero's rate limit"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    connection = models.ForeignKey(
        XeroConnection, on_delete=models.CASCADE, related_name="contact_imports"
    )
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.FULL)
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    modified_since = models.DateTimeField(null=True, blank=True)
    # The latest UpdatedDateUTC seen, in Xero's clock: where the next incremental import starts.
    high_water = models.DateTimeField(null=True, blank=True)
    next_page = models.PositiveIntegerField(default=1)
    imported = models.PositiveIntegerField("contacts processed", default=0)
    total = models.PositiveIntegerField("contacts in Xero", null=True, blank=True)
    created = models.PositiveIntegerField("new in the CRM", default=0)
    archived = models.PositiveIntegerField("archived or merged in Xero", default=0)
    error = models.TextField(blank=True)
    resume_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} ({self.get_state_display()}): {self.progress}"

    @property
    def is_active(self) -> bool:
        return self.state in (self.State.QUEUED, self.State.RUNNING, self.State.WAITING)

    @property
    def progress(self) -> str:
        """ "12,000 of 48,210" (or just the count while the total is unknown)."""
        if self.total is None:
            return f"{self.imported:,}"
        return f"{self.imported:,} of {self.total:,}"


_RECORD_CHANGE = """
INSERT INTO {job} ({columns})
SELECT {placeholders}
WHERE EXISTS (SELECT 1 FROM {connection} WHERE account_key = %s)
ON CONFLICT (account_key, host_model, host_id) DO UPDATE SET
    change_seq = {job}.change_seq + 1,
    number = excluded.number,
    deleted = excluded.deleted,
    state = CASE WHEN {job}.state IN (%s, %s) THEN {job}.state ELSE %s END,
    updated_at = CASE WHEN {job}.state = %s THEN {job}.updated_at ELSE excluded.updated_at END
RETURNING updated_at
"""


class Recorded(enum.IntEnum):
    """What recording a host change did (true when a job holds it)."""

    NOTHING = 0  #: the account never connected
    QUEUED_ALREADY = 1  #: the job was pending: the run queued for it takes this change too
    NEW_WORK = 2  #: a new job, or one that was done, failed, running or waiting


def _new_job_row(values: dict[str, Any]) -> tuple[list[str], list[Any]]:
    """Every column of a new sync job, with the model's own defaults for those not given, as
    the database wants them."""
    from django.db import connection as db_connection

    columns, params = [], []
    for model_field in SyncJob._meta.concrete_fields:
        if model_field.primary_key:
            continue
        name = model_field.name
        value = values[name] if name in values else model_field.get_default()
        columns.append(db_connection.ops.quote_name(model_field.column))
        params.append(model_field.get_db_prep_save(value, db_connection))
    return columns, params


class SyncJobQuerySet(models.QuerySet):
    """The sync job's states and every move between them: nothing else assigns ``state``.

    pending → running (``claim``) → done (``finish``), waiting (``wait``), failed (``fail``) or
    back to pending (``hand_back``); waiting → running once due; failed or waiting → pending
    (``retry``, ``requeue``); failed → resolved (``resolve``). A host save adds a job or bumps
    its ``change_seq`` (``SyncJobManager.enqueue``). The moves of a running job apply to the
    jobs this worker holds (``held``), so a worker whose claim was taken over changes nothing.
    """

    def due(self, now: Any = None, connected: bool = True) -> SyncJobQuerySet:
        """Jobs a worker may take now: pending; waiting past its time (or for a reconnect,
        once ``connected``); running with an expired lease (its worker died)."""
        now = now or timezone.now()
        State = SyncJob.State
        due = (
            models.Q(state=State.PENDING)
            | models.Q(state=State.WAITING, not_before__lte=now)
            | models.Q(state=State.RUNNING, lease_until__lt=now)
        )
        if connected:
            due |= models.Q(state=State.WAITING, not_before=None)
        return self.filter(due)

    def claim(self, token: str, lease_until: Any) -> int:
        """Take these due jobs under ``token`` (call on ``due()``); how many were taken."""
        return self.update(
            state=SyncJob.State.RUNNING,
            lease_until=lease_until,
            claim_token=token,
            updated_at=timezone.now(),
        )

    def held(self, token: str) -> SyncJobQuerySet:
        """The jobs a worker holds under ``token``."""
        return self.filter(claim_token=token, state=SyncJob.State.RUNNING)

    def renew(self, lease_until: Any, ambiguous: bool = False) -> int:
        """Extend the lease of held jobs (``ambiguous``: a write is about to go)."""
        changes: dict[str, Any] = {"lease_until": lease_until}
        if ambiguous:
            changes["ambiguous"] = True
        return self.update(**changes)

    def finish(self, seq: int) -> int:
        """Held jobs pushed as of change ``seq`` are done (one saved since stays running, for
        ``hand_back``)."""
        return self.filter(change_seq=seq).update(
            state=SyncJob.State.DONE,
            done_seq=seq,
            error="",
            error_fields=[],
            reason="",
            attempts=0,
            ambiguous=False,
            lease_until=None,
            not_before=None,
            updated_at=timezone.now(),
        )

    def hand_back(self, settled: bool = False) -> int:
        """Held jobs go back to pending: time is up, or (``settled``: every write of the run
        was answered) they changed while being pushed."""
        changes: dict[str, Any] = {
            "state": SyncJob.State.PENDING,
            "lease_until": None,
            "updated_at": timezone.now(),
        }
        if settled:
            changes["ambiguous"] = False
        return self.update(**changes)

    def fail(self, message: str, fields: list[dict[str, str]], reason: str) -> int:
        """Held jobs failed: kept with the message until the CRM changes or staff retry."""
        return self.update(
            state=SyncJob.State.FAILED,
            error=message,
            error_fields=fields,
            reason=reason,
            lease_until=None,
            updated_at=timezone.now(),
        )

    def wait(
        self, message: str, reason: str, not_before: Any, attempts: int, ambiguous: bool
    ) -> int:
        """Held jobs wait until ``not_before`` (None: until the account is connected)."""
        return self.update(
            state=SyncJob.State.WAITING,
            error=message,
            reason=reason,
            not_before=not_before,
            lease_until=None,
            attempts=attempts,
            ambiguous=ambiguous,
            updated_at=timezone.now(),
        )

    def retry(self, new_keys: bool = True) -> list[tuple[str, str, str]]:
        """Staff's Retry (and the like): these jobs, unless running, are due now, with new
        Idempotency-Keys (``new_keys``) so that Xero does not replay an earlier refusal.
        Returns the (account, model, id) of each, to queue its run."""
        jobs = self.exclude(state=SyncJob.State.RUNNING)
        keys = list(jobs.values_list("pk", "account_key", "host_model", "host_id"))
        changes: dict[str, Any] = {
            "state": SyncJob.State.PENDING,
            "not_before": None,
            "attempts": 0,
            "reason": "",
            "updated_at": timezone.now(),
        }
        if new_keys:
            changes["key_generation"] = models.F("key_generation") + 1
        SyncJob.objects.filter(pk__in=[k[0] for k in keys]).exclude(
            state=SyncJob.State.RUNNING
        ).update(**changes)
        return [tuple(k[1:]) for k in keys]  # type: ignore[misc]

    def record_change(
        self, account_key: str, host_model: str, host_id: str, number: str, deleted: bool
    ) -> Recorded:
        """A host invoice changed: add its job, or count the change on it (one statement, in
        the host's transaction). Nothing is recorded for an account that never connected.
        A running or waiting job keeps its state (the running worker pushes again; a wait is
        Xero's); any other becomes pending. A pending job keeps the time it became pending
        (the sweeper's grace counts from then) and says so: a run is queued for it already."""
        from django.db import connection as db_connection

        now = timezone.now()
        columns, params = _new_job_row(
            {
                "account_key": account_key,
                "host_model": host_model,
                "host_id": host_id,
                "number": number[:255],
                "state": SyncJob.State.PENDING,
                "deleted": deleted,
                "created_at": now,
                "updated_at": now,
            }
        )
        sql = _RECORD_CHANGE.format(
            job=SyncJob._meta.db_table,
            connection=XeroConnection._meta.db_table,
            columns=", ".join(columns),
            placeholders=", ".join(["%s"] * len(columns)),
        )
        with db_connection.cursor() as cursor:
            cursor.execute(
                sql,
                [
                    *params,
                    account_key,
                    SyncJob.State.RUNNING,
                    SyncJob.State.WAITING,
                    SyncJob.State.PENDING,
                    SyncJob.State.PENDING,
                ],
            )
            row = cursor.fetchone()
        if row is None:
            return Recorded.NOTHING
        # The row keeps the time this statement sent unless the job was pending already (the
        # database hands back what it stored: the same value, as sent).
        sent = params[columns.index(db_connection.ops.quote_name("updated_at"))]
        stored = row[0]
        if isinstance(sent, str):  # SQLite keeps the text sent, and may hand back a datetime
            stored = str(stored)
        return Recorded.NEW_WORK if stored == sent else Recorded.QUEUED_ALREADY

    def resolve(self) -> int:
        """Staff's Mark resolved: jobs that are not running stop asking for attention."""
        return self.exclude(state=SyncJob.State.RUNNING).update(
            state=SyncJob.State.RESOLVED, updated_at=timezone.now()
        )


class SyncJob(models.Model):
    """The outbox: one row per host invoice that has changes Xero has not received yet.

    A transaction that changes the invoice adds one to ``change_seq``, in that transaction
    (however many of its rows it saves; changes before the push coalesce into one job); a
    worker pushes the invoice as it is then and records the sequence it covered, so a change
    committed during the push makes the job run again.
    """

    class State(models.TextChoices):
        PENDING = "pending", "Waiting to run"
        RUNNING = "running", "Running"
        WAITING = "waiting", "Waiting for Xero"
        FAILED = "failed", "Failed"
        DONE = "done", "Done"
        RESOLVED = "resolved", "Resolved by staff"

    class Reason(models.TextChoices):
        """Why a job waits or failed: what has to happen before it can go on."""

        NONE = "", "—"
        RECONNECT = "reconnect", "Waiting for a reconnect"
        RATE_LIMIT = "rate_limit", "Waiting for Xero's rate limit"
        UNAVAILABLE = "unavailable", "Xero unavailable"
        UNANSWERED = "unanswered", "Checking an unanswered write"
        SETUP = "setup", "Waiting for set-up"
        REFUSED = "refused", "Refused by Xero"
        NUMBER_TAKEN = "number_taken", "Invoice number used in Xero"
        CHANGED_IN_XERO = "changed_in_xero", "Changed in Xero"
        NEEDS_FIX = "needs_fix", "Needs a fix in the CRM"
        ADAPTER = "adapter", "The CRM's adapter failed"
        CRASHED = "crashed", "Unexpected error"

    account_key = models.CharField(max_length=100)
    host_model = models.CharField(max_length=100)
    host_id = models.CharField(max_length=64)
    number = models.CharField("invoice number", max_length=255, blank=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    change_seq = models.PositiveIntegerField(default=1)
    done_seq = models.PositiveIntegerField(default=0)
    deleted = models.BooleanField("deleted in the CRM", default=False)
    attempts = models.PositiveIntegerField(default=0)
    not_before = models.DateTimeField(null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    # A write whose outcome is unknown (timeout, lost response): reconcile before writing again.
    ambiguous = models.BooleanField(default=False)
    # Which worker's claim the job is under; a worker whose claim was taken over stops.
    claim_token = models.CharField(max_length=32, blank=True)
    # Bumped by staff's Retry: the writes get new Idempotency-Keys, so Xero does not replay an
    # error it answered before the fix.
    key_generation = models.PositiveIntegerField(default=0)
    error = models.TextField("Xero's message", blank=True)
    error_fields = models.JSONField(default=list, blank=True)
    reason = models.CharField(max_length=20, choices=Reason.choices, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    objects = SyncJobQuerySet.as_manager()

    class Meta:
        verbose_name = "sync job"
        permissions = [
            ("retry_syncjob", "Can retry sync jobs"),
            ("resolve_syncjob", "Can mark sync jobs resolved"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["account_key", "host_model", "host_id"], name="xero_sync_job_host"
            )
        ]
        indexes = [models.Index(fields=["state", "not_before"])]

    def __str__(self) -> str:
        return f"Invoice {self.number or self.host_id} ({self.get_state_display()})"


class InvoiceLink(models.Model):
    """A host invoice and its invoice in one Xero organisation: what was last pushed, what was
    sent without an answer, and Xero's side as last read."""

    account_key = models.CharField(max_length=100)
    tenant_id = models.CharField("Xero tenant id", max_length=64, blank=True)
    host_model = models.CharField(max_length=100)
    host_id = models.CharField(max_length=64)
    xero_invoice_id = models.CharField("Xero InvoiceID", max_length=64, blank=True)
    invoice_number = models.CharField(max_length=255, blank=True)
    xero_status = models.CharField(max_length=20, blank=True)
    payload_hash = models.CharField(max_length=64, blank=True)
    # Fingerprints of creates sent without an answer: the proof that an invoice Xero holds under
    # this number is ours (see rules.plan.invoice_fingerprint).
    unanswered_creates = models.JSONField(default=list, blank=True)
    # An invoice Xero already holds under this number that is not proven ours: staff link to it
    # or renumber the CRM invoice.
    conflict_invoice_id = models.CharField(max_length=64, blank=True)
    crm_total = models.DecimalField(max_digits=18, decimal_places=2, null=True, blank=True)
    xero_total = models.DecimalField(max_digits=18, decimal_places=2, null=True, blank=True)
    xero_amount_paid = models.DecimalField(max_digits=18, decimal_places=2, null=True, blank=True)
    xero_amount_due = models.DecimalField(max_digits=18, decimal_places=2, null=True, blank=True)
    total_mismatch = models.BooleanField(default=False)
    # A difference between the CRM and Xero that no change in Xero explains.
    drift = models.BooleanField(default=False)
    drift_detail = models.TextField(blank=True)
    xero_updated_at = models.DateTimeField("updated in Xero", null=True, blank=True)
    read_at = models.DateTimeField("last read from Xero", null=True, blank=True)
    pushed_at = models.DateTimeField(null=True, blank=True)
    # The lines as last sent (see rules.preflight): Xero refuses line edits once paid.
    lines_fingerprint = models.CharField(max_length=64, blank=True)

    objects = OrganisationQuerySet.as_manager()

    class Meta:
        verbose_name = "Xero invoice link"
        permissions = [("sync_invoicelink", "Can sync invoices to Xero now")]
        constraints = [
            models.UniqueConstraint(
                fields=["account_key", "tenant_id", "host_model", "host_id"],
                name="xero_invoice_link_host",
            )
        ]
        indexes = [models.Index(fields=["tenant_id", "xero_invoice_id"])]

    def __str__(self) -> str:
        return f"{self.invoice_number or self.host_id} → {self.xero_invoice_id or 'not in Xero'}"

    @property
    def removed_in_xero(self) -> bool:
        """Xero's copy is voided or deleted: Xero accepts no change to it."""
        return self.xero_status in ("VOIDED", "DELETED")


class PaymentLink(models.Model):
    """A host payment and its payment in one Xero organisation, and where it stands.

    A row in ``SENDING`` records a create sent without an answer yet (no PaymentID): the next
    run settles it from the invoice's payments in Xero before sending anything again. One in
    ``DELETING`` records a delete sent without an answer. ``origin`` says who made the payment in
    Xero: the integration, or a person working in Xero (then the CRM payment mirrors it and the
    integration never deletes it).
    """

    class State(models.TextChoices):
        SENDING = "sending", "Sent, answer pending"
        LINKED = "linked", "In Xero"
        DELETING = "deleting", "Delete sent, answer pending"
        DELETED = "deleted", "Deleted in Xero"

    class Origin(models.TextChoices):
        CRM = "crm", "Sent from the CRM"
        XERO = "xero", "Recorded in Xero"

    account_key = models.CharField(max_length=100)
    tenant_id = models.CharField("Xero tenant id", max_length=64, blank=True)
    invoice_host_id = models.CharField(max_length=64)
    host_model = models.CharField(max_length=100)
    host_id = models.CharField(max_length=64)
    xero_payment_id = models.CharField("Xero PaymentID", max_length=64, blank=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.LINKED)
    origin = models.CharField(max_length=10, choices=Origin.choices, default=Origin.CRM)
    amount = models.DecimalField(max_digits=18, decimal_places=2)
    date = models.DateField()
    reference = models.CharField(max_length=255, blank=True)
    account_id = models.CharField("Xero AccountID", max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = OrganisationQuerySet.as_manager()

    class Meta:
        verbose_name = "Xero payment link"
        constraints = [
            models.UniqueConstraint(
                fields=["account_key", "tenant_id", "host_model", "host_id", "xero_payment_id"],
                name="xero_payment_link",
            )
        ]
        indexes = [models.Index(fields=["account_key", "tenant_id", "invoice_host_id"])]

    def __str__(self) -> str:
        return f"{self.host_model}:{self.host_id} → {self.xero_payment_id or 'not in Xero yet'}"

    @property
    def in_xero(self) -> bool:
        """Xero holds, or may hold, this payment."""
        return self.state != self.State.DELETED


class TaxRateMapping(models.Model):
    """Which Xero tax rate (TaxType) a host tax becomes. Made automatically, or by staff."""

    account_key = models.CharField(max_length=100)
    tenant_id = models.CharField("Xero tenant id", max_length=64, blank=True)
    host_id = models.CharField("CRM tax id", max_length=64)
    name = models.CharField("CRM tax", max_length=255, blank=True)
    tax_type = models.CharField(
        "Xero tax rate (TaxType)",
        max_length=50,
        blank=True,
        help_text="The TaxType of an existing Xero tax rate, e.g. OUTPUT2. For AU, NZ and UK "
        "organisations Xero recommends its existing rates: rates created through the API "
        "are not used in statutory tax returns.",
    )
    xero_name = models.CharField("Xero tax rate name", max_length=255, blank=True)
    # The CRM tax's components when the mapping was made: a changed rate is matched again.
    components = models.CharField(max_length=255, blank=True)
    # The CRM tax's rate when staff's mapping was first used: a later change is flagged.
    rate = models.DecimalField(
        "CRM rate mapped", max_digits=9, decimal_places=4, null=True, blank=True
    )
    needs_review = models.BooleanField(
        default=False, help_text="The CRM tax changed since staff chose this rate: save again."
    )
    created_in_xero = models.BooleanField(default=False)
    set_by_staff = models.BooleanField(default=False)

    objects = OrganisationQuerySet.as_manager()

    class Meta:
        verbose_name = "Xero tax rate mapping"
        constraints = [
            models.UniqueConstraint(
                fields=["account_key", "tenant_id", "host_id"], name="xero_tax_mapping"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name or self.host_id} → {self.tax_type or 'unmapped'}"


class FailedSyncJob(SyncJob):
    """The "Failed syncs" view of the outbox in admin."""

    class Meta:
        proxy = True
        verbose_name = "failed sync"
        verbose_name_plural = "failed syncs"


class WebhookEvent(models.Model):
    """A CONTACT or INVOICE event Xero sent, kept until a task has acted on it. Xero delivers
    at least once; the unique key drops repeats."""

    tenant_id = models.CharField(max_length=64)
    category = models.CharField(max_length=20)
    event_type = models.CharField(max_length=20)
    resource_id = models.CharField(max_length=64)
    event_date = models.CharField(max_length=40)
    received_at = models.DateTimeField(default=timezone.now)
    processed_at = models.DateTimeField(null=True, blank=True)
    # Tries that failed, and why the last one did; after MAX_ATTEMPTS the event is given up
    # (the periodic reads still bring its change in) and shows in admin.
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)
    given_up_at = models.DateTimeField(null=True, blank=True)

    MAX_ATTEMPTS = 12

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant_id", "category", "resource_id", "event_date"],
                name="xero_webhook_event_once",
            )
        ]
        indexes = [models.Index(fields=["processed_at"])]

    def __str__(self) -> str:
        return f"{self.category} {self.event_type} {self.resource_id}"


class HistoryBackfill(models.Model):
    """Sending the invoices a CRM account had before it connected an organisation, from the
    settings page: counted first (a dry run, by a task), then sent by a task in batches, with
    the progress read from the sync jobs it queued. One per account and organisation."""

    class State(models.TextChoices):
        COUNTING = "counting", "Counting"
        READY = "ready", "Ready to send"
        SENDING = "sending", "Sending"
        DONE = "done", "Done"

    account_key = models.CharField(max_length=100)
    tenant_id = models.CharField("Xero tenant id", max_length=64)
    state = models.CharField(max_length=10, choices=State.choices, default=State.COUNTING)
    # The dry run: how many invoices are not in the organisation yet, and what they cost.
    invoices = models.PositiveIntegerField(default=0)
    payments = models.PositiveIntegerField(default=0)
    calls = models.PositiveIntegerField("calls to Xero", default=0)
    counted_at = models.DateTimeField(null=True, blank=True)
    # ["app_label.model", "host id"] of each invoice queued when sending started.
    queued = models.JSONField(default=list, blank=True)
    # Why the sending waits, if it does (see backfill.Step.waiting_for).
    waiting_for = models.CharField(max_length=20, blank=True)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = OrganisationQuerySet.as_manager()

    class Meta:
        verbose_name = "sending of earlier invoices"
        verbose_name_plural = "sendings of earlier invoices"
        constraints = [
            models.UniqueConstraint(
                fields=["account_key", "tenant_id"], name="xero_history_backfill_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.invoices} earlier invoice(s) of {self.account_key} ({self.state})"


class AccountAlerts(models.Model):
    """Emails to a CRM account's managers about its Xero sync: one when the connection needs
    reconnecting and one when syncs have failed for a while (each sent once, until the trouble
    ends), and, when chosen, a daily digest of failed syncs."""

    account_key = models.CharField(max_length=100, unique=True)
    daily_digest = models.BooleanField(
        "email a daily digest of failed syncs",
        default=False,
        help_text="Once a day, when invoices failed to reach Xero, the account's owners and "
        "admins get the list.",
    )
    # Set when the alert is sent; cleared when its trouble is over, so the next one alerts.
    reconnect_alerted_at = models.DateTimeField(null=True, blank=True)
    failing_alerted_at = models.DateTimeField(null=True, blank=True)
    digest_sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "Xero alerts of an account"
        verbose_name_plural = "Xero alerts of accounts"

    def __str__(self) -> str:
        return f"Xero alerts of {self.account_key}"
