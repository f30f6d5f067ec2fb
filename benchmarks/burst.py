"""Benchmark: how long a quiet organisation's invoice takes to reach Xero, alone and while
another organisation bursts.

python -m benchmarks.burst [--burst 150] [--rate 4] [--quiet-samples 15]

Production shape: PostgreSQL, django-q2 on Redis, two `manage.py qcluster` processes of two
workers each (the soak test's settings, the rate limiter shared in Redis), the sandbox as its
own server at Xero's real limits, and the app's schedules as installed (the sweeper every
minute) run by the clusters themselves. Organisation A saves one sent invoice every 2 s;
organisation B saves 150 sent invoices at 4 a second meanwhile. Each save is one committed
transaction; the time measured for A is from its commit (the first on-commit hook) until its
sync job is done with the invoice's Xero ID on its link (polled every 10 ms). First A alone
(B quiet), then A during B's burst (A's invoices saved while B's are being saved).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from decimal import Decimal

from benchmarks import common, report, targets

WORKER_CLUSTERS, WORKERS_EACH = 2, 2
A_EVERY = 2.0


def start_workers(url: str) -> list[subprocess.Popen]:
    from django.conf import settings
    from django.db import connection

    database = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "crm_demo.settings",
        "DATABASE_URL": (
            f"postgres://{database['USER'] or 'postgres'}@{database['HOST'] or '127.0.0.1'}"
            f":{database['PORT'] or 5432}/{database['NAME']}"
        ),
        "Q_NAME": settings.Q_CLUSTER["name"],
        "Q_WORKERS": str(WORKERS_EACH),
        "XERO_ENCRYPTION_KEYS": settings.XERO_ENCRYPTION_KEYS[0],
        "XERO_CLIENT_ID": common.CLIENT_ID,
        "XERO_CLIENT_SECRET": common.CLIENT_SECRET,
        "XERO_LOGIN_URL": url,
        "XERO_IDENTITY_URL": url,
        "XERO_API_URL": url,
        "XERO_LIMITER_REDIS_URL": os.environ["REDIS_URL"],
    }
    return [
        subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            cwd=common.BASE_DIR,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(WORKER_CLUSTERS)
    ]


class Watcher(threading.Thread):
    """Polls the sync jobs of saved invoices until each is done with its Xero ID."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.pending: dict[tuple[str, str], float] = {}
        self.seen: dict[tuple[str, str], float] = {}
        self.lock = threading.Lock()
        self.stop = False

    def watch(self, account_key: str, host_id: str, committed: float) -> None:
        with self.lock:
            self.pending[(account_key, host_id)] = committed

    def run(self) -> None:
        from django.db import connection
        from django.db.models import F

        from xero_integration.models import InvoiceLink, SyncJob

        try:
            while not self.stop:
                with self.lock:
                    keys = list(self.pending)
                if keys:
                    done = set(
                        SyncJob.objects.filter(
                            host_id__in=[k[1] for k in keys],
                            state=SyncJob.State.DONE,
                            done_seq__gte=F("change_seq"),
                        ).values_list("account_key", "host_id")
                    )
                    linked = set(
                        InvoiceLink.objects.filter(host_id__in=[k[1] for k in done])
                        .exclude(xero_invoice_id="")
                        .values_list("account_key", "host_id")
                    )
                    now = time.monotonic()
                    with self.lock:
                        for key in done & linked:
                            if key in self.pending:
                                self.seen[key] = now - self.pending.pop(key)
                time.sleep(0.01)
        finally:
            connection.close()


