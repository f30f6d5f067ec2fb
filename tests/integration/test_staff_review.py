"""Staff review of invoice syncs in Django admin, against the sandbox.

Django admin (a superuser's ``admin_client``): the sync jobs and the "failed syncs" list with
Xero's messages, filters and search, "Retry" and "Mark resolved" on several rows at once, the
sync log with each call's status, correlation id and redacted bodies, the invoice links with
"Open in Xero" and "Sync now". The CRM's own invoice page (its users' clients): the Xero state,
Xero's message in plain words when a sync failed, and the "Sync now" button.
"""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from crm_demo.crm.models import Invoice, InvoiceLine
from tests.factories import InvoiceFactory, InvoiceLineFactory, PaymentFactory, tax_with
from tests.integration.conftest import WEB_CLIENT_SECRET, make_connection
from tests.integration.invoicing import XeroUser
from xero_integration import services
from xero_integration.models import (
    ConnectionStatus,
    InvoiceLink,
    SyncJob,
    SyncLog,
    TaxRateMapping,
    XeroConnection,
)

pytestmark = pytest.mark.django_db(transaction=True)

API = "/api.xro/2.0"
SHORT_CODE = "!Tq2bX"
USD_MESSAGE = "Organisation is not subscribed to currency USD"
UNMAPPED = "No Xero tax rate matches the CRM tax"


# ---- fixtures and helpers ------------------------------------------------------------------


@pytest.fixture
def connected(xero_sandbox, xero_app, owner, settings) -> tuple[str, Any, XeroConnection]:
    """The owner's CRM account connected to an NZ organisation without multi-currency; taxes
    are never created in Xero (staff map them), so unmatched taxes and foreign currencies fail."""
    settings.XERO_CREATE_TAX_RATES = False
    org = xero_sandbox.create_organisation(name="Demo Company (NZ)", multicurrency=False)
    account = owner.account
    connection = make_connection(xero_sandbox, xero_app, org["tenant_id"], str(account.pk))
    state = xero_sandbox.organisation_state(org["tenant_id"])
    bank = next(a for a in state["accounts"] if a["Type"] == "BANK")
    connection.payment_account_id = bank["AccountID"]
    connection.revenue_account_code = "200"
    connection.base_currency = "NZD"
    connection.country_code = "NZ"
    connection.short_code = SHORT_CODE
    connection.save()
    return org["tenant_id"], account, connection


@pytest.fixture
def luxury(connected):
    """A CRM tax no Xero rate matches (33%)."""
    _, account, _ = connected
    return tax_with(account, "Luxury 33%", ("Luxury", "33", False))


def make_invoice(
    account: Any,
    lines: list[dict[str, Any]] | None = None,
    status: str = Invoice.Status.SENT,
    **fields: Any,
) -> Invoice:
    """An invoice with its lines, saved in one transaction: one push after the commit."""
    with transaction.atomic():
        invoice = InvoiceFactory(account=account, status=status, **fields)
        for position, line in enumerate(lines or [{}]):
            InvoiceLineFactory(invoice=invoice, position=position, **line)
        invoice.recalculate()
    return invoice


def pay(invoice: Invoice, amount: str) -> None:
    with transaction.atomic():
        PaymentFactory(invoice=invoice, amount=Decimal(amount), date=datetime.date(2026, 11, 5))
        invoice.recalculate()


def job_of(invoice: Invoice) -> SyncJob:
    return SyncJob.objects.get(host_model="crm.invoice", host_id=str(invoice.pk))


def link_of(invoice: Invoice) -> InvoiceLink:
    return InvoiceLink.objects.get(host_model="crm.invoice", host_id=str(invoice.pk))


def xero_invoices(sandbox: Any, tenant_id: str) -> dict[str, dict[str, Any]]:
    """The sandbox's invoices by number."""
    return {i["InvoiceNumber"]: i for i in sandbox.organisation_state(tenant_id)["invoices"]}


def admin_url(model: str, view: str = "changelist", *args: Any) -> str:
    return reverse(f"admin:xero_integration_{model}_{view}", args=args)


def listed(response: Any) -> list[Any]:
    """The rows of an admin changelist response."""
    assert response.status_code == 200, response.content.decode()[:2000]
    return list(response.context["cl"].result_list)


def run_action(client: Any, model: str, action: str, objects: list[Any]) -> Any:
    """Run an admin action on the selected rows, following the redirect to the changelist."""
    return client.post(
        admin_url(model),
        {"action": action, "_selected_action": [str(o.pk) for o in objects]},
        follow=True,
    )


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def sync_url(invoice: Invoice) -> str:
    return reverse("xero_integration:sync_invoice", args=["crm.invoice", str(invoice.pk)])


