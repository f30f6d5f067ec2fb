"""What a host CRM's tests need around the sandbox: a Xero app the CRM is configured for, an
encryption key, the app's background tasks run inline, and an account connected through the
consent screen with its default accounts chosen.

The pytest plugin (``pytest_plugin.py``) wraps these as fixtures; they work without pytest as
well, from a Django ``TransactionTestCase`` for example.
"""

from __future__ import annotations

import contextlib
import sys
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from cryptography.fernet import Fernet

from .consent import consent
from .sandbox_server import SandboxServer

#: The Fernet key tests encrypt Xero's tokens with (one per test process).
TEST_ENCRYPTION_KEY = Fernet.generate_key().decode()
TEST_CLIENT_ID = "host-crm-tests"
TEST_CLIENT_SECRET = "host-crm-tests-secret"
#: Where the Django test client's requests come from.
TEST_SERVER = "http://testserver"


class BackgroundTaskFailed(AssertionError):
    """A django-q2 task of the app raised while running inline."""


class ConnectFailed(AssertionError):
    """Connecting through the sandbox did not end connected; the message says where it
    stopped and what the CRM answered."""


@dataclass
class InlineTasks:
    """django-q2 tasks run in the caller's process as they are queued. ``failures`` holds
    the task records (``func``, ``args``, ``result``) of those that raised."""

    failures: list[dict[str, Any]] = field(default_factory=list)

    def raise_failures(self) -> None:
        """Raise ``BackgroundTaskFailed`` naming every task that raised, then forget them."""
        if not self.failures:
            return
        details = "\n\n".join(
            f"{task.get('func')}{tuple(task.get('args') or ())}: {task.get('result')}"
            for task in self.failures
        )
        count = len(self.failures)
        self.failures.clear()
        raise BackgroundTaskFailed(f"{count} background task(s) of the app raised:\n{details}")


@contextlib.contextmanager
def tasks_run_inline() -> Iterator[InlineTasks]:
    """Run django-q2 tasks at once, in this process, while inside the block.

    django-q2 reads ``Q_CLUSTER["sync"]`` once, at import, so overriding that setting in a test
    changes nothing; its ``Conf.SYNC`` is what ``async_task`` consults on each call. A task
    that raises fails the test: its exception comes out of the save (or the request) that
    queued it, and every task that raises is also collected, with its traceback, in
    ``failures``, for a test that catches the exception to look at.

    The app queues its tasks when the database transaction commits, so they only run in tests
    whose transactions commit (pytest-django's ``transactional_db``, ``TransactionTestCase``).
    """
    from django_q.conf import Conf

    try:
        from django_q.signals import post_execute_in_worker as executed
    except ImportError:  # older django-q2 reports a task only once its result is stored
        from django_q.signals import post_execute as executed

    inline = InlineTasks()
    dispatch_uid = f"xero_integration.testing.inline-{id(inline)}"

    def record(sender: Any, task: dict[str, Any], **kwargs: Any) -> None:
        if task.get("success"):
            return
        # Run inline, the worker sends this signal while handling the task's exception and
        # then re-raises it; the result is only filled in when the worker carries on.
        raised = sys.exc_info()[1]
        result = traceback.format_exc() if raised is not None else task.get("result")
        inline.failures.append({**task, "result": result})

    was_sync = Conf.SYNC
    Conf.SYNC = True
    executed.connect(record, weak=False, dispatch_uid=dispatch_uid)
    try:
        yield inline
    finally:
        executed.disconnect(dispatch_uid=dispatch_uid)
        Conf.SYNC = was_sync


def callback_url() -> str:
    """The CRM's OAuth callback as the Django test client reaches it."""
    from django.urls import reverse

    return TEST_SERVER + reverse("xero_integration:callback")


def sandbox_settings(
    sandbox: SandboxServer,
    client_id: str = TEST_CLIENT_ID,
    client_secret: str | None = TEST_CLIENT_SECRET,
) -> dict[str, Any]:
    """Register a Xero app in the sandbox and return the Django settings that point the CRM
    at it (apply them with pytest-django's ``settings`` or ``override_settings``). Rate-limit
    budgets stay in the test process even when the project keeps them in Redis."""
    redirect_uri = callback_url()
    sandbox.register_app(client_id, client_secret=client_secret, redirect_uris=[redirect_uri])
    return {
        "XERO_CLIENT_ID": client_id,
        "XERO_CLIENT_SECRET": client_secret or "",
        "XERO_LOGIN_URL": sandbox.url,
        "XERO_IDENTITY_URL": sandbox.url,
        "XERO_API_URL": sandbox.url,
        "XERO_REDIRECT_URI": redirect_uri,
        "XERO_LIMITER_REDIS_URL": "",
    }


