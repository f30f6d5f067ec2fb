"""The guided set-up on the settings page: after connecting, the default accounts (invoices wait
for them, and they are kept across a reconnect to the same organisation); then "Send the N
invoices created before connecting", counted by the backfill's dry run, sent by a task in the
backfill's batches, with its progress and its result."""

from __future__ import annotations

import datetime
import re
from decimal import Decimal
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.urls import reverse

from crm_demo.crm.models import Invoice
from tests.factories import ContactFactory, InvoiceFactory, InvoiceLineFactory
from tests.integration.invoicing import job_of
from xero_integration import backfill, history, taskqueue, tasks
from xero_integration.models import HistoryBackfill, SyncJob, SyncLog, XeroConnection

pytestmark = pytest.mark.django_db(transaction=True)

ORG = "Demo Company (NZ)"


def earlier_invoices(account: Any, count: int) -> list[Invoice]:
    """Invoices made before the account connected to Xero (no sync job: nothing to sync to)."""
    people = [ContactFactory(account=account) for _ in range(3)]
    made = []
    for n in range(count):
        invoice = InvoiceFactory(
            account=account,
            contact=people[n % 3],
            number=f"EARLY-{n + 1:03}",
            status=Invoice.Status.SENT,
            issue_date=datetime.date(2026, 1, 1) + datetime.timedelta(days=n),
            due_date=datetime.date(2026, 12, 31),
        )
        InvoiceLineFactory(invoice=invoice, unit_price=Decimal("100") + n)
        invoice.recalculate()
        made.append(invoice)
    assert not SyncJob.objects.exists()
    return made


def page_text(client: Any) -> str:
    response = client.get(reverse("xero_integration:settings"))
    assert response.status_code == 200, response.content.decode()[:2000]
    return " ".join(response.content.decode().split())