@pytest.fixture
def refused(connected, luxury) -> dict[str, Invoice]:
    """Three invoices Xero did not take: two with an unmapped tax, one in USD."""
    _, account, _ = connected
    made = {
        "tax1": make_invoice(account, [{"tax": luxury}], number="LUX-0001"),
        "tax2": make_invoice(account, [{"tax": luxury, "unit_price": Decimal("40")}]),
        "usd": make_invoice(account, [{}], currency="USD", number="USD-0001"),
    }
    for invoice in made.values():
        assert job_of(invoice).state == SyncJob.State.FAILED
    return made


# ---- the sync job lists ----------------------------------------------------------------------


def test_refused_jobs_show_in_the_job_list_and_the_failed_syncs_with_xeros_message(
    admin_client, connected, refused
):
    _, account, _ = connected
    done = make_invoice(account, [{}], number="OK-0001")
    assert job_of(done).state == SyncJob.State.DONE

    response = admin_client.get(admin_url("syncjob"))
    assert {j.number for j in listed(response)} == {
        "LUX-0001",
        refused["tax2"].number,
        "USD-0001",
        "OK-0001",
    }
    page = response.content.decode()
    assert USD_MESSAGE in page
    assert UNMAPPED in page and "Luxury 33%" in page

    response = admin_client.get(admin_url("failedsyncjob"))
    assert {j.number for j in listed(response)} == {"LUX-0001", refused["tax2"].number, "USD-0001"}
    page = response.content.decode()
    assert USD_MESSAGE in page and "multi-currency" in page
    assert UNMAPPED in page
    assert "OK-0001" not in page

    # The job's own page: Xero's whole message, and where it stands in Xero.
    usd_job = job_of(refused["usd"])
    response = admin_client.get(admin_url("failedsyncjob", "change", usd_job.pk))
    assert response.status_code == 200
    page = response.content.decode()
    assert USD_MESSAGE in page
    assert "Not in Xero yet" in page


def test_the_changelist_filters_by_state_and_searches_by_invoice_number(
    admin_client, connected, refused
):
    _, account, _ = connected
    make_invoice(account, [{}], number="OK-0001")

    failed = listed(admin_client.get(admin_url("syncjob"), {"state__exact": "failed"}))
    assert {j.number for j in failed} == {"LUX-0001", refused["tax2"].number, "USD-0001"}
    done = listed(admin_client.get(admin_url("syncjob"), {"state__exact": "done"}))
    assert [j.number for j in done] == ["OK-0001"]

    (found,) = listed(admin_client.get(admin_url("syncjob"), {"q": "USD-0001"}))
    assert found.pk == job_of(refused["usd"]).pk
    (found,) = listed(admin_client.get(admin_url("failedsyncjob"), {"q": "LUX-0001"}))
    assert found.pk == job_of(refused["tax1"]).pk
    assert listed(admin_client.get(admin_url("failedsyncjob"), {"q": "OK-0001"})) == []


# ---- fixing the data, Retry and Mark resolved --------------------------------------------------


def test_staff_map_the_tax_in_admin_then_retry_several_jobs_at_once(
    admin_client, xero_sandbox, connected, refused, luxury
):
    tenant_id, _, _ = connected
    mapping = TaxRateMapping.objects.get(host_id=str(luxury.pk))
    assert mapping.tax_type == ""
    change = admin_url("taxratemapping", "change", mapping.pk)
    page = admin_client.get(change).content.decode()
    assert "Xero recommends its existing rates" in page  # the help text for AU/NZ/UK

    response = admin_client.post(change, {"tax_type": " output2 ", "_save": "Save"})
    assert response.status_code == 302, response.content.decode()[:3000]
    mapping.refresh_from_db()
    assert mapping.tax_type == "OUTPUT2"
    assert mapping.set_by_staff is True
    assert mapping.created_in_xero is False

    jobs = [job_of(refused["tax1"]), job_of(refused["tax2"])]
    response = run_action(admin_client, "failedsyncjob", "retry", jobs)
    assert "2 job(s) queued to run again." in messages_of(response)
    for invoice in (refused["tax1"], refused["tax2"]):
        job = job_of(invoice)
        assert job.state == SyncJob.State.DONE, job.error
        assert job.error == ""
        assert link_of(invoice).xero_status == "AUTHORISED"

    in_xero = xero_invoices(xero_sandbox, tenant_id)
    assert set(in_xero) == {"LUX-0001", refused["tax2"].number}
    for xero_invoice in in_xero.values():
        assert xero_invoice["Status"] == "AUTHORISED"
        assert xero_invoice["LineItems"][0]["TaxType"] == "OUTPUT2"
    # Staff chose a 15% rate for a 33% CRM tax: the totals differ, and the link says so.
    refused["tax1"].refresh_from_db()
    assert refused["tax1"].total == Decimal("133.00")
    assert Decimal(str(in_xero["LUX-0001"]["Total"])) == Decimal("115.00")
    link = link_of(refused["tax1"])
    assert link.total_mismatch is True
    assert (link.crm_total, link.xero_total) == (Decimal("133.00"), Decimal("115.00"))

    # Only the USD invoice is still failed.
    failed = listed(admin_client.get(admin_url("failedsyncjob")))
    assert [j.number for j in failed] == ["USD-0001"]


