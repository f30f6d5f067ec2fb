"""Pages need sign-in, and a user never sees another account's data."""

import pytest
from django.urls import reverse

from tests.factories import ContactFactory, InvoiceFactory, MembershipFactory, PaymentFactory

pytestmark = pytest.mark.django_db

PAGES = ["crm:home", "crm:contact_list", "crm:invoice_list", "crm:integrations"]


@pytest.mark.parametrize("name", PAGES)
def test_pages_require_sign_in(client, name):
    response = client.get(reverse(name))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))


@pytest.mark.parametrize("name", PAGES)
def test_pages_render_for_a_member(owner_client, name):
    assert owner_client.get(reverse(name)).status_code == 200


def test_another_accounts_objects_are_404(owner_client):
    theirs = InvoiceFactory()
    payment = PaymentFactory(invoice=theirs)
    contact = theirs.contact
    for method, url in [
        ("get", reverse("crm:contact_detail", args=[contact.pk])),
        ("get", reverse("crm:contact_edit", args=[contact.pk])),
        ("post", reverse("crm:contact_edit", args=[contact.pk])),
        ("get", reverse("crm:invoice_detail", args=[theirs.pk])),
        ("get", reverse("crm:invoice_edit", args=[theirs.pk])),
        ("post", reverse("crm:invoice_send", args=[theirs.pk])),
        ("post", reverse("crm:invoice_void", args=[theirs.pk])),
        ("post", reverse("crm:payment_create", args=[theirs.pk])),
        ("post", reverse("crm:payment_delete", args=[theirs.pk, payment.pk])),
    ]:
        assert getattr(owner_client, method)(url).status_code == 404, url
    theirs.refresh_from_db()
    assert theirs.status == "draft" and theirs.payments.count() == 1


def test_lists_show_only_the_accounts_own_rows(owner_client, owner):
    mine = ContactFactory(account=owner.account, name="Mine Ltd")
    ContactFactory(name="Theirs Ltd")
    InvoiceFactory(account=owner.account, contact=mine, number="MINE-1")
    InvoiceFactory(number="THEIRS-1")
    contacts = owner_client.get(reverse("crm:contact_list")).content.decode()
    invoices = owner_client.get(reverse("crm:invoice_list")).content.decode()
    assert "Mine Ltd" in contacts and "Theirs Ltd" not in contacts
    assert "MINE-1" in invoices and "THEIRS-1" not in invoices


def test_a_user_without_an_account_gets_a_clear_404(client):
    from tests.factories import UserFactory

    client.force_login(UserFactory())
    response = client.get(reverse("crm:home"))
    assert response.status_code == 404


def test_the_integrations_page_shows_the_xero_tile(owner_client):
    page = owner_client.get(reverse("crm:integrations")).content.decode()
    assert "Xero" in page and "Connect" in page


def test_a_plain_member_sees_the_tile_without_connect(client, owner):
    member = MembershipFactory(account=owner.account, role="member")
    client.force_login(member.user)
    page = client.get(reverse("crm:integrations")).content.decode()
    assert "Xero" in page and ">Connect<" not in page


def test_contact_form_rejects_a_bad_email(owner_client):
    response = owner_client.post(reverse("crm:contact_create"), {"name": "X", "email": "nope"})
    assert "email" in response.context["form"].errors


def test_sign_in_with_email_and_password(client, owner_credentials):
    email, password = owner_credentials
    response = client.post(reverse("account_login"), {"login": email, "password": password})
    assert response.status_code == 302
    assert client.get(reverse("crm:home")).status_code == 200