def choose_accounts(client: Any, sandbox: Any) -> None:
    connection = XeroConnection.objects.get()
    state = sandbox.organisation_state(connection.tenant_id)
    bank = next(a["AccountID"] for a in state["accounts"] if a["Type"] == "BANK")
    response = client.post(
        reverse("xero_integration:accounts"),
        {"payment_account_id": bank, "revenue_account_code": "200"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]


def test_after_connecting_the_page_asks_for_accounts_then_offers_the_earlier_invoices(
    owner, owner_client, xero_app, xero_sandbox, connect_through_sandbox
):
    tenant_id = xero_sandbox.create_organisation(name=ORG)["tenant_id"]
    made = earlier_invoices(owner.account, 3)
    connect_through_sandbox(owner_client, organisations=[ORG])

    page = page_text(owner_client)
    assert "Choose the default accounts to start sending invoices to Xero." in page
    assert 'class="xero-step xero-step--current"' in page.split('id="history"')[0]
    assert "Once the default accounts are chosen, the CRM counts the invoices" in page
    assert not HistoryBackfill.objects.exists()  # nothing counted before the accounts

    choose_accounts(owner_client, xero_sandbox)
    page = page_text(owner_client)
    assert "Choose the default accounts to start" not in page
    found = HistoryBackfill.objects.get()
    planned = backfill.plan(XeroConnection.objects.get(), None)
    assert (found.state, found.invoices, found.calls) == ("ready", 3, planned.calls)
    assert (
        f"3 invoices were created in the CRM before it connected to {ORG} and are not in Xero."
        in page
    )
    assert f"Sending takes about {planned.calls} calls to Xero: under a minute." in page
    assert "Send the 3 invoices created before connecting</button>" in page

    response = owner_client.post(reverse("xero_integration:send_history"))
    assert response["Location"].endswith("#history")
    page = page_text(owner_client)
    assert "Done: 3 of 3 invoices created before connecting are in Xero." in page
    numbers = {i["InvoiceNumber"] for i in xero_sandbox.organisation_state(tenant_id)["invoices"]}
    assert numbers == {invoice.number for invoice in made}
    assert all(job_of(invoice).state == SyncJob.State.DONE for invoice in made)
    assert "Earlier invoices" in page.split("Recent activity")[1]

    # Counting again finds nothing left to send; a second press sends nothing twice.
    owner_client.post(reverse("xero_integration:recount_history"))
    assert "Every invoice created before connecting is in Xero." in page_text(owner_client)
    owner_client.post(reverse("xero_integration:send_history"))
    assert len(xero_sandbox.organisation_state(tenant_id)["invoices"]) == 3


def test_the_count_is_the_dry_run_of_xero_backfill(owner, owner_client, connect_owner):
    earlier_invoices(owner.account, 4)
    connect_owner()
    page_text(owner_client)
    out = StringIO()
    call_command("xero_backfill", "--account", str(owner.account_id), "--dry-run", stdout=out)
    found = HistoryBackfill.objects.get()
    assert f"{found.invoices} invoices to send" in out.getvalue()
    assert f"about {found.calls} calls to Xero" in out.getvalue()


def test_invoices_on_their_way_are_left_to_their_own_sync(owner, owner_client, connect_owner):
    made = earlier_invoices(owner.account, 2)
    connect_owner()
    SyncJob.objects.create(
        account_key=str(owner.account_id),
        host_model="crm.invoice",
        host_id=str(made[0].pk),
        state=SyncJob.State.FAILED,
        reason=SyncJob.Reason.REFUSED,
        error="Tax rate must be valid.",
    )
    page_text(owner_client)
    assert HistoryBackfill.objects.get().invoices == 1


def test_the_progress_bar_follows_the_batches_the_task_sends(
    owner, owner_client, connect_owner, xero_sandbox, monkeypatch
):
    from django_q.conf import Conf

    earlier_invoices(owner.account, 60)
    connect_owner()
    page_text(owner_client)  # counts (tasks run inline)
    # From here tasks are queued, not run: the test runs each as a worker would.
    monkeypatch.setattr(Conf, "SYNC", False)
    queued: list[tuple[str, tuple]] = []
    monkeypatch.setattr(
        taskqueue, "send", lambda path, *args, **kwargs: queued.append((path, args))
    )
    found = HistoryBackfill.objects.get()
    assert found.invoices == 60
    owner_client.post(reverse("xero_integration:send_history"))
    assert queued == [("xero_integration.history.send", (found.pk,))]

    part = reverse("xero_integration:part", args=["history"])
    fragment = " ".join(owner_client.get(part).content.decode().split())
    assert 'data-xero-poll="' in fragment
    assert "Starting…" in fragment

    queued.clear()
    tasks.send_history(found.pk)  # the first batch: 50 invoices
    fragment = " ".join(owner_client.get(part).content.decode().split())
    assert re.search(r'<progress class="xero-progress" value="50" max="60"', fragment), fragment
    assert "50 of 60 sent" in fragment
    assert [path for path, _ in queued] == ["xero_integration.history.send"]

    queued.clear()
    tasks.send_history(found.pk)  # the last 10
    fragment = " ".join(owner_client.get(part).content.decode().split())
    assert "data-xero-poll" not in fragment
    assert "Done: 60 of 60 invoices created before connecting are in Xero." in fragment
    assert queued == []
    assert HistoryBackfill.objects.get().state == HistoryBackfill.State.DONE
    assert SyncLog.objects.filter(action="backfill", message__contains="60 sent").count() == 1


def test_only_managers_send_the_earlier_invoices(owner, member_client, connect_owner):
    earlier_invoices(owner.account, 1)
    connect_owner()
    page = page_text(member_client)
    assert "Send the 1 invoice created before connecting" not in page
    assert member_client.post(reverse("xero_integration:send_history")).status_code == 403


def test_default_accounts_are_kept_across_a_reconnect_to_the_same_organisation(
    owner, owner_client, xero_app, xero_sandbox, connect_through_sandbox
):
    xero_sandbox.create_organisation(name=ORG)
    xero_sandbox.create_organisation(name="Other Ltd")
    connect_through_sandbox(owner_client, organisations=[ORG])
    choose_accounts(owner_client, xero_sandbox)
    chosen = XeroConnection.objects.get()
    kept = (chosen.payment_account_id, chosen.revenue_account_code)

    assert owner_client.post(reverse("xero_integration:disconnect")).status_code == 302
    connect_through_sandbox(owner_client, organisations=[ORG])
    again = XeroConnection.objects.get()
    assert again.is_connected
    assert (again.payment_account_id, again.revenue_account_code) == kept
    page = page_text(owner_client)
    assert "Choose the default accounts to start" not in page
    assert "chosen</span>" in page

    # Another organisation asks again; back to the first, its choice returns.
    owner_client.post(reverse("xero_integration:disconnect"))
    connect_through_sandbox(owner_client, organisations=["Other Ltd"])
    assert "Choose the default accounts to start" in page_text(owner_client)
    owner_client.post(reverse("xero_integration:disconnect"))
    connect_through_sandbox(owner_client, organisations=[ORG])
    back = XeroConnection.objects.get()
    assert (back.payment_account_id, back.revenue_account_code) == kept


def test_history_tasks_of_a_disconnected_account_do_nothing(owner, owner_client, connect_owner):
    earlier_invoices(owner.account, 1)
    connect_owner()
    page_text(owner_client)
    found = HistoryBackfill.objects.get()
    XeroConnection.objects.update(status="disconnected")
    history.recount(found)
    assert HistoryBackfill.objects.get().state == HistoryBackfill.State.COUNTING
    tasks.send_history(found.pk)
    assert not SyncJob.objects.exists()


@pytest.fixture
def connect_owner(owner, xero_sandbox, xero_app) -> Any:
    """Connect the owner's account, its accounts chosen (no consent page): call it once the
    earlier invoices are made."""
    from tests.integration.conftest import make_connection

    def connect() -> XeroConnection:
        tenant_id = xero_sandbox.create_organisation(name=ORG)["tenant_id"]
        connection = make_connection(xero_sandbox, xero_app, tenant_id, str(owner.account_id))
        state = xero_sandbox.organisation_state(tenant_id)
        connection.payment_account_id = next(
            a["AccountID"] for a in state["accounts"] if a["Type"] == "BANK"
        )
        connection.revenue_account_code = "200"
        connection.base_currency = "NZD"
        connection.country_code = "NZ"
        connection.save()
        return connection

    return connect


def test_a_count_or_a_sending_whose_task_was_lost_is_queued_again(
    owner, owner_client, connect_owner, monkeypatch
):
    from django.utils import timezone

    earlier_invoices(owner.account, 2)
    connect_owner()
    page_text(owner_client)
    found = HistoryBackfill.objects.get()
    queued: list[tuple[str, tuple]] = []
    monkeypatch.setattr(
        taskqueue, "send", lambda path, *args, **kwargs: queued.append((path, args))
    )
    owner_client.post(reverse("xero_integration:send_history"))
    assert queued == [("xero_integration.history.send", (found.pk,))]

    queued.clear()
    page_text(owner_client)
    assert queued == []  # a task was queued a moment ago
    HistoryBackfill.objects.update(updated_at=timezone.now() - datetime.timedelta(minutes=3))
    page_text(owner_client)
    assert queued == [("xero_integration.history.send", (found.pk,))]


def test_a_sending_finds_nothing_left_when_the_invoices_went_another_way(
    owner, owner_client, connect_owner, monkeypatch
):
    made = earlier_invoices(owner.account, 1)
    connect_owner()
    page_text(owner_client)
    found = HistoryBackfill.objects.get()
    # Since counted, the invoice was sent on its own (edited and saved, say).
    SyncJob.objects.create(
        account_key=str(owner.account_id),
        host_model="crm.invoice",
        host_id=str(made[0].pk),
        state=SyncJob.State.PENDING,
    )
    monkeypatch.setattr(taskqueue, "send", lambda path, *args, **kwargs: None)
    owner_client.post(reverse("xero_integration:send_history"))
    tasks.send_history(found.pk)
    assert HistoryBackfill.objects.get().state == HistoryBackfill.State.DONE
    assert "Every invoice created before connecting is in Xero." in page_text(owner_client)
