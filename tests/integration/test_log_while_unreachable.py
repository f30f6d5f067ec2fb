"""While Xero cannot be reached, each invoice's log says when it started waiting and when it
recovered, and each failed call is one entry: an hour's outage must not bury the log under an
entry per invoice, call and attempt."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from tests.integration.invoicing import make_invoice
from xero_integration import invoices, services
from xero_integration.models import SyncJob, SyncLog

pytestmark = pytest.mark.django_db(transaction=True)

API = "/api.xro/2.0"


def run_again(account_key: str) -> None:
    """Run the account's jobs as if their time had come."""
    SyncJob.objects.update(not_before=timezone.now() - timedelta(seconds=1))
    services.reset_limiter()
    invoices.run_batch(account_key)


def failed_calls(xero_sandbox, tenant_id: str) -> list[dict]:
    return [r for r in xero_sandbox.requests(tenant_id) if r["status"] == 503]


def outcome_rows(job: SyncJob) -> list[str]:
    return list(
        SyncLog.objects.filter(job=job, action="invoice_sync")
        .order_by("pk")
        .values_list("outcome", flat=True)
    )


@pytest.mark.usefixtures("client_retries_at_once")
def test_an_outage_logs_the_start_and_the_recovery_and_each_failed_call_once(
    xero_sandbox, connected, no_dispatch
):
    tenant_id, account, _ = connected
    with no_dispatch():
        for n in range(3):
            make_invoice(account, [{"unit_price": Decimal(100 + n)}])
    xero_sandbox.add_fault("*", f"{API}/*", "503", count=1000)
    run_again(str(account.pk))
    first_round = len(failed_calls(xero_sandbox, tenant_id))
    for _ in range(5):
        run_again(str(account.pk))
    assert len(failed_calls(xero_sandbox, tenant_id)) > first_round  # tried again and again
    jobs = list(SyncJob.objects.all())
    assert {job.state for job in jobs} == {SyncJob.State.WAITING}
    # One entry each for starting to wait, none for the five attempts after.
    assert [outcome_rows(job) for job in jobs] == [[SyncLog.Outcome.INFO]] * 3
    failed = failed_calls(xero_sandbox, tenant_id)
    failed_rows = SyncLog.objects.filter(http_status=503)
    assert failed_rows.count() == len(failed) > 0  # each call once, not once per invoice

    xero_sandbox.clear_faults()
    xero_sandbox.advance_clock(61)  # Xero's minute, spent on the failed calls, is over
    run_again(str(account.pk))
    for job in SyncJob.objects.all():
        assert job.state == SyncJob.State.DONE
        assert outcome_rows(job) == [SyncLog.Outcome.INFO, SyncLog.Outcome.OK]
