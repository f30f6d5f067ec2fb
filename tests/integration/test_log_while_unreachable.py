"""While Xero cannot be reached, each invoice's log says when it started waiting and when it
recovered, not one row per attempt: an hour's outage must not bury the log."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.integration.invoicing import job_of, make_invoice, rerun
from xero_integration.models import SyncJob, SyncLog

pytestmark = pytest.mark.django_db(transaction=True)

API = "/api.xro/2.0"


def log_of(invoice) -> list[tuple[str, str]]:
    return list(
        SyncLog.objects.filter(host_id=str(invoice.pk))
        .order_by("pk")
        .values_list("action", "outcome")
    )


@pytest.mark.usefixtures("client_retries_at_once")
def test_an_outage_logs_the_start_and_the_recovery_not_each_attempt(xero_sandbox, connected):
    _, account, _ = connected
    xero_sandbox.add_fault("*", f"{API}/*", "503", count=1000)
    invoice = make_invoice(account, [{"unit_price": Decimal("100")}])
    assert job_of(invoice).state == SyncJob.State.WAITING
    started_waiting = log_of(invoice)
    assert ("invoice_sync", SyncLog.Outcome.INFO) in started_waiting
    for _ in range(5):
        rerun(invoice)
        job = job_of(invoice)
        assert job.state == SyncJob.State.WAITING and job.attempts > 1
    assert log_of(invoice) == started_waiting  # five more attempts, no more rows

    xero_sandbox.clear_faults()
    rerun(invoice)
    assert job_of(invoice).state == SyncJob.State.DONE
    recovered = log_of(invoice)[len(started_waiting) :]
    assert recovered[-1] == ("invoice_sync", SyncLog.Outcome.OK)
    assert all(outcome == SyncLog.Outcome.OK for _, outcome in recovered)
