"""Benchmark: admin list pages and the payment push path over a big history.

python -m benchmarks.big_history [--rows 50000]

Admin: sync jobs, invoice links, contact links and the sync log, 50,000 rows each spread over
50 CRM accounts with their connections (the log's actions as the app writes them: calls with
ids in their paths and queries, the runs' outcomes). Each changelist is opened with Django's
test client as a superuser, first with 50 rows in its table and then with 50,000: queries per
page (constant when both counts match), the page's size, and the median time of 7 loads
(DEBUG off). Payment push: 50,000 payment links (half of them the pushing organisation's),
the tables ANALYZEd, then an invoice sent and paid in two parts, each step pushed to the
sandbox as it commits (at Xero's real limits); every statement of those steps is captured and
EXPLAINed on PostgreSQL. A sequential scan of a table holding more than 10,000 rows misses
the target.
"""

from __future__ import annotations

import argparse
import datetime
import re
import statistics
import time
import uuid
from collections import Counter
from decimal import Decimal

from benchmarks import common, report, targets

ACCOUNTS = 50
LISTS = {
    "sync jobs": "syncjob",
    "invoice links": "invoicelink",
    "contact links": "contactlink",
    "sync log": "synclog",
}
BIG_TABLE = 10_000


def connections(count: int) -> list:
    from crm_demo.crm.models import Account
    from xero_integration.models import ConnectionStatus, XeroConnection

    made = []
    for n in range(count):
        account = Account.objects.create(name=f"History {n} Ltd")
        made.append(
            XeroConnection.objects.create(
                account_key=str(account.pk),
                status=ConnectionStatus.CONNECTED,
                tenant_id=str(uuid.uuid4()),
                tenant_name=f"History {n} Ltd",
            )
        )
    return made


def fill(conns: list, start: int, stop: int) -> None:
    """Rows ``start``..``stop`` of each admin-listed table."""
    from django.utils import timezone

    from xero_integration.models import ContactLink, InvoiceLink, SyncJob, SyncLog

    now = timezone.now()
    jobs, links, contacts, logs = [], [], [], []
    for n in range(start, stop):
        conn = conns[n % len(conns)]
        state = [SyncJob.State.DONE] * 8 + [SyncJob.State.FAILED, SyncJob.State.WAITING]
        jobs.append(
            SyncJob(
                account_key=conn.account_key,
                host_model="crm.invoice",
                host_id=str(n),
                number=f"INV-{n:06d}",
                state=state[n % 10],
                error="Xero refused: Account code '999' is not a valid code."
                if n % 10 == 8
                else "",
                reason="refused" if n % 10 == 8 else "",
                change_seq=3,
                done_seq=3,
            )
        )
        links.append(
            InvoiceLink(
                account_key=conn.account_key,
                tenant_id=conn.tenant_id,
                host_model="crm.invoice",
                host_id=str(n),
                xero_invoice_id=str(uuid.uuid4()),
                invoice_number=f"INV-{n:06d}",
                xero_status="AUTHORISED",
                crm_total=Decimal("115.00"),
                xero_total=Decimal("115.00"),
                pushed_at=now,
            )
        )
        contacts.append(
            ContactLink(
                account_key=conn.account_key,
                tenant_id=conn.tenant_id,
                host_model="crm.contact",
                host_id=str(n),
                xero_contact_id=str(uuid.uuid4()),
                xero_name=f"Client {n}",
                matched_by="imported",
            )
        )
        invoice_id = links[-1].xero_invoice_id
        action = [
            "PUT /api.xro/2.0/Invoices?summarizeErrors=false&unitdp=4",
            f"POST /api.xro/2.0/Invoices/{invoice_id}?unitdp=4",
            "PUT /api.xro/2.0/Payments?summarizeErrors=false",
            f"GET /api.xro/2.0/Invoices/{invoice_id}?unitdp=4",
            "invoice_sync",
        ][n % 5]
        logs.append(
            SyncLog(
                connection=conn,
                account_key=conn.account_key,
                created_at=now - datetime.timedelta(seconds=n),
                action=action,
                outcome="ok" if n % 10 else "failed",
                http_status=200 if action != "invoice_sync" else None,
                message=f"Invoice INV-{n:06d}",
                host_id=str(n),
                request_body=f'{{"Invoices": [{{"InvoiceNumber": "INV-{n:06d}"}}]}}',
                response_body=f'{{"Id": "{invoice_id}", "Status": "OK"}}',
            )
        )
    for model, rows in (
        (SyncJob, jobs),
        (InvoiceLink, links),
        (ContactLink, contacts),
        (SyncLog, logs),
    ):
        model.objects.bulk_create(rows, batch_size=5000)


