"""seed_demo is idempotent and gives a usable demo account."""

import pytest
from django.core.management import call_command
from django.test import Client

from crm_demo.crm.management.commands.seed_demo import DEMO_EMAIL, DEMO_PASSWORD
from crm_demo.crm.models import Contact, Invoice, Payment, Tax, TaxComponent

pytestmark = pytest.mark.django_db


def snapshot() -> dict:
    return {
        "contacts": sorted(Contact.objects.values_list("name", "email")),
        "taxes": sorted(TaxComponent.objects.values_list("tax__name", "name", "rate", "compound")),
        "invoices": sorted(
            Invoice.objects.values_list("number", "currency", "total", "amount_due", "status")
        ),
        "payments": sorted(Payment.objects.values_list("invoice__number", "amount")),
    }


def test_seed_twice_gives_the_same_data(capsys):
    call_command("seed_demo")
    first = snapshot()
    call_command("seed_demo")
    assert snapshot() == first
    assert len(first["contacts"]) >= 10
    assert len({currency for _, currency, *_ in first["invoices"]}) >= 3
    statuses = {status for *_, status in first["invoices"]}
    assert {"draft", "sent", "partially_paid", "paid", "void"} <= statuses
    assert Tax.objects.filter(components__compound=True).exists()
    assert any(ord(ch) > 0x3000 for name, _ in first["contacts"] for ch in name)
    assert DEMO_PASSWORD in capsys.readouterr().out


def test_the_demo_user_can_sign_in():
    call_command("seed_demo")
    client = Client()
    response = client.post("/accounts/login/", {"login": DEMO_EMAIL, "password": DEMO_PASSWORD})
    assert response.status_code == 302
    assert "Demo Company" in client.get("/").content.decode()
