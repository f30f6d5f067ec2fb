"""The test kit host CRMs get with the package, used here on the demo CRM from the source tree.

(tests/packaging/test_host_project.py runs it from the installed wheel in a project of its
own.)
"""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from crm_demo.crm.models import Invoice
from tests.factories import InvoiceFactory, InvoiceLineFactory, PaymentFactory
from xero_integration.models import ConnectionStatus, SyncJob
from xero_integration.testing import (
    BackgroundTaskFailed,
    ConnectFailed,
    InlineTasks,
    tasks_run_inline,
)


def test_one_line_connects_through_the_consent_screen_with_accounts_chosen(
    owner_client, owner_account_key, xero_connect, xero_sandbox
) -> None:
    xero = xero_connect(owner_client, name="Kit Test Ltd", contacts=2)

    connection = xero.connection
    assert connection.status == ConnectionStatus.CONNECTED
    assert (connection.account_key, connection.tenant_id) == (owner_account_key, xero.tenant_id)
    assert xero.name == connection.tenant_name == "Kit Test Ltd"
    bank = next(a for a in xero.state()["accounts"] if a["Type"] == "BANK")
    assert connection.payment_account_id == xero.payment_account_id == bank["AccountID"]
    assert connection.revenue_account_code == xero.revenue_account_code == "200"
    # The user's way in: the consent page was shown and answered, the code exchanged.
    paths = [(r["method"], r["path"]) for r in xero_sandbox.requests()]
    assert ("GET", "/identity/connect/authorize") in paths
    assert ("POST", "/identity/connect/authorize") in paths
    assert ("POST", "/connect/token") in paths
    # The import on connect ran inline too.
    assert len(xero.contacts()) == 2
    assert connection.contact_imports.get().state == "done"


def test_an_invoice_and_its_payment_reach_the_connected_organisation(
    owner, owner_client, xero_connect
) -> None:
    xero = xero_connect(owner_client)
    invoice = InvoiceFactory(account=owner.account, number="KIT-1", status=Invoice.Status.DRAFT)
    InvoiceLineFactory(invoice=invoice, quantity=Decimal("2"), unit_price=Decimal("50"))
    invoice.recalculate()
    invoice.status = Invoice.Status.SENT
    invoice.save()
    PaymentFactory(invoice=invoice, amount=Decimal("40.00"), date=datetime.date(2026, 11, 5))

    sent = xero.invoice("KIT-1")
    assert sent["Status"] == "AUTHORISED"
    assert Decimal(str(sent["AmountPaid"])) == Decimal("40.00")
    (payment,) = xero.payments()
    assert payment["Account"]["AccountID"] == xero.payment_account_id
    assert SyncJob.objects.get().state == SyncJob.State.DONE


def test_accounts_can_be_left_unchosen(owner_client, xero_connect) -> None:
    xero = xero_connect(owner_client, choose_accounts=False)
    assert xero.connection.payment_account_id == ""
    with pytest.raises(AssertionError, match="No invoice 'NOPE'"):
        xero.invoice("NOPE")


def test_a_client_that_cannot_connect_is_told_why(db, xero_connect) -> None:
    with pytest.raises(ConnectFailed, match="signed in"):
        xero_connect(Client())


def test_tasks_run_inline_whatever_q_cluster_says(transactional_db, settings) -> None:
    """Q_CLUSTER["sync"] is read by django-q2 once, at import: overriding it does nothing."""
    from django_q.conf import Conf
    from django_q.models import Success
    from django_q.tasks import async_task

    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "sync": False}
    assert Conf.SYNC is False
    with tasks_run_inline() as inline:
        async_task("math.floor", 2.5)
        assert inline.failures == []
    assert Conf.SYNC is False
    assert Success.objects.get().result == 2


def test_a_task_that_raises_is_reported_with_its_message(transactional_db) -> None:
    from django_q.tasks import async_task

    # Run inline, django-q2 raises to the caller too (the app's dispatch catches it).
    with tasks_run_inline() as inline, pytest.raises(ValueError):
        async_task("math.sqrt", -1)
    assert len(inline.failures) == 1
    with pytest.raises(BackgroundTaskFailed, match=r"math\.sqrt\(-1,\): Traceback") as failed:
        inline.raise_failures()
    assert "ValueError: math domain error" in str(failed.value)
    assert inline.failures == []
    InlineTasks().raise_failures()  # nothing failed: nothing raised


def test_the_kit_sets_a_test_key_and_points_the_app_at_the_sandbox(
    settings, xero_encryption_key, xero_sandbox_app, xero_sandbox
) -> None:
    made = {name: getattr(settings, name) for name in xero_sandbox_app}
    assert made == xero_sandbox_app
    assert made["XERO_API_URL"] == made["XERO_LOGIN_URL"] == xero_sandbox.url
    assert made["XERO_REDIRECT_URI"] == "http://testserver/integrations/xero/callback/"
    keys = settings.XERO_ENCRYPTION_KEYS
    assert keys == [xero_encryption_key]


def test_a_user_without_an_account_gets_no_connection(db, xero_connect) -> None:
    user = get_user_model().objects.create_user("nobody@example.com", "nobody@example.com", "x")
    client = Client()
    client.force_login(user)
    with pytest.raises(ConnectFailed, match="answered 404"):
        xero_connect(client)


def test_an_app_task_that_raises_after_commit_is_reported(transactional_db, monkeypatch) -> None:
    """A task run inline that crashes fails where it was queued, and the kit keeps the
    crash with its traceback."""
    from xero_integration import invoices, taskqueue

    def crash(*args: object) -> None:
        raise RuntimeError("the adapter could not read invoice 7")

    monkeypatch.setattr(invoices, "run", crash)
    with tasks_run_inline() as inline, pytest.raises(RuntimeError, match="invoice 7"):
        taskqueue.dispatch("xero_integration.invoices.run", "1", "crm.invoice", "7")
    (failure,) = inline.failures
    assert failure["func"] == "xero_integration.invoices.run"
    assert "RuntimeError: the adapter could not read invoice 7" in failure["result"]