def test_retry_from_the_job_list_of_a_job_xero_still_refuses_keeps_its_message(
    admin_client, xero_sandbox, connected, refused
):
    tenant_id, _, _ = connected
    job = job_of(refused["usd"])
    response = run_action(admin_client, "syncjob", "retry", [job])
    assert "1 job(s) queued to run again." in messages_of(response)
    job.refresh_from_db()
    assert job.state == SyncJob.State.FAILED
    assert USD_MESSAGE in job.error
    assert xero_invoices(xero_sandbox, tenant_id) == {}


def test_mark_resolved_on_several_rows(admin_client, xero_sandbox, connected, refused):
    tenant_id, _, _ = connected
    jobs = [job_of(refused["usd"]), job_of(refused["tax2"])]
    response = run_action(admin_client, "failedsyncjob", "mark_resolved", jobs)
    assert "2 job(s) marked resolved." in messages_of(response)
    for job in jobs:
        job.refresh_from_db()
        assert job.state == SyncJob.State.RESOLVED
    assert job_of(refused["tax1"]).state == SyncJob.State.FAILED
    assert [j.number for j in listed(admin_client.get(admin_url("failedsyncjob")))] == ["LUX-0001"]
    resolved = listed(admin_client.get(admin_url("syncjob"), {"state__exact": "resolved"}))
    assert {j.pk for j in resolved} == {j.pk for j in jobs}
    assert xero_invoices(xero_sandbox, tenant_id) == {}


# ---- the sync log --------------------------------------------------------------------------------


def test_the_sync_log_shows_each_call_with_status_correlation_id_and_bodies_without_secrets(
    admin_client, xero_sandbox, xero_app, connected, refused
):
    tenant_id, account, connection = connected
    old_access, old_refresh = connection.access_token, connection.refresh_token
    # The token has expired: the push refreshes it first.
    XeroConnection.objects.filter(pk=connection.pk).update(
        access_token_expires_at=timezone.now() - datetime.timedelta(minutes=5)
    )
    invoice = make_invoice(account, [{"description": "Logged"}], number="LOG-0001")
    pay(invoice, "30.00")
    assert job_of(invoice).state == SyncJob.State.DONE, job_of(invoice).error
    connection.refresh_from_db()
    assert connection.access_token != old_access  # refreshed during the push
    secrets = [
        old_access,
        old_refresh,
        connection.access_token,
        connection.refresh_token,
        WEB_CLIENT_SECRET,
    ]

    calls = SyncLog.objects.filter(host_id=str(invoice.pk), http_status__isnull=False)
    actions = {c.action for c in calls}
    assert f"PUT {API}/Invoices" in actions or f"POST {API}/Invoices" in actions, actions
    assert any(a.endswith("/Payments") for a in actions), actions
    for call in calls:
        assert call.http_status in range(200, 300), (call.action, call.http_status)
        assert call.correlation_id, call.action
    create = next(c for c in calls if c.action.endswith(f"{API}/Invoices"))
    assert "LOG-0001" in create.request_body
    assert "InvoiceID" in create.response_body

    # The USD invoice: the calls that found the currency missing, then the job's failure.
    usd_rows = SyncLog.objects.filter(host_id=str(refused["usd"].pk))
    assert any(r.http_status == 200 and r.correlation_id for r in usd_rows)
    (usd_failure,) = usd_rows.filter(outcome=SyncLog.Outcome.FAILED, http_status__isnull=True)
    assert USD_MESSAGE in usd_failure.message

    # A call Xero refuses is logged with its status and answer: an edit of an invoice someone
    # paid in Xero meanwhile (the CRM has not heard of that payment yet, so only Xero knows).
    unpaid = make_invoice(account, [{"description": "Logged"}], number="LOG-0002")
    link = InvoiceLink.objects.get(host_id=str(unpaid.pk))
    XeroUser(xero_sandbox, tenant_id).pay(link.xero_invoice_id, "10.00")
    with transaction.atomic():
        InvoiceLine.objects.filter(invoice=unpaid).update(description="Edited after payment")
        unpaid.save()
    assert job_of(unpaid).state == SyncJob.State.FAILED
    (refusal,) = SyncLog.objects.filter(host_id=str(unpaid.pk), http_status__gte=400)
    assert refusal.http_status == 400
    assert refusal.correlation_id
    assert "cannot be edited" in refusal.response_body
    assert "Edited after payment" in refusal.request_body

    for row in SyncLog.objects.all():
        text = " ".join(
            [row.message, row.request_body, row.response_body, str(row.details), row.action]
        )
        for secret in secrets:
            assert secret not in text, f"a secret is in sync log {row.pk} ({row.action})"

    # In admin: the list shows each call's status; its page shows the correlation id and bodies.
    response = admin_client.get(admin_url("synclog"), {"q": create.correlation_id})
    (row,) = listed(response)
    assert row.pk == create.pk
    response = admin_client.get(admin_url("synclog"))
    page = response.content.decode()
    assert str(create.http_status) in page
    for secret in secrets:
        assert secret not in page
    response = admin_client.get(admin_url("synclog", "change", create.pk))
    assert response.status_code == 200
    page = response.content.decode()
    assert create.correlation_id in page
    assert "LOG-0001" in page and "InvoiceID" in page
    assert str(create.http_status) in page
    for secret in secrets:
        assert secret not in page
    # Logs are the integration's own: staff cannot add or change them.
    assert admin_client.get(admin_url("synclog", "add")).status_code == 403