@dataclass
class ConnectedOrganisation:
    """A sandbox organisation a CRM account is connected to, and what arrived in it."""

    sandbox: SandboxServer
    tenant_id: str
    name: str
    account_key: str
    payment_account_id: str = ""
    revenue_account_code: str = ""

    @property
    def connection(self) -> Any:
        """The account's ``XeroConnection``, read afresh."""
        from xero_integration.models import XeroConnection

        return XeroConnection.objects.get(account_key=self.account_key)

    def state(self) -> dict[str, Any]:
        """Everything the organisation holds, in Xero's JSON shapes: ``organisation``,
        ``contacts``, ``invoices``, ``payments``, ``tax_rates``, ``currencies``, ``accounts``."""
        return self.sandbox.organisation_state(self.tenant_id)

    def invoices(self) -> list[dict[str, Any]]:
        return self.state()["invoices"]

    def invoice(self, number: str) -> dict[str, Any]:
        """The organisation's invoice numbered ``number``; an AssertionError lists the numbers
        it holds when there is none."""
        invoices = self.invoices()
        for invoice in invoices:
            if invoice.get("InvoiceNumber") == number:
                return invoice
        held = [invoice.get("InvoiceNumber") for invoice in invoices]
        raise AssertionError(f"No invoice {number!r} in {self.name}; it holds {held}.")

    def payments(self) -> list[dict[str, Any]]:
        return self.state()["payments"]

    def contacts(self) -> list[dict[str, Any]]:
        return self.state()["contacts"]


def _page_text(response: Any) -> str:
    content = getattr(response, "content", b"")
    return content.decode(errors="replace")[:2000] if content else ""


def connect(
    client: Any,
    sandbox: SandboxServer,
    tenant_id: str | None = None,
    *,
    choose_accounts: bool = True,
    payment_account_id: str | None = None,
    revenue_account_code: str | None = None,
    **organisation: Any,
) -> ConnectedOrganisation:
    """Connect the CRM account of ``client``'s user as that user would: Connect, Allow access
    on the sandbox's consent screen, back to the CRM, then save the default accounts.

    ``client`` is a Django test client signed in as a user the adapter lets manage the
    connection. Without ``tenant_id`` a new organisation is made from ``organisation``
    (``SandboxServer.create_organisation``'s arguments: ``name``, ``country_code``,
    ``base_currency``, ``contacts``...). Payments go to the organisation's first bank account
    and invoice lines to account 200 (Sales) unless ``payment_account_id`` or
    ``revenue_account_code`` say otherwise; ``choose_accounts=False`` leaves both unchosen, as
    a user who has not got that far.

    The app's tasks must run inline (``tasks_run_inline``) and the database must commit.
    """
    from django.urls import resolve, reverse

    from xero_integration.models import ConnectAttempt

    if tenant_id is None:
        tenant_id = sandbox.create_organisation(**organisation)["tenant_id"]
    name = sandbox.organisation_state(tenant_id)["organisation"]["Name"]

    started = client.post(reverse("xero_integration:connect"))
    if started.status_code != 302 or not started["Location"].startswith(sandbox.url):
        where = started.get("Location") or _page_text(started)
        raise ConnectFailed(
            f"Connect answered {started.status_code}, not a redirect to the sandbox's consent "
            "screen. Is the client signed in (force_login) as a user the adapter lets manage "
            f"the connection?\n{where}"
        )
    back = urlsplit(consent(started["Location"], allow=True, organisations=[tenant_id]))
    response = client.get(f"{back.path}?{back.query}")
    if response.status_code != 302:
        raise ConnectFailed(
            f"The callback answered {response.status_code}.\n{_page_text(response)}"
        )
    attempt_url = response["Location"]
    attempt_id = resolve(urlsplit(attempt_url).path).kwargs.get("attempt_id")
    client.get(attempt_url)
    attempt = ConnectAttempt.objects.filter(pk=attempt_id).first() if attempt_id else None
    if attempt is None or attempt.state != ConnectAttempt.State.DONE:
        state = attempt.get_state_display() if attempt else "unknown"
        reason = (attempt.error if attempt else "") or (
            "the connect task did not run: are the app's tasks run inline and does the "
            "test's database commit (transactional_db)?"
        )
        raise ConnectFailed(f"The connection attempt is {state}: {reason}")

    connected = ConnectedOrganisation(sandbox, tenant_id, name, attempt.account_key)
    if choose_accounts:
        _choose_accounts(client, connected, payment_account_id, revenue_account_code)
    return connected


def _choose_accounts(
    client: Any,
    connected: ConnectedOrganisation,
    payment_account_id: str | None,
    revenue_account_code: str | None,
) -> None:
    from django.urls import reverse

    connection = connected.connection
    if connection.accounts_loaded_at is None:
        raise ConnectFailed(
            f"Connected, but the chart of accounts of {connected.name} was not read; the sync "
            "log says: " + "; ".join(log.message for log in connection.logs.all()[:5])
        )
    if payment_account_id is None:
        payment_accounts = connection.payment_accounts()
        banks = [a for a in payment_accounts if a.get("Type") == "BANK"] or payment_accounts
        payment_account_id = banks[0]["AccountID"] if banks else ""
    if revenue_account_code is None:
        codes = [a["Code"] for a in connection.revenue_accounts()]
        revenue_account_code = "200" if "200" in codes else (codes[0] if codes else "")
    response = client.post(
        reverse("xero_integration:accounts"),
        {
            "payment_account_id": payment_account_id,
            "revenue_account_code": revenue_account_code,
        },
    )
    if response.status_code != 302:
        raise ConnectFailed(
            f"Saving the default accounts answered {response.status_code}.\n{_page_text(response)}"
        )
    connected.payment_account_id = payment_account_id
    connected.revenue_account_code = revenue_account_code