class Org:
    def __init__(self, url: str, name: str) -> None:
        from crm_demo.crm.models import Contact, Tax, TaxComponent
        from xero_integration import contacts as contact_sync
        from xero_integration.models import ContactImport

        org = common.new_organisation(url, name, 20)
        self.tenant_id = org["tenant_id"]
        self.account, self.connection = common.connect_account(url, self.tenant_id, name)
        common.choose_default_accounts(url, self.connection)
        contact_sync.run_import(ContactImport.objects.create(connection=self.connection).pk)
        self.people = list(Contact.objects.filter(account=self.account))
        self.gst = Tax.objects.create(account=self.account, name="GST 15%")
        TaxComponent.objects.create(tax=self.gst, name="GST", rate=Decimal("15"))
        self.key = str(self.account.pk)
        self.count = 0

    def save_invoice(self, watcher: Watcher | None) -> str:
        """One sent invoice with one line, in one committed transaction."""
        from django.db import transaction

        n = self.count
        self.count += 1
        with transaction.atomic():
            committed: list[float] = []
            transaction.on_commit(lambda: committed.append(time.monotonic()))
            invoice = common.sent_invoice(
                self.account,
                f"{self.account.name[:1]}-{n:05d}",
                self.people[n % len(self.people)],
                self.gst,
                Decimal("100") + n % 50,
                "Support",
            )
        if watcher is not None:
            watcher.watch(self.key, str(invoice.pk), committed[0])
        return str(invoice.pk)


