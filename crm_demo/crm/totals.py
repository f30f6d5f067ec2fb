"""Invoice arithmetic with Decimal, the way Xero does it: tax per line, rounded, then summed."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")
RATE_PLACES = Decimal("0.0001")
HUNDRED = Decimal("100")


def round_money(amount: Decimal) -> Decimal:
    """Round to the cent, halves away from zero (as Xero rounds)."""
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def effective_rate(components: Iterable[tuple[Decimal, bool]]) -> Decimal:
    """Percent rate of a tax made of (rate, compound) components, as Xero keeps it: to 4 dp.

    A compound component applies on top of the amount plus the preceding non-compound ones:
    5% + compound 9.975% is 5 + 9.975 x 1.05 = 15.47375%, which Xero stores (EffectiveRate) and
    applies as 15.4738%. Using Xero's figure keeps every line's tax, and so every total, equal to
    the cent in both ledgers: a 9.92 line is 1.54 tax in each, not 1.53 in one.
    """
    simple = Decimal("0")
    compound_total = Decimal("0")
    for rate, compound in components:
        if compound:
            compound_total += rate * (1 + simple / HUNDRED)
        else:
            simple += rate
    return (simple + compound_total).quantize(RATE_PLACES, rounding=ROUND_HALF_UP)


def line_amount(
    quantity: Decimal,
    unit_price: Decimal,
    discount_percent: Decimal | None = None,
    discount_amount: Decimal | None = None,
) -> Decimal:
    """Quantity x price less the discount, rounded to the cent."""
    amount = quantity * unit_price
    if discount_percent:
        amount = amount * (HUNDRED - discount_percent) / HUNDRED
    if discount_amount:
        amount -= discount_amount
    return round_money(amount)


def line_tax(amount: Decimal, rate: Decimal, tax_inclusive: bool) -> Decimal:
    """Tax of one line, rounded to the cent."""
    if not rate:
        return Decimal("0.00")
    if tax_inclusive:
        return round_money(amount - amount / (1 + rate / HUNDRED))
    return round_money(amount * rate / HUNDRED)


@dataclass(frozen=True)
class Totals:
    """An invoice's figures."""

    subtotal: Decimal
    tax: Decimal
    total: Decimal


def invoice_totals(lines: Iterable[tuple[Decimal, Decimal]], tax_inclusive: bool) -> Totals:
    """Totals from (line amount, effective rate) pairs: per-line rounded tax, then summed."""
    amounts = Decimal("0.00")
    tax = Decimal("0.00")
    for amount, rate in lines:
        amounts += amount
        tax += line_tax(amount, rate, tax_inclusive)
    if tax_inclusive:
        return Totals(subtotal=amounts - tax, tax=tax, total=amounts)
    return Totals(subtotal=amounts, tax=tax, total=amounts + tax)
