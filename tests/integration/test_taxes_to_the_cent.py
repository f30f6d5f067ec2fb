"""The CRM and Xero agree to the cent: the CRM computes each line's tax with the rate Xero will
use (its EffectiveRate, 4 dp), and Xero's rates are chosen from the organisation's own. Checked
against the sandbox's arithmetic on many random invoices."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

import pytest

from crm_demo.crm.models import Invoice
from tests.factories import ContactFactory, tax_with
from tests.integration.invoicing import (
    assert_done,
    job_of,
    link_of,
    make_invoice,
    money,
    run_due,
    xero_invoice,
)
from xero_integration.models import SyncJob

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("client_retries_at_once"),
]

RANDOM_INVOICES = 500
FOUR = Decimal("0.0001")


def test_a_compound_tax_line_is_taxed_alike_in_the_crm_and_xero(xero_sandbox, connected):
    tenant_id, account, _ = connected
    quebec = tax_with(account, "QC", ("GST", "5", False), ("QST", "9.975", True))
    invoice = make_invoice(account, [{"unit_price": Decimal("9.92"), "tax": quebec}])
    assert invoice.total == Decimal("11.46")  # 9.92 + 1.54 at Xero's 15.4738%
    assert money(xero_invoice(xero_sandbox, tenant_id, invoice.number)["Total"]) == invoice.total
    assert not link_of(invoice).total_mismatch


def random_line(rng: random.Random, taxes: list[Any]) -> dict[str, Any]:
    quantity = Decimal(rng.randint(1, 200_000)) * FOUR
    unit_price = Decimal(rng.randint(100, 5_000_000)) * FOUR
    line: dict[str, Any] = {
        "quantity": quantity,
        "unit_price": unit_price,
        "tax": rng.choice(taxes),
        "description": f"Line {rng.randint(1, 9999)}",
    }
    discount = rng.random()
    if discount < 0.2:
        line["discount_percent"] = Decimal(rng.randint(1, 10_000)) / 100
    elif discount < 0.35:
        gross = (quantity * unit_price).quantize(Decimal("0.01"))
        line["discount_amount"] = (gross * Decimal(rng.random())).quantize(Decimal("0.01"))
    return line


def test_random_invoices_have_the_same_totals_in_the_crm_and_xero(
    xero_sandbox, connected, no_dispatch, settings
):
    tenant_id, account, _ = connected
    xero_sandbox.set_limits(tenant_id, per_minute=100_000)
    settings.XERO_CALLS_PER_MINUTE = 100_000
    taxes = [
        None,
        tax_with(account, "GST", ("GST", "15", False)),
        tax_with(account, "QC", ("GST", "5", False), ("QST", "9.975", True)),
        tax_with(account, "BC", ("GST", "5", False), ("PST", "7", False)),
        tax_with(account, "Odd", ("A", "8.125", False), ("B", "2.3333", True)),
    ]
    customers = [ContactFactory(account=account) for _ in range(5)]
    rng = random.Random(20261202)
    made: list[Invoice] = []
    with no_dispatch():
        for n in range(RANDOM_INVOICES):
            lines = [random_line(rng, taxes) for _ in range(rng.randint(1, 4))]
            made.append(
                make_invoice(
                    account,
                    lines,
                    number=f"RND-{n:04d}",
                    contact=customers[n % len(customers)],
                    tax_inclusive=rng.random() < 0.3,
                )
            )
    run_due(account)

    state = xero_sandbox.organisation_state(tenant_id)
    in_xero = {i["InvoiceNumber"]: i for i in state["invoices"]}
    differ = []
    for invoice in made:
        job = job_of(invoice)
        assert job.state == SyncJob.State.DONE, (invoice.number, job.error)
        xero = in_xero[invoice.number]
        figures = (money(xero["Total"]), money(xero["TotalTax"]))
        if figures != (invoice.total, invoice.tax_total):
            differ.append((invoice.number, (invoice.total, invoice.tax_total), figures))
    assert differ == []
    assert_done(made[0])