def wait_for(watcher: Watcher, keys: list[tuple[str, str]], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with watcher.lock:
            if all(k in watcher.seen for k in keys):
                return
        time.sleep(0.1)


def figures(watcher: Watcher, keys: list[tuple[str, str]], timeout: float) -> dict:
    with watcher.lock:
        times = sorted(watcher.seen.get(k, float("inf")) for k in keys)
    late = sum(1 for t in times if t == float("inf"))
    return {
        "samples": len(times),
        "p50": statistics.median(times),
        "p90": times[min(len(times) - 1, int(round(0.9 * (len(times) - 1))))],
        "max": times[-1],
        "late": late,
        "timeout": timeout,
    }


def fmt(seconds: float, timeout: float) -> str:
    return f"> {timeout:.0f}" if seconds == float("inf") else f"{seconds:.2f}"


def run(burst: int, rate: float, quiet_samples: int) -> dict:
    from django.conf import settings

    from xero_integration import taskqueue
    from xero_integration.models import SyncJob

    with common.sandbox_process() as url:
        a, b = Org(url, "A Quiet Ltd"), Org(url, "B Busy Ltd")
        workers = start_workers(url)
        watcher = Watcher()
        watcher.start()
        try:
            # Warm-up: each organisation's first invoice maps its tax; not measured.
            warm = [(a.key, a.save_invoice(watcher)), (b.key, b.save_invoice(watcher))]
            wait_for(watcher, warm, 90)
            assert all(k in watcher.seen for k in warm), "the workers did not push the warm-up"
            quiet = []
            for _ in range(quiet_samples):
                quiet.append((a.key, a.save_invoice(watcher)))
                time.sleep(A_EVERY)
            wait_for(watcher, quiet, 60)
            busy_a: list[tuple[str, str]] = []
            busy_b: list[tuple[str, str]] = []
            started = time.monotonic()
            next_a = started
            for n in range(burst):
                at = started + n / rate
                while time.monotonic() < at:
                    if time.monotonic() >= next_a:
                        busy_a.append((a.key, a.save_invoice(watcher)))
                        next_a += A_EVERY
                    time.sleep(min(0.005, max(0.0, at - time.monotonic())))
                busy_b.append((b.key, b.save_invoice(watcher)))
            burst_seconds = time.monotonic() - started
            timeout = 180.0
            wait_for(watcher, busy_a + busy_b, timeout)
            b_drained = time.monotonic() - started
            requests = common.control(url, "GET", "requests")
        finally:
            watcher.stop = True
            for worker in workers:
                worker.terminate()
            for worker in workers:
                worker.wait(timeout=30)
            watcher.join(timeout=5)
            queue = taskqueue.broker()
            queue.purge_queue()
    calls_b = sum(1 for r in requests if r["tenant_id"] == b.tenant_id and r["status"] != 429)
    return {
        "quiet": figures(watcher, quiet, 60),
        "burst": figures(watcher, busy_a, timeout),
        "b": figures(watcher, busy_b, timeout),
        "burst_seconds": burst_seconds,
        "b_drained": b_drained,
        "b_calls": calls_b,
        "refusals": sum(1 for r in requests if r["status"] == 429),
        "failed": SyncJob.objects.filter(state=SyncJob.State.FAILED).count(),
        "cluster": settings.Q_CLUSTER["name"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--burst", type=int, default=150)
    parser.add_argument("--rate", type=float, default=4.0)
    parser.add_argument("--quiet-samples", type=int, default=15)
    args = parser.parse_args()
    if not os.environ.get("REDIS_URL"):
        print("burst: needs PostgreSQL (DATABASE_URL) and Redis (REDIS_URL); skipped")
        return
    from cryptography.fernet import Fernet

    os.environ["XERO_ENCRYPTION_KEYS"] = Fernet.generate_key().decode()
    os.environ.setdefault("Q_NAME", f"bench-burst-{os.getpid()}")
    common.setup_django("bench-burst")
    from django.db import connection as db

    if db.vendor != "postgresql":
        print("burst: needs PostgreSQL (DATABASE_URL); skipped")
        return
    common.reset_redis_markers()
    r = run(args.burst, args.rate, args.quiet_samples)
    q, bu, b = r["quiet"], r["burst"], r["b"]

    def line(f: dict) -> str:
        t = f["timeout"]
        late = f", {f['late']} not in Xero after {t:.0f} s" if f["late"] else ""
        return (
            f"{fmt(f['p50'], t)} / {fmt(f['p90'], t)} / {fmt(f['max'], t)} "
            f"({f['samples']} invoices{late})"
        )

    results = {
        "database / broker": f"{db.vendor} / Redis",
        "workers": f"{WORKER_CLUSTERS} qcluster processes × {WORKERS_EACH} workers",
        "A alone: commit → in Xero p50 / p90 / max (s)": line(q),
        "A during B's burst: commit → in Xero p50 / p90 / max (s)": line(bu),
        "B: commit → in Xero p50 / p90 / max (s)": line(b),
        "B: invoices saved, over (s)": f"{b['samples']} over {r['burst_seconds']:.1f}",
        "B: calls to Xero": r["b_calls"],
        "from B's first save until every invoice was in Xero (s)": f"{r['b_drained']:.1f}",
        "429 refusals": r["refusals"],
        "failed jobs": r["failed"],
    }
    report.print_table("Two organisations", results)
    report.write_section(f"Two organisations, one bursting ({db.vendor})", results, __doc__)
    how = (
        f"{db.vendor} + Redis, {WORKER_CLUSTERS}×{WORKERS_EACH} qcluster workers, sandbox server "
        "at Xero's limits"
    )
    targets.record(
        quiet=targets.Row(
            f"{fmt(q['p50'], 60)} s / {fmt(q['max'], 60)} s (p90 {fmt(q['p90'], 60)} s)",
            q["p50"] <= 0.15 and q["max"] <= 0.25,
            f"{q['samples']} invoices of A, one every 2 s, B quiet; {how}",
            why="slower than the baseline kept (0.11 s / 0.15 s; met up to 0.15 s / 0.25 s)",
        ),
        burst=targets.Row(
            f"{fmt(bu['p50'], bu['timeout'])} s / {fmt(bu['max'], bu['timeout'])} s "
            f"(p90 {fmt(bu['p90'], bu['timeout'])} s)",
            bu["p50"] <= 1 and bu["max"] <= 2,
            f"{bu['samples']} invoices of A, one every 2 s, while B saved {b['samples']} at "
            f"{args.rate:g}/s; {how}",
            why="A's invoices waited behind B's",
        ),
    )


if __name__ == "__main__":
    main()
