"""Benchmark: sync log rows written while an organisation cannot be reached.

python -m benchmarks.unreachable [--invoices 300] [--outage 30]

An organisation (contacts imported, its tax mapped by a warm-up invoice) becomes unreachable:
the sandbox answers every Accounting call with 503 "The Xero API is temporarily unavailable".
300 sent invoices are saved meanwhile; for 30 s workers take the due jobs in batches as they
come due (run_batch, as a worker would), so each job is retried several times; then Xero comes
back and the jobs drain. Counted: the SyncLog rows written from the first save until
Xero came back, and those written by the recovery (the runs' outcomes, and the rows of the
successful calls that every push writes). The wait between attempts is shortened
(XERO_RETRY_BASE_SECONDS=1) and the wire client's in-call retries do not sleep; neither
changes what is logged. Xero's real limits apply.
"""

from __future__ import annotations

import argparse
import functools
import time
from collections import Counter
from decimal import Decimal

from benchmarks import common, report, targets


def one_round(account_key: str) -> int:
    """One pass of the workers over the account's due jobs: a run per batch of them (a job
    put back during the pass waits for the next one); how many runs."""
    from django.utils import timezone

    from xero_integration import invoices
    from xero_integration.models import SyncJob

    due = SyncJob.objects.filter(account_key=account_key).due(timezone.now()).count()
    runs = 0
    for _ in range(-(-due // invoices.BATCH_SIZE)):
        if not invoices.run_batch(account_key, queue_rest=False):
            break
        runs += 1
    return runs


def open_jobs(account_key: str) -> int:
    from xero_integration.models import SyncJob

    return (
        SyncJob.objects.filter(account_key=account_key)
        .exclude(state__in=[SyncJob.State.DONE, SyncJob.State.FAILED])
        .count()
    )


def run(url: str, count: int, outage_seconds: float) -> dict:
    from django.conf import settings
    from django.db import transaction
    from django_q.conf import Conf

    from crm_demo.crm.models import Contact, Tax, TaxComponent
    from xero_integration import connect, taskqueue
    from xero_integration import contacts as contact_sync
    from xero_integration.models import ContactImport, SyncJob, SyncLog
    from xero_integration.xero.client import XeroClient

    Conf.SYNC = False
    taskqueue.send = lambda path, *args, **kwargs: None  # workers are driven below
    connect.XeroClient = functools.partial(XeroClient, sleep=lambda seconds: None)
    settings.XERO_RETRY_BASE_SECONDS = 1
    org = common.new_organisation(url, "Offline Ltd", 20)
    tenant = org["tenant_id"]
    account, connection = common.connect_account(url, tenant, "Offline Ltd")
    common.choose_default_accounts(url, connection)
    contact_sync.run_import(ContactImport.objects.create(connection=connection).pk)
    people = list(Contact.objects.filter(account=account))
    gst = Tax.objects.create(account=account, name="GST 15%")
    TaxComponent.objects.create(tax=gst, name="GST", rate=Decimal("15"))
    key = str(account.pk)

    def save(n: int) -> None:
        with transaction.atomic():
            common.sent_invoice(
                account,
                f"OFF-{n:05d}",
                people[n % len(people)],
                gst,
                Decimal("100") + n % 50,
                "Support",
            )

    save(99_999)  # warm-up: the tax mapping
    one_round(key)
    mark = SyncLog.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    common.control(url, "POST", "faults", {"method": "*", "path": "/api.xro/2.0/*", "kind": "503"})
    for n in range(count):
        save(n)
    runs, rounds_run = 0, 0
    outage_ends = time.monotonic() + outage_seconds
    while time.monotonic() < outage_ends:
        ran = one_round(key)
        if ran:
            runs += ran
            rounds_run += 1
        else:
            time.sleep(0.2)
    failed_calls = sum(
        1 for r in common.control(url, "GET", f"requests?tenant_id={tenant}") if r["status"] == 503
    )
    outage = SyncLog.objects.filter(account_key=key, pk__gt=mark)
    during = outage.count()
    during_kinds = Counter(
        (a if a == "invoice_sync" else "call " + a.split(" ", 1)[0], o)
        for a, o in outage.values_list("action", "outcome")
    )
    reasons = Counter(
        d.get("reason", "")
        for d in outage.filter(action="invoice_sync").values_list("details", flat=True)
    )
    last = outage.order_by("-pk").values_list("pk", flat=True).first() or mark
    max_attempts = SyncJob.objects.filter(account_key=key).order_by("-attempts")[0].attempts
    common.control(url, "DELETE", "faults")
    recovery_runs = 0
    started = time.monotonic()
    while open_jobs(key) and time.monotonic() < started + 240:
        ran = one_round(key)
        recovery_runs += ran
        if not ran:
            time.sleep(0.2)
    recovered_in = time.monotonic() - started
    recovery = SyncLog.objects.filter(account_key=key, pk__gt=last)
    outcomes = recovery.filter(action="invoice_sync").count()
    done = SyncJob.objects.filter(
        account_key=key, state=SyncJob.State.DONE, number__startswith="OFF-0"
    ).count()
    return {
        "invoices": count,
        "outage": outage_seconds,
        "rounds": rounds_run,
        "recovered_in": recovered_in,
        "runs during the outage": runs,
        "503 answers": failed_calls,
        "most attempts of a job": max_attempts,
        "during": during,
        "during_kinds": during_kinds,
        "reasons": reasons,
        "recovery": recovery.count(),
        "recovery_outcomes": outcomes,
        "recovery_runs": recovery_runs,
        "done": done,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--invoices", type=int, default=300)
    parser.add_argument("--outage", type=float, default=30, help="seconds")
    args = parser.parse_args()
    common.setup_django("bench-unreachable")
    from django.db import connection as db

    with common.sandbox_process() as url:
        r = run(url, args.invoices, args.outage)
    n = r["invoices"]
    changes = r["during"] + r["recovery_outcomes"]
    results = {
        "database": db.vendor,
        "invoices saved while Xero answered 503": n,
        "outage (s), passes of the workers over due jobs (runs)": f"{r['outage']:.0f}, "
        f"{r['rounds']} ({r['runs during the outage']})",
        "most attempts of one job": r["most attempts of a job"],
        "503 answers": r["503 answers"],
        "log rows written during the outage": f"{r['during']} ({r['during'] / n:.2f} per invoice)",
        "  of which": ", ".join(
            f"{action} {outcome}: {k}" for (action, outcome), k in sorted(r["during_kinds"].items())
        ),
        "  outcome rows by the reason the job waits for": ", ".join(
            f"{reason or '-'}: {k}" for reason, k in sorted(r["reasons"].items())
        ),
        "log rows written by the recovery": f"{r['recovery']} ({r['recovery_runs']} runs): "
        f"{r['recovery_outcomes']} outcomes, {r['recovery'] - r['recovery_outcomes']} rows of "
        "successful calls",
        "rows during the outage + recovery outcomes, per invoice (target ≈ 2)": (
            f"{changes / n:.2f} ({changes})"
        ),
        "invoices in Xero after recovery, time to drain (s)": f"{r['done']}, "
        f"{r['recovered_in']:.0f}",
    }
    report.print_table("Unreachable organisation", results)
    report.write_section(
        f"Log while an organisation is unreachable ({db.vendor})", results, __doc__
    )
    failed_call_rows = sum(k for (a, _), k in r["during_kinds"].items() if a != "invoice_sync")
    outcome_rows = r["during"] - failed_call_rows
    reasons = ", ".join(f"{reason or '-'} {k}" for reason, k in sorted(r["reasons"].items()))
    job_rows = outcome_rows + r["recovery_outcomes"]
    targets.record(
        unreachable_log=targets.Row(
            f"{job_rows:,} job rows for {n} invoices ({job_rows / n:.2f} per invoice: "
            f"{outcome_rows} on starting to wait, {r['recovery_outcomes']} on recovery), and "
            f"{failed_call_rows} rows for {r['503 answers']} failed calls",
            job_rows <= 2 * n and failed_call_rows <= r["503 answers"] and r["done"] == n,
            f"{n} invoices, {r['outage']:.0f} s of 503s (up to "
            f"{r['most attempts of a job']} attempts a job), then recovery; a failed call is one "
            f"row whatever the invoices it served; the rows of the successful calls after it "
            f"({r['recovery'] - r['recovery_outcomes']}) not counted; {db.vendor}",
            why=(
                f"{outcome_rows} waiting rows for {n} jobs (by reason: {reasons}); "
                f"{failed_call_rows} rows of failed calls for {r['503 answers']} failed calls"
            ),
        )
    )


if __name__ == "__main__":
    main()
