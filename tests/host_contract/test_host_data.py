"""The plain data an adapter hands the app: what a host must say, the app never guesses."""

from __future__ import annotations

import dataclasses
import datetime
from decimal import Decimal

import pytest

from xero_integration.data import HostContact, HostInvoice, HostLine, InvoiceStatus


def invoice_fields() -> dict:
    return {
        "host_model": "mycrm.invoice",
        "host_id": "1",
        "account_key": "1",
        "number": "INV-1",
        "contact": HostContact("mycrm.customer", "1", "Acme"),
        "currency": "NZD",
        "issue_date": datetime.date(2026, 11, 1),
        "due_date": None,
        "tax_inclusive": False,
        "status": InvoiceStatus.SENT,
        "lines": (HostLine("Work", "", Decimal("2"), Decimal("12.50")),),
    }


def test_an_invoice_without_its_total_is_refused_at_once() -> None:
    """A total left out would compare as 0 with Xero's and flag every invoice as differing."""
    with pytest.raises(TypeError, match="total"):
        HostInvoice(**invoice_fields())


def test_total_has_no_default() -> None:
    (total,) = [f for f in dataclasses.fields(HostInvoice) if f.name == "total"]
    assert total.default is dataclasses.MISSING and total.default_factory is dataclasses.MISSING
    assert HostInvoice(**invoice_fields(), total=Decimal("25.00")).total == Decimal("25.00")
