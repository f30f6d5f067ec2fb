"""Benchmark: calls to Xero per invoice, ours against a naive per-invoice sync written with the
official xero-python SDK, on the same data and the same sandbox.

python -m benchmarks.sync [--invoices 300] [--backfill 1000]

Realtime: invoices created and sent one at a time in the CRM (contacts imported from Xero first,
as after connecting). Backfill: the CRM's history sent with xero_backfill. Naive: for each
invoice, look the contact up by name, create it if missing, create the invoice, add its payment.
The time to drain 10,000 invoices is computed from the calls under Xero's real limits (60 calls
a minute, 5,000 a day) rather than measured; the sandbox's limits are lifted meanwhile so that
the run itself is quick (the other benchmarks keep Xero's limits). The host save's overhead is
measured on committed saves by benchmarks.save_overhead.
"""

from __future__ import annotations

import argparse
import datetime
import math
from decimal import Decimal
from io import StringIO

from benchmarks import common, report

SCOPE = (
    "openid profile email offline_access accounting.contacts accounting.settings "
    "accounting.invoices accounting.payments"
)


def drain_time(calls_per_invoice: float, invoices: int = 10_000) -> str:
    """How long Xero's limits (60 a minute, 5,000 a day) let ``invoices`` take."""
    calls = math.ceil(calls_per_invoice * invoices)
    days, rest = divmod(calls, 5000)
    minutes = rest / 60
    if days:
        return f"{days} day(s) + {minutes:,.0f} min ({calls:,} calls)"
    return f"{minutes:,.1f} min ({calls:,} calls)"


def make_history(account, count: int, contacts: list, gst) -> list:
    from crm_demo.crm.models import Invoice, InvoiceLine, Payment

    made = []
    for n in range(count):
        invoice = Invoice.objects.create(
            account=account,
            number=f"H-{n:05d}",
            contact=contacts[n % len(contacts)],
            currency="NZD",
            issue_date=datetime.date(2026, 1, 1) + datetime.timedelta(days=n % 300),
            due_date=datetime.date(2026, 12, 31),
        )
        InvoiceLine.objects.create(
            invoice=invoice,
            item_name="Consulting",
            description="Hours",
            quantity=Decimal("2"),
            unit_price=Decimal("95.50") + n % 40,
            tax=gst,
        )
        invoice.recalculate()
        invoice.status = Invoice.Status.SENT
        invoice.save()
        if n % 2 == 0:
            Payment.objects.create(
                invoice=invoice,
                amount=Decimal("50.00"),
                date=datetime.date(2026, 12, 1),
                reference=f"P{n}",
            )
            invoice.recalculate()
        made.append(invoice)
    return made


def api_calls(url: str, tenant_id: str) -> int:
    log = common.control(url, "GET", f"requests?tenant_id={tenant_id}")
    return sum(1 for entry in log if entry["path"].startswith("/api.xro/2.0/"))


def connect(url: str, name: str, contacts: int):
    from django.conf import settings

    org = common.new_organisation(url, name, contacts)
    common.control(url, "POST", "limits", {"tenant_id": org["tenant_id"], "per_minute": 100000})
    account, connection = common.connect_account(url, org["tenant_id"], name)
    common.choose_default_accounts(url, connection)
    settings.XERO_CALLS_PER_MINUTE = 100000
    return org["tenant_id"], account, connection


def realtime(url: str, count: int) -> dict:
    from crm_demo.crm.models import Contact, Invoice, InvoiceLine, Tax, TaxComponent
    from xero_integration import contacts as contact_sync
    from xero_integration.models import ContactImport

    tenant_id, account, connection = connect(url, "Realtime Ltd", contacts=50)
    job = ContactImport.objects.create(connection=connection)
    contact_sync.run_import(job.pk)
    people = list(Contact.objects.filter(account=account))
    gst = Tax.objects.create(account=account, name="GST 15%")
    TaxComponent.objects.create(tax=gst, name="GST", rate=Decimal("15"))
    warm = api_calls(url, tenant_id)

    def one(n: int) -> None:
        invoice = Invoice.objects.create(
            account=account,
            number=f"RT-{n:05d}",
            contact=people[n % len(people)],
            currency="NZD",
            issue_date=datetime.date(2026, 11, 1),
            due_date=datetime.date(2026, 11, 30),
        )
        InvoiceLine.objects.create(
            invoice=invoice,
            item_name="Support",
            description="Monthly",
            quantity=Decimal("1"),
            unit_price=Decimal("120"),
            tax=gst,
        )
        invoice.recalculate(save=False)
        invoice.status = Invoice.Status.SENT
        invoice.save()

    one(0)  # the first invoice also maps the tax rate
    before = api_calls(url, tenant_id)
    for n in range(1, count + 1):
        one(n)
    calls = api_calls(url, tenant_id) - before
    return {"invoices": count, "calls": calls, "setup calls (import, tax)": before - warm}


def backfill(url: str, count: int) -> dict:
    from django.core.management import call_command

    from crm_demo.crm.models import Account, Contact, Tax, TaxComponent

    account = Account.objects.create(name="History Ltd")
    people = [
        Contact.objects.create(account=account, name=f"Client {n}", email=f"client{n}@example.com")
        for n in range(40)
    ]
    gst = Tax.objects.create(account=account, name="GST 15%")
    TaxComponent.objects.create(tax=gst, name="GST", rate=Decimal("15"))
    make_history(account, count, people, gst)
    org = common.control(
        url,
        "POST",
        "organisations",
        {
            "name": "History Ltd",
            "country_code": "NZ",
            "base_currency": "NZD",
            "multicurrency": True,
        },
    )
    common.control(url, "POST", "limits", {"tenant_id": org["tenant_id"], "per_minute": 100000})
    _, connection = common.connect_account(url, org["tenant_id"], "History Ltd", account=account)
    common.choose_default_accounts(url, connection)
    call_command("xero_backfill", "--account", str(account.pk), stdout=StringIO())
    state = common.control(url, "GET", f"organisations/{org['tenant_id']}")
    return {
        "invoices": count,
        "calls": api_calls(url, org["tenant_id"]),
        "in Xero": len(state["invoices"]),
        "payments": sum(1 for p in state["payments"] if p["Status"] == "AUTHORISED"),
    }


