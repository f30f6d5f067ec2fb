"""Health where people look for it: the Xero tile and the settings page count what waits and
what failed and link to them, the CRM's invoice list has a Xero column, each problem reads as
one plain sentence, and admin's "Failed syncs" holds the jobs that keep failing too."""

from __future__ import annotations

import datetime
import re
from decimal import Decimal
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from tests.integration.conftest import make_connection
from tests.integration.invoicing import API, job_of, make_invoice, rerun
from xero_integration import health
from xero_integration.models import SyncJob, SyncLog, XeroConnection

pytestmark = pytest.mark.django_db(transaction=True)

TRANSPORT = ("Xero answered", "correlation id", "api.xro", "PUT /", "retry after", "tenant ")


@pytest.fixture
def connected(xero_sandbox, xero_app, owner) -> tuple[str, Any, XeroConnection]:
    """The owner's account on an organisation without multi-currency, accounts chosen."""
    org = xero_sandbox.create_organisation(name="Demo Company (NZ)", multicurrency=False)
    connection = make_connection(xero_sandbox, xero_app, org["tenant_id"], str(owner.account_id))
    state = xero_sandbox.organisation_state(org["tenant_id"])
    connection.payment_account_id = next(
        a["AccountID"] for a in state["accounts"] if a["Type"] == "BANK"
    )
    connection.revenue_account_code = "200"
    connection.base_currency = "NZD"
    connection.country_code = "NZ"
    connection.accounts_loaded_at = timezone.now()
    connection.save()
    return org["tenant_id"], owner.account, connection


@pytest.fixture
def three_invoices(connected, xero_sandbox, client_retries_at_once) -> dict[str, Any]:
    """One invoice in Xero, one Xero refused (USD, no multi-currency), one waiting because
    Xero answers 500."""
    _, account, _ = connected
    synced = make_invoice(account, [{"unit_price": Decimal("10")}], number="OK-1")
    refused = make_invoice(account, [{}], currency="USD", number="USD-1")
    xero_sandbox.add_fault("PUT", f"{API}/Invoices", "500")
    waiting = make_invoice(account, [{}], number="WAIT-1")
    assert job_of(synced).state == SyncJob.State.DONE
    assert job_of(refused).state == SyncJob.State.FAILED
    assert job_of(waiting).state == SyncJob.State.WAITING
    return {"synced": synced, "refused": refused, "waiting": waiting}


def text_of(response: Any) -> str:
    assert response.status_code == 200, response.content.decode()[:2000]
    return " ".join(response.content.decode().split())


def test_the_tile_counts_failed_and_waiting_invoices_and_links_to_them(
    owner_client, three_invoices
):
    page = text_of(owner_client.get(reverse("crm:integrations")))
    settings_url = reverse("xero_integration:settings")
    assert f'href="{settings_url}#sync-problems">1 invoice failed</a>' in page
    assert f'href="{settings_url}#sync-waiting">1 waiting</a>' in page
    assert "xero-status--failing" in page


def test_the_settings_page_lists_each_problem_in_one_plain_sentence(owner_client, three_invoices):
    page = text_of(owner_client.get(reverse("xero_integration:settings")))
    assert 'href="#sync-problems">1 invoice failed</a>' in page
    problems = page[page.index('id="sync-problems"') :]
    problems = problems[: problems.index("</section>")]
    refused = three_invoices["refused"]
    assert f'<a href="{refused.get_absolute_url()}">USD-1</a>' in problems
    assert "This invoice is in USD, which the Xero organisation has not added." in problems
    assert "WAIT-1" in problems and "Xero is not answering right now." in problems
    assert "OK-1" not in problems
    for detail in TRANSPORT:
        assert detail not in problems, detail


def test_recent_activity_shows_user_events_only(owner_client, three_invoices):
    page = text_of(owner_client.get(reverse("xero_integration:settings")))
    activity = page[page.index("Recent activity") :]
    assert "Invoice sent to Xero" in activity
    assert "Invoice not sent to Xero" in activity
    assert SyncLog.objects.filter(action__startswith="PUT /").exists()
    assert "/api.xro/" not in activity and "PUT " not in activity
    for detail in TRANSPORT:
        assert detail not in activity, detail


def test_the_invoice_list_has_a_xero_column_with_the_reason_on_hover(owner_client, three_invoices):
    page = text_of(owner_client.get(reverse("crm:invoice_list")))
    assert "<th>Xero</th>" in page
    assert "<th>Due date</th>" in page and '<th class="num">Amount due</th>' in page
    cells = dict(
        re.findall(r'<span class="xero-sync xero-sync--(\w+)"[^>]*>(\w[\w ]*)</span>', page)
    )
    assert cells == {"synced": "Synced", "failed": "Failed", "waiting": "Waiting"}
    assert re.search(
        r'xero-sync--failed" title="This invoice is in USD, which the Xero organisation has not '
        r"added\.",
        page,
    )
    assert re.search(r'xero-sync--waiting" title="Xero is not answering right now\.', page)


