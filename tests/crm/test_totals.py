"""Invoice arithmetic follows Xero: tax per line rounded to the cent, then summed."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crm_demo.crm import totals
from tests.factories import InvoiceFactory, InvoiceLineFactory, PaymentFactory, tax_with

D = Decimal


def test_xero_rounding_guide_example() -> None:
    # Lines 25.06, 25.61 and 25.63 at 15%: 11.44 line by line (11.45 on the total).
    figures = totals.invoice_totals(
        [(D("25.06"), D(15)), (D("25.61"), D(15)), (D("25.63"), D(15))], False
    )
    assert figures.tax == D("11.44")
    assert figures.total == D("87.74")


def test_compound_rate_applies_on_top_of_the_simple_rates() -> None:
    # 15.47375%, kept to 4 dp as Xero keeps it.
    assert totals.effective_rate([(D(5), False), (D("9.975"), True)]) == D("15.4738")
    assert totals.effective_rate([(D(5), False), (D(7), False)]) == D(12)


def test_discounts() -> None:
    assert totals.line_amount(D(3), D("95.00"), discount_percent=D(10)) == D("256.50")
    assert totals.line_amount(D(2), D("250.00"), discount_amount=D("20.00")) == D("480.00")
    assert totals.line_amount(D(1), D("50"), discount_percent=D(100)) == D("0.00")
    assert totals.line_amount(D(0), D("50")) == D("0.00")


def test_tax_inclusive_prices_contain_their_tax() -> None:
    figures = totals.invoice_totals([(D("1130.50"), D(15))], tax_inclusive=True)
    assert figures == totals.Totals(subtotal=D("983.04"), tax=D("147.46"), total=D("1130.50"))


money = st.decimals(min_value=D("-1000"), max_value=D("100000"), places=2)
rates = st.decimals(min_value=D(0), max_value=D(30), places=4)


@given(st.lists(st.tuples(money, rates), min_size=1, max_size=20), st.booleans())
def test_tax_is_the_sum_of_rounded_line_taxes(lines, inclusive) -> None:
    figures = totals.invoice_totals(lines, inclusive)
    per_line = [totals.line_tax(amount, rate, inclusive) for amount, rate in lines]
    assert all(tax == tax.quantize(D("0.01")) for tax in per_line)
    assert figures.tax == sum(per_line, D(0))
    assert figures.subtotal + figures.tax == figures.total
    assert figures.total == sum((a for a, _ in lines), D(0)) + (D(0) if inclusive else figures.tax)


@pytest.mark.django_db
def test_invoice_totals_with_multi_component_and_compound_taxes() -> None:
    invoice = InvoiceFactory(currency="CAD")
    compound = tax_with(invoice.account, "QC", ("GST", "5", False), ("QST", "9.975", True))
    both = tax_with(invoice.account, "BC", ("GST", "5", False), ("PST", "7", False))
    InvoiceLineFactory(invoice=invoice, quantity=D(4), unit_price=D(85), tax=compound)
    InvoiceLineFactory(invoice=invoice, quantity=D(24), unit_price=D("18.75"), tax=both)
    invoice.recalculate()
    # 340 x 15.4738% = 52.61; 450 x 12% = 54.00
    assert (invoice.subtotal, invoice.tax_total, invoice.total) == (
        D("790.00"),
        D("106.61"),
        D("896.61"),
    )


@pytest.mark.django_db
def test_status_follows_payments() -> None:
    invoice = InvoiceFactory(status="sent")
    InvoiceLineFactory(invoice=invoice, quantity=D(1), unit_price=D(100))
    invoice.recalculate()
    payment = PaymentFactory(invoice=invoice, amount=D("40.00"))
    invoice.recalculate()
    assert (invoice.status, invoice.amount_due) == ("partially_paid", D("60.00"))
    PaymentFactory(invoice=invoice, amount=D("60.00"))
    invoice.recalculate()
    assert (invoice.status, invoice.amount_due) == ("paid", D("0.00"))
    payment.delete()
    invoice.recalculate()
    assert (invoice.status, invoice.amount_due) == ("partially_paid", D("40.00"))