def naive(url: str, count: int) -> dict:
    """The per-invoice sync a developer writes first, with the official SDK."""
    from xero_python.accounting import AccountingApi
    from xero_python.accounting.models import (
        Account,
        Contact,
        Contacts,
        Invoice,
        Invoices,
        LineAmountTypes,
        LineItem,
        Payment,
    )
    from xero_python.api_client import ApiClient
    from xero_python.api_client.configuration import Configuration
    from xero_python.api_client.oauth2 import OAuth2Token

    org = common.control(
        url,
        "POST",
        "organisations",
        {
            "name": "Naive Ltd",
            "country_code": "NZ",
            "base_currency": "NZD",
            "multicurrency": True,
        },
    )
    tenant = org["tenant_id"]
    common.control(url, "POST", "limits", {"tenant_id": tenant, "per_minute": 100000})
    common.control(
        url,
        "POST",
        "apps",
        {
            "client_id": "naive",
            "client_secret": "naive-secret",
            "redirect_uris": ["http://127.0.0.1/cb/"],
        },
    )
    token = common.control(
        url, "POST", "tokens", {"client_id": "naive", "tenant_ids": [tenant], "scope": SCOPE}
    )
    holder = {
        key: token.get(key)
        for key in ("access_token", "refresh_token", "id_token", "token_type", "expires_in")
    }
    holder["scope"] = token["scope"].split()
    configuration = Configuration()
    configuration.oauth2_token = OAuth2Token(client_id="naive", client_secret="naive-secret")
    api = AccountingApi(
        ApiClient(
            configuration,
            oauth2_token_getter=lambda: holder,
            oauth2_token_saver=holder.update,
            pool_threads=1,
        ),
        base_url=f"{url}/api.xro/2.0",
    )
    state = common.control(url, "GET", f"organisations/{tenant}")
    bank = next(a["AccountID"] for a in state["accounts"] if a["Type"] == "BANK")
    for n in range(count):
        name = f"Client {n % 40}"
        found = api.get_contacts(tenant, where=f'Name=="{name}"').contacts
        if found:
            contact_id = found[0].contact_id
        else:
            contact_id = (
                api.create_contacts(
                    tenant,
                    Contacts(contacts=[Contact(name=name, email_address=f"c{n % 40}@x.com")]),
                )
                .contacts[0]
                .contact_id
            )
        invoice = api.create_invoices(
            tenant,
            Invoices(
                invoices=[
                    Invoice(
                        type="ACCREC",
                        contact=Contact(contact_id=contact_id),
                        invoice_number=f"N-{n:05d}",
                        date=datetime.date(2026, 1, 1),
                        due_date=datetime.date(2026, 12, 31),
                        line_amount_types=LineAmountTypes.EXCLUSIVE,
                        status="AUTHORISED",
                        line_items=[
                            LineItem(
                                description="Consulting",
                                quantity=2,
                                unit_amount=95.5 + n % 40,
                                account_code="200",
                                tax_type="OUTPUT2",
                            )
                        ],
                    )
                ]
            ),
        ).invoices[0]
        if n % 2 == 0:
            api.create_payment(
                tenant,
                Payment(
                    invoice=Invoice(invoice_id=invoice.invoice_id),
                    account=Account(account_id=bank),
                    amount=50.0,
                    date=datetime.date(2026, 12, 1),
                ),
            )
    return {"invoices": count, "calls": api_calls(url, tenant)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--invoices", type=int, default=300, help="realtime and naive")
    parser.add_argument("--backfill", type=int, default=1000)
    args = parser.parse_args()
    common.setup_django("bench-sync")
    from django_q.conf import Conf

    Conf.SYNC = True  # tasks run at once, in this process
    with common.sandbox_process() as url:
        live = realtime(url, args.invoices)
        history = backfill(url, args.backfill)
        sdk = naive(url, args.invoices)
    ours_rt = live["calls"] / live["invoices"]
    ours_bf = history["calls"] / history["invoices"]
    theirs = sdk["calls"] / sdk["invoices"]
    from django.db import connection as db

    results = {
        "database": db.vendor,
        "realtime: calls per invoice (target ≤ 1.05)": f"{ours_rt:.3f} ({live['calls']} calls / "
        f"{live['invoices']} invoices)",
        "backfill: calls per invoice (target ≤ 0.05)": f"{ours_bf:.3f} ({history['calls']} calls "
        f"/ {history['invoices']} invoices, {history['payments']} payments)",
        "naive SDK sync: calls per invoice": f"{theirs:.3f} ({sdk['calls']} calls / "
        f"{sdk['invoices']} invoices)",
        "naive / backfill (target ≥ 20×)": f"{theirs / ours_bf:.0f}×",
        "naive / realtime": f"{theirs / ours_rt:.1f}×",
        "10,000 invoices: backfill": drain_time(ours_bf),
        "10,000 invoices: realtime pushes": drain_time(ours_rt),
        "10,000 invoices: naive SDK sync": drain_time(theirs),
    }
    report.print_table("Sync", results)
    report.write_section(f"Invoice sync ({db.vendor})", results, __doc__)


if __name__ == "__main__":
    main()
