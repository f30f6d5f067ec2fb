"""factory-boy factories for every model of the demo CRM."""

from __future__ import annotations

import datetime
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model

from crm_demo.crm.models import (
    Account,
    Contact,
    Invoice,
    InvoiceLine,
    Membership,
    Payment,
    Tax,
    TaxComponent,
)

PASSWORD = "correct-horse-battery-staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    username = factory.SelfAttribute("email")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def save_password(self, create: bool, extracted: object, **kwargs: object) -> None:
        if create:
            self.save()


class AccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Account

    name = factory.Sequence(lambda n: f"Account {n}")
    base_currency = "NZD"


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    account = factory.SubFactory(AccountFactory)
    role = Membership.Role.OWNER


class ContactFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Contact

    account = factory.SubFactory(AccountFactory)
    name = factory.Sequence(lambda n: f"Customer {n} Ltd")
    email = factory.Sequence(lambda n: f"customer{n}@example.com")


class TaxFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tax

    account = factory.SubFactory(AccountFactory)
    name = factory.Sequence(lambda n: f"Tax {n}")


class TaxComponentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TaxComponent

    tax = factory.SubFactory(TaxFactory)
    name = "GST"
    rate = Decimal("15")
    compound = False


class InvoiceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Invoice

    account = factory.SubFactory(AccountFactory)
    contact = factory.SubFactory(ContactFactory, account=factory.SelfAttribute("..account"))
    number = factory.Sequence(lambda n: f"INV-{n:05d}")
    currency = "NZD"
    issue_date = datetime.date(2026, 11, 1)
    due_date = datetime.date(2026, 11, 21)


class InvoiceLineFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = InvoiceLine

    invoice = factory.SubFactory(InvoiceFactory)
    item_name = "Consulting"
    description = "Hours"
    quantity = Decimal("1")
    unit_price = Decimal("100")


class PaymentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Payment

    invoice = factory.SubFactory(InvoiceFactory)
    amount = Decimal("10.00")
    date = datetime.date(2026, 11, 10)


def tax_with(account: Account, name: str, *components: tuple[str, str, bool]) -> Tax:
    """A tax of ``account`` made of (name, rate, compound) components."""
    tax = TaxFactory(account=account, name=name)
    for position, (component, rate, compound) in enumerate(components):
        TaxComponentFactory(
            tax=tax, name=component, rate=Decimal(rate), compound=compound, position=position
        )
    return tax