def test_the_invoice_page_shows_the_plain_sentence(owner_client, three_invoices):
    page = text_of(
        owner_client.get(reverse("crm:invoice_detail", args=[three_invoices["waiting"].pk]))
    )
    assert "Waiting to send to Xero: Xero is not answering right now." in page
    for detail in TRANSPORT:
        assert detail not in page.split('class="xero-invoice-status"')[1], detail


def test_a_job_looping_on_server_errors_joins_the_failed_syncs_after_some_attempts(
    admin_client, owner_client, three_invoices, settings
):
    settings.XERO_FAILING_ATTEMPTS = 3
    waiting = three_invoices["waiting"]
    failed_syncs = reverse("admin:xero_integration_failedsyncjob_changelist")
    listed = {j.number for j in admin_client.get(failed_syncs).context["cl"].result_list}
    assert listed == {"USD-1"}

    while job_of(waiting).attempts < 3:
        rerun(waiting)
    job = job_of(waiting)
    assert job.state == SyncJob.State.WAITING and job.reason == SyncJob.Reason.UNANSWERED
    response = admin_client.get(failed_syncs)
    assert {j.number for j in response.context["cl"].result_list} == {"USD-1", "WAIT-1"}
    page = text_of(response)
    assert "What it means" in page
    assert "Xero answered with a server error (5xx)" in page  # the staff text
    # Users see it as failed now, with the same sentence.
    tile = text_of(owner_client.get(reverse("crm:integrations")))
    assert "2 invoices failed" in tile


def test_a_job_in_trouble_for_an_hour_joins_the_failed_syncs_whatever_its_attempts(
    admin_client, three_invoices
):
    waiting = job_of(three_invoices["waiting"])
    assert waiting.attempts == 1
    failed_syncs = reverse("admin:xero_integration_failedsyncjob_changelist")
    assert "WAIT-1" not in text_of(admin_client.get(failed_syncs))
    SyncLog.objects.filter(job=waiting).update(
        created_at=timezone.now() - datetime.timedelta(minutes=61)
    )
    assert "WAIT-1" in text_of(admin_client.get(failed_syncs))


def test_waits_for_xeros_limits_or_a_reconnect_are_not_failures(connected, three_invoices):
    _, account, connection = connected
    job = job_of(three_invoices["waiting"])
    SyncJob.objects.filter(pk=job.pk).update(attempts=50, reason=SyncJob.Reason.RATE_LIMIT)
    troubled = health.troubled(SyncJob.objects.filter(account_key=str(account.pk)))
    assert {j.number for j in troubled} == {"USD-1"}
    counts = health.account_health(str(account.pk), connection)
    assert (counts.failed, counts.waiting) == (1, 1)


def test_invoices_failed_for_want_of_default_accounts_wait_for_set_up(
    owner_client, connected, xero_sandbox
):
    _, account, connection = connected
    XeroConnection.objects.filter(pk=connection.pk).update(revenue_account_code="")
    invoice = make_invoice(account, [{}], number="SETUP-1")
    job = job_of(invoice)
    assert (job.state, job.reason) == (SyncJob.State.FAILED, SyncJob.Reason.SETUP)

    page = text_of(owner_client.get(reverse("xero_integration:settings")))
    assert "Choose the default accounts to start sending invoices to Xero." in page
    assert "1 invoice waits for them." in page
    assert "invoice failed" not in page
    assert "Waiting for the default accounts" in page
    listed = text_of(owner_client.get(reverse("crm:invoice_list")))
    assert 'xero-sync--waiting" title="Waiting for the default accounts' in listed
    tile = text_of(owner_client.get(reverse("crm:integrations")))
    assert "Choose the default accounts" in tile and "failed" not in tile

    # Choosing them sends the invoice.
    state = xero_sandbox.organisation_state(connection.tenant_id)
    bank = next(a for a in state["accounts"] if a["Type"] == "BANK")
    connection.refresh_from_db()
    connection.accounts = state["accounts"]
    connection.save(update_fields=["accounts"])
    response = owner_client.post(
        reverse("xero_integration:accounts"),
        {"payment_account_id": bank["AccountID"], "revenue_account_code": "200"},
    )
    assert response.status_code == 302
    assert job_of(invoice).state == SyncJob.State.DONE
    page = text_of(owner_client.get(reverse("xero_integration:settings")))
    assert "Default accounts saved" in page  # a user event in recent activity


def test_the_sync_log_list_keeps_its_message_column_narrow(admin_client, three_invoices):
    page = text_of(admin_client.get(reverse("admin:xero_integration_synclog_changelist")))
    assert "?summarizeErrors" not in page.split("<tbody>")[1]