def admin_pages(client, loads: int = 7) -> dict:
    from django.conf import settings
    from django.db import connection as db
    from django.test.utils import CaptureQueriesContext

    figures = {}
    for name, model in LISTS.items():
        url = f"/admin/xero_integration/{model}/"
        with CaptureQueriesContext(db) as queries:
            response = client.get(url)
        count = len(queries)  # each request empties the query log: count before the next
        repeated = Counter(shape(q["sql"]) for q in queries.captured_queries).most_common(2)
        assert response.status_code == 200, (url, response.status_code)
        debug, settings.DEBUG = settings.DEBUG, False
        times = []
        try:
            for _ in range(loads):
                started = time.perf_counter()
                client.get(url)
                times.append(time.perf_counter() - started)
        finally:
            settings.DEBUG = debug
        figures[name] = {
            "queries": count,
            "bytes": len(response.content),
            "seconds": statistics.median(times),
            "action_choices": response.content.count(b"?kind="),
            "repeated": [(times, sql[:90], table(sql)) for sql, times in repeated if times > 1],
        }
    return figures


def capture_payment_push(url: str, conns: list, half: int) -> tuple[list[str], dict]:
    """Connect an organisation, give it ``half`` payment links and the other accounts as
    many, push an invoice paid in two parts; the SQL of those pushes."""
    from django.db import connection as db
    from django.db import transaction
    from django.test.utils import CaptureQueriesContext
    from django_q.conf import Conf

    from crm_demo.crm.models import Contact, Payment, Tax, TaxComponent
    from xero_integration.models import InvoiceLink, PaymentLink, SyncJob

    Conf.SYNC = True
    org = common.control(
        url,
        "POST",
        "organisations",
        {"name": "Payments Ltd", "country_code": "NZ", "base_currency": "NZD"},
    )
    account, connection = common.connect_account(url, org["tenant_id"], "Payments Ltd")
    common.choose_default_accounts(url, connection)
    PaymentLink.objects.bulk_create(
        (
            PaymentLink(
                account_key=connection.account_key,
                tenant_id=connection.tenant_id,
                invoice_host_id=str(100_000 + n // 2),
                host_model="crm.payment",
                host_id=str(100_000 + n),
                xero_payment_id=str(uuid.uuid4()),
                amount=Decimal("10.00"),
                date=datetime.date(2026, 1, 1),
            )
            for n in range(half)
        ),
        batch_size=5000,
    )
    PaymentLink.objects.bulk_create(
        (
            PaymentLink(
                account_key=conns[n % len(conns)].account_key,
                tenant_id=conns[n % len(conns)].tenant_id,
                invoice_host_id=str(n // 2),
                host_model="crm.payment",
                host_id=str(n),
                xero_payment_id=str(uuid.uuid4()),
                amount=Decimal("10.00"),
                date=datetime.date(2026, 1, 1),
            )
            for n in range(half)
        ),
        batch_size=5000,
    )
    with db.cursor() as cursor:
        cursor.execute("ANALYZE")
    contact = Contact.objects.create(account=account, name="Payer", email="payer@example.com")
    gst = Tax.objects.create(account=account, name="GST 15%")
    TaxComponent.objects.create(tax=gst, name="GST", rate=Decimal("15"))
    with transaction.atomic():
        invoice = common.sent_invoice(account, "PAY-1", contact, gst, Decimal("200"), "Work")
    statements: list[str] = []
    for part, amount in ((1, Decimal("100.00")), (2, None)):
        db.queries_log.clear()  # a full log (DEBUG keeps 9,000) would hide the new ones
        with CaptureQueriesContext(db) as captured, transaction.atomic():
            invoice.refresh_from_db()
            Payment.objects.create(
                invoice=invoice,
                amount=amount or invoice.amount_due,
                date=datetime.date(2026, 11, 20),
                reference=f"part {part}",
            )
            invoice.recalculate()
        statements += [q["sql"] for q in captured.captured_queries]
    job = SyncJob.objects.get(account_key=connection.account_key, host_id=str(invoice.pk))
    xero = common.control(url, "GET", f"organisations/{org['tenant_id']}")
    return statements, {
        "job": job.state,
        "in_xero": xero["invoices"][0]["Status"] if xero["invoices"] else "-",
        "payments_in_xero": sum(1 for p in xero["payments"] if p["Status"] == "AUTHORISED"),
        "payment_links": PaymentLink.objects.count(),
        "linked": InvoiceLink.objects.filter(host_id=str(invoice.pk))
        .exclude(xero_invoice_id="")
        .exists(),
    }


def shape(sql: str) -> str:
    """The statement with its literals taken out, to group repeats."""
    sql = re.sub(r"'(?:[^']|'')*'", "?", sql)
    sql = re.sub(r"\b\d+(?:\.\d+)?\b", "?", sql)
    return re.sub(r"\(\?(?:, \?)+\)", "(?…)", sql)


def table(sql: str) -> str:
    """The table a SELECT reads first."""
    found = re.search(r' FROM "?(\w+)"?', sql)
    return found.group(1) if found else "?"


def explain(statements: list[str]) -> list[dict]:
    from django.db import connection as db

    sizes = {}
    with db.cursor() as cursor:
        cursor.execute("SELECT relname, reltuples FROM pg_class WHERE relkind = 'r'")
        sizes = {name: int(rows) for name, rows in cursor.fetchall()}
    plans: dict[str, dict] = {}
    for sql in statements:
        head = sql.lstrip().split(None, 1)[0].upper()
        if head not in ("SELECT", "UPDATE", "DELETE", "INSERT", "WITH"):
            continue
        key = shape(sql)
        if key in plans:
            plans[key]["times"] += 1
            continue
        with db.cursor() as cursor:
            cursor.execute("EXPLAIN " + sql)
            plan = [row[0] for row in cursor.fetchall()]
        scans = []
        for line in plan:
            found = re.search(
                r"(Seq Scan|Index Only Scan|Index Scan|Bitmap Heap Scan)(?: using \w+)? on (\w+)",
                line,
            )
            if found:
                scans.append((found.group(1), found.group(2)))
        big_seq = [t for kind, t in scans if kind == "Seq Scan" and sizes.get(t, 0) > BIG_TABLE]
        plans[key] = {
            "sql": sql,
            "times": 1,
            "plan": plan,
            "scans": scans,
            "big_seq": big_seq,
            "tables": sorted({t for _, t in scans}),
        }
    return list(plans.values())


def plans_markdown(plans: list[dict]) -> str:
    from django.db import connection as db

    rows = []
    for p in plans:
        scans = ", ".join(f"{kind} on {table}" for kind, table in p["scans"]) or "no table scan"
        sql = " ".join(p["sql"].split()).replace("|", "\\|")
        if len(sql) > 160:
            sql = sql[:157] + "…"
        verdict = "**seq scan of a big table**" if p["big_seq"] else "ok"
        rows.append(f"| {p['times']} | `{sql}` | {scans} | {verdict} |")
    details = "\n\n".join(
        f"```\n{p['sql'][:400]}\n" + "\n".join(p["plan"]) + "\n```"
        for p in plans
        if any(t.startswith("xero_integration_paymentlink") for t in p["tables"])
    )
    return (
        f"### Query plans of the payment push ({db.vendor})\n\n"
        "Every statement of the two payment pushes, grouped by shape (the count is how many "
        "times it ran), with the scans of its plan.\n\n"
        "| runs | statement | scans | |\n|---|---|---|---|\n"
        + "\n".join(rows)
        + "\n\nThe plans of the statements on payment links:\n\n"
        + details
        + "\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=50_000)
    args = parser.parse_args()
    common.setup_django("bench-history")
    from django.contrib.auth import get_user_model
    from django.db import connection as db
    from django.test import Client

    conns = connections(ACCOUNTS)
    user = get_user_model().objects.create_superuser("bench", "bench@example.com", "x")
    client = Client()
    client.force_login(user)
    fill(conns, 0, 50)
    small = admin_pages(client, loads=1)
    started = time.perf_counter()
    fill(conns, 50, args.rows)
    with db.cursor() as cursor:
        cursor.execute("ANALYZE")
    filled = time.perf_counter() - started
    big = admin_pages(client)
    results: dict[str, object] = {
        "database": db.vendor,
        "rows in each table": f"{args.rows:,} over {ACCOUNTS} accounts (filled in {filled:.0f} s)",
    }
    for name in LISTS:
        s, b = small[name], big[name]
        results[f"{name}: queries per page, 50 rows / {args.rows:,} rows"] = (
            f"{s['queries']} / {b['queries']}"
        )
        results[f"{name}: page size, median time of 7 loads"] = (
            f"{b['bytes'] / 1024:.0f} KB, {b['seconds']:.3f} s"
        )
    results["sync log: entries in its action filter"] = big["sync log"]["action_choices"]
    for name in LISTS:
        for times, sql, _table in big[name]["repeated"]:
            results[f"{name}: a statement repeated {times} times"] = f"`{sql}…`"
    plans_md = ""
    met_plans = None
    if db.vendor == "postgresql":
        with common.sandbox_process() as url:
            statements, push = capture_payment_push(url, conns, args.rows // 2)
        plans = explain(statements)
        big_seq = [p for p in plans if p["big_seq"]]
        results |= {
            "payment push: payment links": f"{push['payment_links']:,}",
            "payment push: job, invoice in Xero, payments in Xero": f"{push['job']}, "
            f"{push['in_xero']}, {push['payments_in_xero']}",
            "payment push: statements (distinct shapes)": f"{len(statements)} ({len(plans)})",
            "payment push: sequential scans of tables over 10,000 rows": (
                "; ".join(f"{', '.join(p['big_seq'])} ×{p['times']}" for p in big_seq) or "none"
            ),
        }
        plans_md = plans_markdown(plans)
        met_plans = not big_seq and push["payments_in_xero"] == 2
    report.print_table("Big history", results)
    report.write_section(
        f"Admin and payment push over {args.rows:,} rows ({db.vendor})", results, __doc__
    )
    if plans_md:
        text = report.DOC.read_text()
        title = f"## Admin and payment push over {args.rows:,} rows ({db.vendor})"
        at = text.index(title)
        nxt = text.find("\n## ", at + len(title))
        nxt = len(text) if nxt == -1 else nxt + 1
        text = text[:nxt].rstrip("\n") + "\n\n" + plans_md + "\n" + text[nxt:]
        report.DOC.write_text(text.rstrip("\n") + "\n")
    lists = {
        n: (small[n]["queries"], big[n]["queries"])
        for n in ("sync jobs", "invoice links", "contact links")
    }
    worst = max(b for _, b in lists.values())
    constant = all(s == b for s, b in lists.values())
    log = big["sync log"]
    rows = {
        "admin_lists": targets.Row(
            " / ".join(f"{b}" for _, b in lists.values())
            + f" queries (with 50 rows: {' / '.join(str(s) for s, _ in lists.values())})",
            worst <= 10 and constant,
            f"Django test client as superuser, {args.rows:,} rows over {ACCOUNTS} accounts; "
            f"{db.vendor}",
            why="; ".join(
                f"{n}: {s} queries with 50 rows, {b} with {args.rows:,}"
                + "".join(
                    f", the same query of {name} {times}×"
                    for times, _sql, name in big[n]["repeated"]
                    if times > 2
                )
                for n, (s, b) in lists.items()
                if b > 10 or s != b
            )
            + f": one query per CRM account on the page ({ACCOUNTS} accounts here) for its name "
            "or its connection",
        ),
        "admin_log": targets.Row(
            f"{log['bytes'] / 1024:.0f} KB, {log['seconds']:.3f} s ({log['queries']} queries)",
            log["bytes"] < 300 * 1024 and log["seconds"] < 0.3,
            f"median of 7 loads, DEBUG off, {args.rows:,} log rows; {db.vendor}",
            why=f"the action filter lists {log['action_choices']} entries"
            if log["bytes"] >= 300 * 1024
            else "the page takes longer than 0.3 s to render",
        ),
    }
    if met_plans is not None:
        rows["payment_plans"] = targets.Row(
            "index scans only" if met_plans else f"{len(big_seq)} statement(s) with a seq scan",
            met_plans,
            f"EXPLAIN of the {len(statements)} statements of two payment pushes, "
            f"{args.rows // 2:,} + {args.rows // 2:,} payment links, ANALYZEd; postgresql",
            why="; ".join(p["sql"][:120] for p in big_seq),
        )
    targets.record(**rows)


if __name__ == "__main__":
    main()