# ---- the invoice link: Open in Xero, Sync now ----------------------------------------------------


def test_invoice_link_admin_opens_the_invoice_in_xero(
    admin_client, xero_sandbox, connected, settings
):
    tenant_id, account, _ = connected
    invoice = make_invoice(account, [{}], number="LINK-0001")
    link = link_of(invoice)
    assert link.xero_invoice_id
    sandbox_url = f"{xero_sandbox.url}/_sandbox/org/{tenant_id}#invoice-{link.xero_invoice_id}"

    response = admin_client.get(admin_url("invoicelink"))
    assert [row.pk for row in listed(response)] == [link.pk]
    page = response.content.decode()
    assert f'href="{sandbox_url}"' in page
    assert "AUTHORISED" in page
    page = admin_client.get(admin_url("invoicelink", "change", link.pk)).content.decode()
    assert f'href="{sandbox_url}"' in page
    page = admin_client.get(admin_url("syncjob", "change", job_of(invoice).pk)).content.decode()
    assert "Open in Xero" in page and f'href="{sandbox_url}"' in page

    # The page the sandbox link opens shows the invoice.
    import requests

    org_page = requests.get(sandbox_url, timeout=10)
    assert org_page.status_code == 200
    assert "LINK-0001" in org_page.text

    # Against the real Xero: the organisation's ShortCode deep link to the invoice.
    settings.XERO_API_URL = "https://api.xero.com"
    url = services.xero_invoice_url(tenant_id, SHORT_CODE, link.xero_invoice_id)
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc) == ("https", "go.xero.com")
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert query["shortcode"] == SHORT_CODE
    assert link.xero_invoice_id in query["redirecturl"]
    assert "InvoiceID=" in query["redirecturl"]
    page = admin_client.get(admin_url("invoicelink")).content.decode()
    assert "https://go.xero.com/organisationlogin/default.aspx?" in page
    assert link.xero_invoice_id in page


def test_invoice_link_admin_sync_now_pushes_the_invoice_again(
    admin_client, xero_sandbox, connected
):
    tenant_id, account, _ = connected
    first = make_invoice(account, [{"description": "Before"}], number="SYNC-0001")
    second = make_invoice(account, [{"description": "Before"}], number="SYNC-0002")
    # The CRM's data changed behind the outbox's back (a bulk update sends no signal).
    InvoiceLine.objects.filter(invoice__in=[first, second]).update(description="After")
    links = [link_of(first), link_of(second)]
    response = run_action(admin_client, "invoicelink", "sync_now", links)
    assert "2 invoice(s) queued." in messages_of(response)
    in_xero = xero_invoices(xero_sandbox, tenant_id)
    assert len(in_xero) == 2
    for invoice in (first, second):
        assert job_of(invoice).state == SyncJob.State.DONE, job_of(invoice).error
        assert in_xero[invoice.number]["LineItems"][0]["Description"] == "Consulting\nAfter"


