"""Benchmark: import 100,000 contacts from the sandbox into the demo CRM.

python -m benchmarks.contact_import [--contacts 100000]

Prints Xero calls, database queries per page, wall time and the importer's peak memory growth,
and writes them into docs/benchmarks.md. Xero's real rate limits apply (60 calls a minute), so
the wall time includes the client's waiting for the minute budget. A second full import of the
same, unchanged contacts follows (as after a reconnect to the same organisation); its time is
compared with the first's.
"""

from __future__ import annotations

import argparse
import resource
import time

from benchmarks import common, report, targets


def run(contacts: int) -> dict[str, object]:
    common.setup_django("bench-contacts")
    from django.db import connection as db

    from crm_demo.crm.models import Contact
    from xero_integration import contacts as contact_sync
    from xero_integration.models import ContactImport, ContactLink

    with common.sandbox_process() as url:
        started = time.perf_counter()
        org = common.control(
            url,
            "POST",
            "organisations",
            {
                "name": "Bench Company",
                "country_code": "NZ",
                "base_currency": "NZD",
                "multicurrency": True,
                "contacts": contacts,
            },
        )
        seeded = time.perf_counter() - started
        account, connection = common.connect_account(url, org["tenant_id"], "Bench CRM")
        queries: list[int] = []
        page_queries = [0]

        def count(execute, sql, params, many, context):
            page_queries[0] += 1
            return execute(sql, params, many, context)

        original_save_page = contact_sync._save_page

        def counted_save_page(*args, **kwargs):
            page_queries[0] = 0
            with db.execute_wrapper(count):
                result = original_save_page(*args, **kwargs)
            queries.append(page_queries[0])
            return result

        contact_sync._save_page = counted_save_page
        job = ContactImport.objects.create(connection=connection, kind=ContactImport.Kind.FULL)
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        contact_sync.run_import(job.pk)
        elapsed = time.perf_counter() - started
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        job.refresh_from_db()
        log = common.control(url, "GET", f"requests?tenant_id={org['tenant_id']}")
        first_queries, queries[:] = list(queries), []
        again = ContactImport.objects.create(connection=connection, kind=ContactImport.Kind.FULL)
        started = time.perf_counter()
        contact_sync.run_import(again.pk)
        second = time.perf_counter() - started
        again.refresh_from_db()
        second_log = common.control(url, "GET", f"requests?tenant_id={org['tenant_id']}")
    calls = sum(1 for entry in log if "/Contacts" in entry["path"])
    second_calls = sum(1 for entry in second_log[len(log) :] if "/Contacts" in entry["path"])
    second_queries, queries = queries, first_queries
    return {
        "database": db.vendor,
        "contacts in Xero": contacts,
        "import state": job.state,
        "CRM contacts created": Contact.objects.filter(account=account).count(),
        "links": ContactLink.objects.filter(account_key=str(account.pk)).count(),
        "Xero calls": calls,
        "pages": len(queries),
        "queries per page (min / max)": f"{min(queries)} / {max(queries)}" if queries else "-",
        "wall time (s)": round(elapsed, 1),
        "least time Xero's 60 calls a minute allow (s)": max(0, (calls - 1) // 60 * 60),
        "peak memory growth (MB)": round((rss_after - rss_before) / 1024, 1),
        "sandbox seeding time (s)": round(seeded, 1),
        "second full import (unchanged contacts): state": again.state,
        "second import: Xero calls": second_calls,
        "second import: queries per page (min / max)": (
            f"{min(second_queries)} / {max(second_queries)}" if second_queries else "-"
        ),
        "second import: wall time (s)": round(second, 1),
        "second import time ÷ first (target ≤ 1.2×)": f"{second / elapsed:.2f}×",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--contacts", type=int, default=100_000)
    args = parser.parse_args()
    results = run(args.contacts)
    report.print_table("Contact import", results)
    report.write_section(f"Contact import ({results['database']})", results, __doc__)
    first, second = results["wall time (s)"], results["second import: wall time (s)"]
    targets.record(
        reimport=targets.Row(
            f"{second / first:.2f}× ({second} s / {first} s)",
            second / first <= 1.2,
            f"{args.contacts:,} contacts imported, then imported again unchanged, both at "
            f"Xero's real limits; {results['database']}",
            why=f"queries per page on the second import: "
            f"{results['second import: queries per page (min / max)']}, on the first: "
            f"{results['queries per page (min / max)']}",
        )
    )


if __name__ == "__main__":
    main()
