"""The CRM and Xero agree to the cent: the CRM computes each line's tax with the rate Xero will
use (its EffectiveRate, 4 dp), and Xero's rates are chosen from the organisation's own. Checked
against the sandbox's arithmetic on many random invoices."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

import pytest
from django.urls import reverse

from crm_demo.crm.models import Invoice
from tests.factories import ContactFactory, tax_with
from tests.integration.conftest import WEB_CLIENT_ID
from tests.integration.invoicing import (
    assert_done,
    job_of,
    link_of,
    make_invoice,
    money,
    run_due,
    xero_invoice,
)
from xero_integration import outbox
from xero_integration.models import SyncJob, TaxRateMapping

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


# ---- the organisation's own rates --------------------------------------------------------------


@pytest.fixture
def organisation_in(xero_sandbox, xero_app) -> Any:
    """A CRM account connected to a new organisation of a country, accounts chosen."""
    from tests.factories import AccountFactory
    from tests.integration.conftest import make_connection

    def make(country_code: str, currency: str) -> tuple[str, Any, Any]:
        org = xero_sandbox.create_organisation(
            name=f"Org {country_code}", country_code=country_code, base_currency=currency
        )
        account = AccountFactory(base_currency=currency)
        connection = make_connection(xero_sandbox, xero_app, org["tenant_id"], str(account.pk))
        state = xero_sandbox.organisation_state(org["tenant_id"])
        connection.payment_account_id = next(
            a["AccountID"] for a in state["accounts"] if a["Type"] == "BANK"
        )
        connection.revenue_account_code = "200"
        connection.base_currency, connection.country_code = currency, country_code
        connection.save()
        return org["tenant_id"], account, connection

    return make


def test_an_australian_untaxed_line_gets_gst_free_income_not_none(xero_sandbox, organisation_in):
    tenant_id, account, connection = organisation_in("AU", "AUD")
    gst = tax_with(account, "GST", ("GST", "10", False))
    invoice = make_invoice(
        account,
        [{"unit_price": Decimal("100"), "tax": gst}, {"unit_price": Decimal("40")}],
        currency="AUD",
    )
    assert_done(invoice)
    lines = xero_invoice(xero_sandbox, tenant_id, invoice.number)["LineItems"]
    assert [line["TaxType"] for line in lines] == ["OUTPUT", "EXEMPTOUTPUT"]
    connection.refresh_from_db()
    assert connection.untaxed_tax_type == "EXEMPTOUTPUT"
    assert money(xero_invoice(xero_sandbox, tenant_id, invoice.number)["Total"]) == invoice.total


def test_staff_choose_another_untaxed_rate_and_it_is_used(xero_sandbox, organisation_in):
    tenant_id, account, connection = organisation_in("AU", "AUD")
    connection.untaxed_tax_type, connection.untaxed_set_by_staff = "BASEXCLUDED", True
    connection.save()
    invoice = make_invoice(account, [{"unit_price": Decimal("40")}], currency="AUD")
    assert_done(invoice)
    (line,) = xero_invoice(xero_sandbox, tenant_id, invoice.number)["LineItems"]
    assert line["TaxType"] == "BASEXCLUDED"


def test_a_crm_no_tax_tax_is_xeros_no_gst_not_zero_rated(xero_sandbox, organisation_in):
    tenant_id, account, _ = organisation_in("NZ", "NZD")
    no_tax = tax_with(account, "No tax", ("None", "0", False))
    zero_rated = tax_with(account, "Zero Rated", ("Exports", "0", False))
    invoice = make_invoice(
        account,
        [
            {"unit_price": Decimal("10"), "tax": no_tax},
            {"unit_price": Decimal("20"), "tax": zero_rated},
        ],
    )
    assert_done(invoice)
    lines = xero_invoice(xero_sandbox, tenant_id, invoice.number)["LineItems"]
    assert [line["TaxType"] for line in lines] == ["NONE", "ZERORATED"]


def test_a_refused_tax_rate_forgets_only_the_mappings_of_its_invoice(xero_sandbox, connected):
    tenant_id, account, _ = connected
    levy = tax_with(account, "Levy", ("Levy", "7", False))
    gst = tax_with(account, "GST", ("GST", "15", False))
    make_invoice(account, [{"unit_price": Decimal("10"), "tax": levy}])
    make_invoice(account, [{"unit_price": Decimal("10"), "tax": gst}])
    levy_rate = TaxRateMapping.objects.get(host_id=str(levy.pk)).tax_type
    # Someone deletes the levy's rate in Xero: Xero refuses the next invoice using it.
    token = xero_sandbox.issue_tokens(WEB_CLIENT_ID, [tenant_id])["access_token"]
    deleted = xero_sandbox.api(
        "POST",
        "/TaxRates",
        tenant_id,
        token,
        json={"TaxRates": [{"TaxType": levy_rate, "Name": "Levy", "Status": "DELETED"}]},
    )
    assert deleted.status_code == 200, deleted.text

    again = make_invoice(account, [{"unit_price": Decimal("30"), "tax": levy}])

    assert TaxRateMapping.objects.filter(host_id=str(gst.pk)).exists()
    run_due(account)
    assert_done(again)
    recreated = TaxRateMapping.objects.get(host_id=str(levy.pk)).tax_type
    assert recreated != levy_rate
    assert money(xero_invoice(xero_sandbox, tenant_id, again.number)["Total"]) == again.total


def test_a_staff_mapping_is_flagged_when_the_crm_tax_changes_rate(
    xero_sandbox, connected, settings, admin_client
):
    tenant_id, account, _ = connected
    settings.XERO_CREATE_TAX_RATES = False
    vat = tax_with(account, "VAT", ("VAT", "15", False))
    first = make_invoice(account, [{"unit_price": Decimal("100"), "tax": vat}])
    mapping = TaxRateMapping.objects.get(host_id=str(vat.pk))
    # Staff confirm the rate by hand: from now on it is theirs, not matched again.
    response = admin_client.post(
        reverse("admin:xero_integration_taxratemapping_change", args=[mapping.pk]),
        {"tax_type": "output2"},
    )
    assert response.status_code == 302
    assert TaxRateMapping.objects.get(pk=mapping.pk).set_by_staff
    outbox.retry(SyncJob.objects.filter(pk=job_of(first).pk))
    assert_done(first)
    assert money(xero_invoice(xero_sandbox, tenant_id, first.number)["Total"]) == 115

    vat.components.update(rate=Decimal("12.5"))
    later = make_invoice(account, [{"unit_price": Decimal("100"), "tax": vat}])

    assert later.total == Decimal("112.50")
    job = job_of(later)
    assert job.state == SyncJob.State.FAILED and job.reason == SyncJob.Reason.SETUP
    assert "VAT" in job.error and "12.5%" in job.error and "15%" in job.error
    assert TaxRateMapping.objects.get(pk=mapping.pk).needs_review
    numbers = [i["InvoiceNumber"] for i in xero_sandbox.organisation_state(tenant_id)["invoices"]]
    assert later.number not in numbers  # not sent at a rate the CRM no longer has