# ---- the CRM's invoice page ----------------------------------------------------------------------


def test_the_crm_invoice_page_shows_the_xero_state_and_amount_due(
    owner_client, xero_sandbox, connected
):
    tenant_id, account, _ = connected
    invoice = make_invoice(account, [{"unit_price": Decimal("100")}], number="PAGE-0001")
    pay(invoice, "40.00")
    assert job_of(invoice).state == SyncJob.State.DONE
    xero_invoice = xero_invoices(xero_sandbox, tenant_id)["PAGE-0001"]
    assert xero_invoice["Status"] == "AUTHORISED"
    assert Decimal(str(xero_invoice["AmountDue"])) == Decimal("60.00")

    response = owner_client.get(reverse("crm:invoice_detail", args=[invoice.pk]))
    assert response.status_code == 200
    page = response.content.decode()
    assert "In Xero: <strong>Authorised</strong>, 40.00 paid, 60.00 due" in page
    link = link_of(invoice)
    assert f"/_sandbox/org/{tenant_id}#invoice-{link.xero_invoice_id}" in page
    assert "Open in Xero" in page
    assert f'action="{sync_url(invoice)}"' in page


def test_the_crm_invoice_page_shows_a_failed_sync_in_plain_words(owner_client, refused):
    response = owner_client.get(reverse("crm:invoice_detail", args=[refused["usd"].pk]))
    assert response.status_code == 200
    page = response.content.decode()
    assert "Not in Xero as it is in the CRM." in page
    # The plain sentence of the two voices; Xero's own message is for staff, in admin.
    assert "This invoice is in USD, which the Xero organisation has not added" in page
    assert "multi-currency" in page
    for technical in ("Traceback", 'File "', "JobFailed", "Exception", "xero_integration."):
        assert technical not in page, technical

    page = owner_client.get(reverse("crm:invoice_detail", args=[refused["tax1"].pk]))
    text = page.content.decode()
    assert "Not in Xero as it is in the CRM." in text
    assert "Luxury 33%" in text
    assert "Traceback" not in text


def test_the_sync_now_button_pushes_the_invoice_again(
    owner_client, xero_sandbox, connected, refused, luxury
):
    tenant_id, _, _ = connected
    invoice = refused["tax1"]
    detail = reverse("crm:invoice_detail", args=[invoice.pk])
    page = owner_client.get(detail).content.decode()
    assert f'action="{sync_url(invoice)}"' in page
    assert "Sync now" in page

    # Staff map the tax; the user presses "Sync now".
    TaxRateMapping.objects.filter(host_id=str(luxury.pk)).update(
        tax_type="OUTPUT2", set_by_staff=True
    )
    response = owner_client.post(sync_url(invoice), {"next": detail})
    assert response.status_code == 302
    assert response["Location"] == detail
    job = job_of(invoice)
    assert job.state == SyncJob.State.DONE, job.error
    (xero_invoice,) = xero_invoices(xero_sandbox, tenant_id).values()
    assert xero_invoice["InvoiceNumber"] == "LUX-0001"
    assert xero_invoice["Status"] == "AUTHORISED"

    response = owner_client.get(detail)
    page = response.content.decode()
    assert "Sending the invoice to Xero" in page
    assert "In Xero: <strong>Authorised</strong>" in page
    assert "Not in Xero as it is in the CRM" not in page

    # Pressing it again on an unchanged invoice runs the job and writes no second invoice.
    assert owner_client.post(sync_url(invoice), {"next": detail}).status_code == 302
    assert job_of(invoice).state == SyncJob.State.DONE
    assert len(xero_invoices(xero_sandbox, tenant_id)) == 1


def test_sync_now_of_another_accounts_invoice_is_not_found(
    other_account_client, xero_sandbox, connected, refused
):
    tenant_id, _, _ = connected
    invoice = refused["tax1"]
    before = job_of(invoice)
    requests_before = len(xero_sandbox.requests(tenant_id))
    response = other_account_client.post(sync_url(invoice))
    assert response.status_code == 404
    after = job_of(invoice)
    assert (after.state, after.change_seq, after.attempts) == (
        before.state,
        before.change_seq,
        before.attempts,
    )
    assert len(xero_sandbox.requests(tenant_id)) == requests_before
    # Nor can they see the invoice's page.
    detail = reverse("crm:invoice_detail", args=[invoice.pk])
    assert other_account_client.get(detail).status_code == 404
    # An invoice model the adapter does not know is not found either.
    bad = reverse("xero_integration:sync_invoice", args=["auth.user", "1"])
    assert other_account_client.post(bad).status_code == 404


