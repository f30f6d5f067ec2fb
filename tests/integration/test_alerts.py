"""Alerts by email: an account's owners and admins hear once when its connection needs
reconnecting and once when invoices have failed to reach Xero for an hour (not per failure),
with a link to the settings page; a daily digest of failed syncs when they chose it."""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from crm_demo.crm.models import Membership
from tests.factories import MembershipFactory
from tests.integration.conftest import make_connection
from tests.integration.invoicing import job_of, make_invoice
from xero_integration import alerts
from xero_integration.models import AccountAlerts, SyncJob, SyncLog, XeroConnection

pytestmark = pytest.mark.django_db(transaction=True)

HOUR = datetime.timedelta(hours=1)


@pytest.fixture
def team(owner) -> dict[str, Any]:
    """The owner, an admin and a plain member of one account."""
    admin = MembershipFactory(account=owner.account, role=Membership.Role.ADMIN)
    member = MembershipFactory(account=owner.account, role=Membership.Role.MEMBER)
    return {"owner": owner, "admin": admin, "member": member}


@pytest.fixture
def connection(owner, xero_sandbox, xero_app) -> XeroConnection:
    org = xero_sandbox.create_organisation(name="Demo Company (NZ)", multicurrency=False)
    made = make_connection(xero_sandbox, xero_app, org["tenant_id"], str(owner.account_id))
    state = xero_sandbox.organisation_state(org["tenant_id"])
    made.payment_account_id = next(a["AccountID"] for a in state["accounts"] if a["Type"] == "BANK")
    made.revenue_account_code = "200"
    made.base_currency = "NZD"
    made.save()
    return made


def refused_invoice(owner: Any, number: str) -> Any:
    invoice = make_invoice(
        owner.account, [{"unit_price": Decimal("10")}], currency="USD", number=number
    )
    assert job_of(invoice).state == SyncJob.State.FAILED
    return invoice


def age(invoice: Any, by: datetime.timedelta) -> None:
    """Make the invoice's trouble older (its sync log entries), as if time had passed."""
    job = job_of(invoice)
    SyncLog.objects.filter(job=job).update(created_at=timezone.now() - by)
    SyncJob.objects.filter(pk=job.pk).update(updated_at=timezone.now() - by)


def test_a_connection_that_needs_reconnecting_emails_the_managers_once(
    team, connection, mailoutbox, settings
):
    settings.XERO_SITE_URL = "https://crm.example.com/"
    XeroConnection.objects.filter(pk=connection.pk).update(
        status="needs_reconnect", status_reason="Xero refused the refresh token (invalid_grant)."
    )
    assert alerts.send_due() == 1
    (email,) = mailoutbox
    assert sorted(email.to) == sorted([team["owner"].user.email, team["admin"].user.email])
    assert team["member"].user.email not in email.to
    assert email.subject == "Xero: reconnect Demo Company (NZ) to keep invoices flowing"
    assert "https://crm.example.com/integrations/xero/" in email.body
    assert "invalid_grant" in email.body
    assert "&#x27;" not in email.body  # plain text, not HTML-escaped

    assert alerts.send_due() == 0  # once, not every few minutes
    assert len(mailoutbox) == 1

    # Reconnected, then lost again: a new alert.
    XeroConnection.objects.filter(pk=connection.pk).update(status="connected")
    assert alerts.send_due() == 0
    XeroConnection.objects.filter(pk=connection.pk).update(status="needs_reconnect")
    assert alerts.send_due() == 1
    assert len(mailoutbox) == 2


def test_syncs_failing_for_an_hour_email_once_not_per_failure(owner, team, connection, mailoutbox):
    first = refused_invoice(owner, "USD-1")
    assert alerts.send_due() == 0  # failing, but not for an hour yet
    age(first, HOUR + datetime.timedelta(minutes=1))
    assert alerts.send_due() == 1
    (email,) = mailoutbox
    assert email.subject == "Xero: 1 invoice has not reached Demo Company (NZ) for an hour"
    assert "USD-1: This invoice is in USD, which the Xero organisation has not added." in email.body
    assert "/integrations/xero/" in email.body
    for detail in ("Xero answered", "correlation id", "api.xro"):
        assert detail not in email.body

    second = refused_invoice(owner, "USD-2")
    age(second, 2 * HOUR)
    assert alerts.send_due() == 0
    assert len(mailoutbox) == 1

    # Fixed (resolved): the next hour of failures alerts again.
    SyncJob.objects.update(state=SyncJob.State.RESOLVED)
    assert alerts.send_due() == 0
    assert AccountAlerts.objects.get().failing_alerted_at is None
    third = refused_invoice(owner, "USD-3")
    age(third, 2 * HOUR)
    assert alerts.send_due() == 1
    assert "USD-3" in mailoutbox[-1].body


def test_a_daily_digest_lists_failed_syncs_when_chosen(owner, owner_client, connection, mailoutbox):
    refused_invoice(owner, "USD-1")
    assert alerts.send_due() == 0  # no digest unless chosen

    response = owner_client.post(reverse("xero_integration:alerts"), {"daily_digest": "on"})
    assert response.status_code == 302
    assert AccountAlerts.objects.get().daily_digest
    assert alerts.send_due() == 1
    (email,) = mailoutbox
    assert email.subject == "Xero daily digest: 1 invoice not in Demo Company (NZ)"
    assert "USD-1" in email.body
    assert alerts.send_due() == 0  # once a day
    AccountAlerts.objects.update(digest_sent_at=timezone.now() - datetime.timedelta(hours=25))
    assert alerts.send_due() == 1
    assert SyncLog.objects.filter(action="alert").count() == 2

    owner_client.post(reverse("xero_integration:alerts"), {})
    assert not AccountAlerts.objects.get().daily_digest


def test_only_managers_change_the_alerts(member_client, connection):
    assert (
        member_client.post(reverse("xero_integration:alerts"), {"daily_digest": "on"}).status_code
        == 403
    )


def test_invoices_waiting_for_the_default_accounts_alert_no_one(owner, connection, mailoutbox):
    XeroConnection.objects.filter(pk=connection.pk).update(revenue_account_code="")
    invoice = make_invoice(owner.account, [{}], number="SETUP-1")
    age(invoice, 3 * HOUR)
    assert alerts.send_due() == 0
    assert mailoutbox == []


def test_without_a_site_url_the_email_names_the_page(owner, connection, mailoutbox, settings):
    settings.XERO_SITE_URL = ""
    XeroConnection.objects.filter(pk=connection.pk).update(status="needs_reconnect")
    alerts.send_due()
    assert "Settings → Integrations → Xero (/integrations/xero/)" in mailoutbox[0].body