def test_anonymous_users_are_sent_to_sign_in(client, xero_sandbox, connected, refused):
    tenant_id, _, _ = connected
    invoice = refused["tax1"]
    requests_before = len(xero_sandbox.requests(tenant_id))
    login = reverse("account_login")
    response = client.post(sync_url(invoice))
    assert response.status_code == 302
    assert response["Location"].startswith(login)
    response = client.get(reverse("crm:invoice_detail", args=[invoice.pk]))
    assert response.status_code == 302
    assert response["Location"].startswith(login)
    assert job_of(invoice).state == SyncJob.State.FAILED
    assert len(xero_sandbox.requests(tenant_id)) == requests_before
    # Admin is for staff only.
    response = client.get(admin_url("syncjob"))
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


# ---- host ids are the CRM's own ------------------------------------------------------------------


def amount_paid_in_xero(sandbox: Any, tenant_id: str, number: str) -> Decimal:
    return Decimal(str(xero_invoices(sandbox, tenant_id)[number]["AmountPaid"]))


def test_sync_now_with_another_spelling_of_the_invoice_id_syncs_that_invoice_once(
    member_client, xero_sandbox, connected
):
    tenant_id, account, _ = connected
    invoice = make_invoice(account, [{}], number="SPELL-0001")
    pay(invoice, "30.00")
    assert job_of(invoice).state == SyncJob.State.DONE
    assert amount_paid_in_xero(xero_sandbox, tenant_id, "SPELL-0001") == Decimal("30.00")

    for spelling in (f"0{invoice.pk}", f"00{invoice.pk}", f"+{invoice.pk}"):
        url = reverse("xero_integration:sync_invoice", args=["crm.invoice", spelling])
        assert member_client.post(url).status_code == 302, spelling

    # One job and one link, both under the CRM's own id; Xero holds the CRM's payment once.
    assert list(SyncJob.objects.values_list("host_id", flat=True)) == [str(invoice.pk)]
    assert list(InvoiceLink.objects.values_list("host_id", flat=True)) == [str(invoice.pk)]
    assert job_of(invoice).state == SyncJob.State.DONE
    assert amount_paid_in_xero(xero_sandbox, tenant_id, "SPELL-0001") == Decimal("30.00")


@pytest.mark.parametrize("host_id", ["abc", "7.0", "1e3", "%20", "-1"])
def test_sync_now_with_an_id_that_is_no_invoice_is_not_found(owner_client, connected, host_id):
    url = reverse("xero_integration:sync_invoice", args=["crm.invoice", host_id])
    assert owner_client.post(url).status_code == 404
    assert not SyncJob.objects.exists()


def test_admin_sync_now_and_retry_of_a_row_under_another_spelling_use_the_crm_id(
    admin_client, xero_sandbox, connected
):
    tenant_id, account, _ = connected
    invoice = make_invoice(account, [{}], number="SPELL-0002")
    pay(invoice, "30.00")
    # A link and a job recorded under "0<id>" (as an earlier "Sync now" could leave them).
    stray_id = f"0{invoice.pk}"
    stray_link = link_of(invoice)
    stray_link.pk, stray_link.host_id = None, stray_id
    stray_link.save()
    stray_job = job_of(invoice)
    stray_job.pk, stray_job.host_id, stray_job.state = None, stray_id, SyncJob.State.FAILED
    stray_job.save()

    response = run_action(admin_client, "invoicelink", "sync_now", [stray_link])
    assert "1 invoice(s) queued." in messages_of(response)
    response = run_action(admin_client, "syncjob", "retry", [stray_job])
    assert f"invoice {invoice.pk}" in " ".join(messages_of(response))

    stray_job.refresh_from_db()
    assert stray_job.state == SyncJob.State.FAILED  # left for staff to mark resolved
    assert job_of(invoice).state == SyncJob.State.DONE
    assert amount_paid_in_xero(xero_sandbox, tenant_id, "SPELL-0002") == Decimal("30.00")


# ---- who may run the admin actions -------------------------------------------------------------


def offered_actions(client: Any, model: str) -> set[str]:
    response = client.get(admin_url(model))
    assert response.status_code == 200
    form = response.context["action_form"]  # None when no action is allowed
    return {name for name, _ in form.fields["action"].choices if name} if form else set()


@pytest.fixture
def viewer_client(client_factory) -> Any:
    """A staff member who may look at the Xero admin pages, and nothing more."""
    from django.contrib.auth.models import Permission

    from tests.factories import UserFactory

    user = UserFactory(is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="xero_integration", codename__startswith="view_"
        )
    )
    return client_factory(user)


@pytest.fixture
def operator_client(client_factory) -> Any:
    """A staff member in the demo's "Sync operators" group."""
    from crm_demo.crm.management.commands.seed_demo import sync_operators_group
    from tests.factories import UserFactory

    user = UserFactory(is_staff=True)
    user.groups.add(sync_operators_group())
    return client_factory(user)


def test_admin_actions_need_their_own_permissions_not_just_view(
    viewer_client, xero_sandbox, connected, refused
):
    tenant_id, account, connection = connected
    assert offered_actions(viewer_client, "failedsyncjob") == set()
    assert offered_actions(viewer_client, "syncjob") == set()
    assert offered_actions(viewer_client, "invoicelink") == set()
    assert offered_actions(viewer_client, "xeroconnection") == set()

    # Posting an action anyway does nothing.
    job = job_of(refused["usd"])
    before = (job.state, job.attempts, job.key_generation)
    for model, action in [("failedsyncjob", "retry"), ("syncjob", "mark_resolved")]:
        assert run_action(viewer_client, model, action, [job]).status_code == 200
    job.refresh_from_db()
    assert (job.state, job.attempts, job.key_generation) == before
    done = make_invoice(account, [{}], number="VIEW-0001")
    requests_before = len(xero_sandbox.requests(tenant_id))
    run_action(viewer_client, "invoicelink", "sync_now", [link_of(done)])
    run_action(viewer_client, "xeroconnection", "import_contact_changes", [connection])
    assert len(xero_sandbox.requests(tenant_id)) == requests_before
    assert not connection.contact_imports.exists()


def test_the_sync_operators_group_runs_the_actions_but_cannot_disconnect(
    operator_client, xero_sandbox, connected, refused
):
    _, _, connection = connected
    assert offered_actions(operator_client, "failedsyncjob") == {
        "retry",
        "mark_resolved",
        "link_to_existing_invoice",
        "send_as_new_invoice",
    }
    assert offered_actions(operator_client, "invoicelink") == {"sync_now"}
    assert offered_actions(operator_client, "xeroconnection") == {"import_contact_changes"}

    response = run_action(operator_client, "failedsyncjob", "retry", [job_of(refused["usd"])])
    assert "1 job(s) queued to run again." in messages_of(response)
    response = run_action(
        operator_client, "failedsyncjob", "mark_resolved", [job_of(refused["tax1"])]
    )
    assert "1 job(s) marked resolved." in messages_of(response)
    assert job_of(refused["tax1"]).state == SyncJob.State.RESOLVED
    run_action(operator_client, "xeroconnection", "import_contact_changes", [connection])
    assert connection.contact_imports.exists()
    connection.refresh_from_db()
    assert connection.is_connected


# ---- the sync log stays; connections end through Disconnect -----------------------------------


def test_the_sync_log_outlives_its_connection(connected, refused):
    _, account, connection = connected
    logged = SyncLog.objects.filter(connection=connection).count()
    assert logged
    XeroConnection.objects.filter(pk=connection.pk).delete()
    kept = SyncLog.objects.filter(account_key=str(account.pk), connection=None)
    assert kept.count() >= logged


def test_admin_cannot_delete_the_sync_log_or_a_connection(admin_client, connected, refused):
    _, _, connection = connected
    entry = SyncLog.objects.filter(connection=connection).first()
    assert admin_client.get(admin_url("synclog", "delete", entry.pk)).status_code == 403
    assert "delete_selected" not in offered_actions(admin_client, "synclog")
    assert (
        admin_client.post(admin_url("synclog", "delete", entry.pk), {"post": "yes"}).status_code
        == 403
    )
    assert SyncLog.objects.filter(pk=entry.pk).exists()

    assert admin_client.get(admin_url("xeroconnection", "delete", connection.pk)).status_code == 403
    assert "delete_selected" not in offered_actions(admin_client, "xeroconnection")
    assert XeroConnection.objects.filter(pk=connection.pk).exists()


def test_admin_disconnect_lets_go_in_xero_and_keeps_the_history(
    admin_client, xero_sandbox, connected, refused
):
    tenant_id, _, connection = connected
    assert "disconnect" in offered_actions(admin_client, "xeroconnection")
    response = run_action(admin_client, "xeroconnection", "disconnect", [connection])
    assert "1 connection(s) disconnected" in " ".join(messages_of(response))

    connection.refresh_from_db()
    assert connection.status == "disconnected"
    assert (connection.access_token, connection.refresh_token) == ("", "")
    deletes = [
        r
        for r in xero_sandbox.requests()
        if r["method"] == "DELETE" and r["path"] == f"/connections/{connection.connection_id}"
    ]
    assert [r["status"] for r in deletes] == [204]
    actions = set(SyncLog.objects.filter(connection=connection).values_list("action", flat=True))
    assert {"disconnect_requested", "disconnect"} <= actions
    assert SyncLog.objects.filter(host_id=str(refused["usd"].pk)).exists()


# ---- list pages stay light ---------------------------------------------------------------------


def changelist_queries(admin_client, model: str, params: dict | None = None) -> int:
    from django.db import connection as db_connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(db_connection) as queries:
        response = admin_client.get(admin_url(model), params or {})
    assert response.status_code == 200
    return len(queries)


def test_list_pages_make_as_many_queries_for_many_rows_as_for_a_few(admin_client, connected):
    from tests.factories import AccountFactory
    from xero_integration.models import ContactLink

    _, account, connection = connected
    accounts = [account, *[AccountFactory() for _ in range(2)]]

    def rows(count: int, start: int) -> None:
        for n in range(start, start + count):
            key = str(accounts[n % len(accounts)].pk)
            SyncJob.objects.create(account_key=key, host_model="crm.invoice", host_id=str(n))
            InvoiceLink.objects.create(
                account_key=key,
                tenant_id=connection.tenant_id,
                host_model="crm.invoice",
                host_id=str(n),
                xero_invoice_id=f"id-{n}",
            )
            ContactLink.objects.create(
                account_key=key,
                tenant_id=connection.tenant_id,
                host_model="crm.contact",
                host_id=str(n),
                xero_contact_id=f"c-{n}",
            )

    rows(5, 0)
    few = {
        m: changelist_queries(admin_client, m) for m in ("syncjob", "invoicelink", "contactlink")
    }
    rows(60, 5)
    many = {
        m: changelist_queries(admin_client, m) for m in ("syncjob", "invoicelink", "contactlink")
    }
    assert many == few
    assert max(many.values()) <= 12, many


def test_the_sync_log_filters_actions_by_kind_not_by_url(admin_client, connected):
    _, account, connection = connected
    SyncLog.objects.bulk_create(
        [
            SyncLog(
                account_key=str(account.pk),
                action=f"POST {API}/Invoices/{n:08d}-0000-0000-0000-000000000000",
                http_status=200,
            )
            for n in range(300)
        ]
        + [SyncLog(account_key=str(account.pk), action="invoice_sync")]
    )
    page = admin_client.get(admin_url("synclog")).content.decode()
    assert page.count("-0000-0000-0000-") <= 100  # the rows shown, not one filter entry each
    assert "Calls: Invoices" in page
    calls = listed(admin_client.get(admin_url("synclog"), {"kind": "call:Invoices"}))
    assert len(calls) == 100 and all("/Invoices/" in row.action for row in calls)
    (event,) = listed(admin_client.get(admin_url("synclog"), {"kind": "event:invoice_sync"}))
    assert event.action == "invoice_sync"


def test_list_pages_make_as_many_queries_for_many_accounts_as_for_a_few(admin_client, connected):
    from tests.factories import AccountFactory
    from xero_integration.models import ContactLink

    _, _, connection = connected

    def rows_for_new_accounts(count: int, start: int) -> None:
        for n in range(start, start + count):
            key = str(AccountFactory().pk)
            XeroConnection.objects.create(
                account_key=key, status=ConnectionStatus.CONNECTED, tenant_id=f"t-{n}"
            )
            SyncJob.objects.create(account_key=key, host_model="crm.invoice", host_id=str(n))
            InvoiceLink.objects.create(
                account_key=key,
                tenant_id=f"t-{n}",
                host_model="crm.invoice",
                host_id=str(n),
                xero_invoice_id=f"id-{n}",
            )
            ContactLink.objects.create(
                account_key=key,
                tenant_id=f"t-{n}",
                host_model="crm.contact",
                host_id=str(n),
                xero_contact_id=f"c-{n}",
            )

    models = ("syncjob", "invoicelink", "contactlink", "xeroconnection")
    rows_for_new_accounts(2, 0)
    few = {m: changelist_queries(admin_client, m) for m in models}
    rows_for_new_accounts(30, 2)
    many = {m: changelist_queries(admin_client, m) for m in models}
    assert many == few
    assert max(many.values()) <= 10, many
