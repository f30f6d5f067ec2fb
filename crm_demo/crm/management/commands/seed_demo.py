"""`manage.py seed_demo`: the demo account, its user, contacts, taxes and invoices (idempotent)."""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

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
from crm_demo.demo import DEMO_EMAIL, DEMO_PASSWORD

ACCOUNT_NAME = "Demo Company"

CONTACTS = [
    {
        "name": "Harbour Bikes Ltd",
        "first_name": "Ana",
        "last_name": "Kahu",
        "email": "ana@harbourbikes.example",
        "phone": "+64 9 555 0101",
        "company": "Harbour Bikes Ltd",
        "address_line1": "12 Quay Street",
        "city": "Auckland",
        "postal_code": "1010",
        "country": "New Zealand",
    },
    {
        "name": "Kowhai Cafe",
        "first_name": "Sam",
        "last_name": "Tane",
        "email": "sam@kowhai.example",
        "phone": "+64 4 555 0102",
        "city": "Wellington",
        "country": "New Zealand",
    },
    {
        "name": "Maple Leaf Outfitters",
        "first_name": "Claire",
        "last_name": "Tremblay",
        "email": "claire@mapleleaf.example",
        "city": "Montréal",
        "region": "QC",
        "country": "Canada",
    },
    {
        "name": "Pacific Freight Co",
        "email": "accounts@pacificfreight.example",
        "phone": "+1 415 555 0103",
        "city": "San Francisco",
        "region": "CA",
        "country": "USA",
    },
    {
        "name": "Rhein Software GmbH",
        "first_name": "Jonas",
        "last_name": "Weber",
        "email": "jonas@rhein.example",
        "city": "Köln",
        "country": "Germany",
    },
    {
        "name": "山田商事株式会社",
        "first_name": "太郎",
        "last_name": "山田",
        "email": "taro@yamada.example",
        "city": "東京",
        "country": "Japan",
    },
    {
        "name": "Southern Cross Plumbing",
        "first_name": "Mere",
        "last_name": "Walker",
        "phone": "+64 3 555 0104",
        "city": "Christchurch",
        "country": "New Zealand",
    },
    {
        "name": "Tui Design Studio",
        "first_name": "Liam",
        "last_name": "Ngata",
        "email": "liam@tuidesign.example",
        "city": "Napier",
        "country": "New Zealand",
    },
    {
        "name": "Aroha Health",
        "email": "billing@arohahealth.example",
        "city": "Hamilton",
        "country": "New Zealand",
    },
    {
        "name": "Blue Penguin Tours",
        "first_name": "Grace",
        "last_name": "Lee",
        "email": "grace@bluepenguin.example",
        "city": "Oamaru",
        "country": "New Zealand",
    },
    {
        "name": "Ōtautahi Print House",
        "email": "print@otautahi.example",
        "city": "Christchurch",
        "country": "New Zealand",
    },
    {
        "name": "Quebec Maple Supplies",
        "first_name": "Luc",
        "last_name": "Gagnon",
        "email": "luc@qcmaple.example",
        "city": "Québec",
        "region": "QC",
        "country": "Canada",
    },
]

TAXES = {
    "GST 15%": [("GST", "15", False)],
    "GST 5% + PST 7%": [("GST", "5", False), ("PST", "7", False)],
    "GST 5% + QST 9.975% (compound)": [("GST", "5", False), ("QST", "9.975", True)],
    "No tax": [("No tax", "0", False)],
}

# number, contact, currency, days ago, tax-inclusive, status, lines, payments
INVOICES: list[dict[str, Any]] = [
    {
        "number": "INV-1001",
        "contact": "Harbour Bikes Ltd",
        "currency": "NZD",
        "days_ago": 40,
        "status": "paid",
        "lines": [
            ("Bike service", "Full service, two bikes", "2", "149.50", None, None, "GST 15%")
        ],
        "payments": ["343.85"],
    },
    {
        "number": "INV-1002",
        "contact": "Kowhai Cafe",
        "currency": "NZD",
        "days_ago": 21,
        "status": "partially_paid",
        "lines": [
            ("Espresso machine lease", "Monthly lease", "1", "420.00", None, None, "GST 15%"),
            ("Barista training", "Half-day session", "3", "95.00", "10", None, "GST 15%"),
        ],
        "payments": ["200.00"],
    },
    {
        "number": "INV-1003",
        "contact": "Maple Leaf Outfitters",
        "currency": "CAD",
        "days_ago": 14,
        "status": "sent",
        "lines": [
            (
                "Canoe rental",
                "Weekend rental",
                "4",
                "85.00",
                None,
                None,
                "GST 5% + QST 9.975% (compound)",
            ),
            (
                "Guide",
                "Licensed guide, two days",
                "2",
                "250.00",
                None,
                "20.00",
                "GST 5% + QST 9.975% (compound)",
            ),
        ],
    },
    {
        "number": "INV-1004",
        "contact": "Quebec Maple Supplies",
        "currency": "CAD",
        "days_ago": 10,
        "status": "sent",
        "lines": [
            ("Maple syrup, 1 L", "Grade A amber", "24", "18.7500", None, None, "GST 5% + PST 7%")
        ],
    },
    {
        "number": "INV-1005",
        "contact": "Pacific Freight Co",
        "currency": "USD",
        "days_ago": 7,
        "status": "draft",
        "lines": [("Consulting", "Logistics review", "12.5", "160.00", None, None, "No tax")],
    },
    {
        "number": "INV-1006",
        "contact": "Rhein Software GmbH",
        "currency": "EUR",
        "days_ago": 5,
        "status": "sent",
        "tax_inclusive": True,
        "lines": [("Licence", "Annual licence, 10 seats", "10", "119.00", "5", None, "GST 15%")],
    },
    {
        "number": "INV-1007",
        "contact": "山田商事株式会社",
        "currency": "JPY",
        "days_ago": 3,
        "status": "draft",
        "lines": [("Translation", "技術文書の翻訳", "1", "85000", None, None, "No tax")],
    },
    {
        "number": "INV-1008",
        "contact": "Tui Design Studio",
        "currency": "NZD",
        "days_ago": 30,
        "status": "void",
        "lines": [("Logo design", "Cancelled project", "1", "900.00", None, None, "GST 15%")],
    },
]

SEED_DATE = datetime.date(2026, 11, 1)

SYNC_OPERATORS = "Sync operators"
#: What the "Sync operators" group may do in admin: review syncs and the log, map taxes, and
#: run Retry, Mark resolved, Sync now and Import contact changes (not disconnect).
SYNC_OPERATOR_PERMISSIONS = [
    "view_syncjob",
    "view_failedsyncjob",
    "retry_syncjob",
    "resolve_syncjob",
    "view_invoicelink",
    "sync_invoicelink",
    "view_synclog",
    "view_xeroconnection",
    "import_contacts_xeroconnection",
    "view_contactlink",
    "view_taxratemapping",
    "change_taxratemapping",
]
OPERATOR_EMAIL = "operator@example.com"


def sync_operators_group() -> Group:
    """The "Sync operators" group with its permissions (created or brought up to date)."""
    group, _ = Group.objects.get_or_create(name=SYNC_OPERATORS)
    permissions = Permission.objects.filter(
        content_type__app_label="xero_integration", codename__in=SYNC_OPERATOR_PERMISSIONS
    )
    missing = set(SYNC_OPERATOR_PERMISSIONS) - {p.codename for p in permissions}
    if missing:
        raise CommandError(f"Run migrate first: permissions missing: {', '.join(sorted(missing))}")
    group.permissions.set(permissions)
    return group


class Command(BaseCommand):
    help = "Create or refresh the demo account, user, contacts, taxes and invoices."

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        user_model = get_user_model()
        user, _ = user_model.objects.get_or_create(
            username=DEMO_EMAIL, defaults={"email": DEMO_EMAIL}
        )
        user.email = DEMO_EMAIL
        user.is_staff = True
        user.is_superuser = True
        user.set_password(DEMO_PASSWORD)
        user.save()
        self._verified_email(user)
        account, _ = Account.objects.update_or_create(
            name=ACCOUNT_NAME, defaults={"base_currency": "NZD"}
        )
        Membership.objects.update_or_create(
            user=user, account=account, defaults={"role": Membership.Role.OWNER}
        )
        contacts = {}
        for values in CONTACTS:
            contact, _ = Contact.objects.update_or_create(
                account=account, name=values["name"], defaults=values
            )
            contacts[contact.name] = contact
        taxes = {}
        for name, components in TAXES.items():
            tax, created = Tax.objects.get_or_create(account=account, name=name)
            taxes[name] = tax
            if not created:
                continue
            for position, (component, rate, compound) in enumerate(components):
                TaxComponent.objects.create(
                    tax=tax,
                    name=component,
                    rate=Decimal(rate),
                    compound=compound,
                    position=position,
                )
        for spec in INVOICES:
            self._invoice(account, contacts, taxes, spec)
        # Staff who review syncs in admin without being superusers.
        operator, _ = user_model.objects.get_or_create(
            username=OPERATOR_EMAIL, defaults={"email": OPERATOR_EMAIL}
        )
        operator.is_staff = True
        operator.set_password(DEMO_PASSWORD)
        operator.save()
        operator.groups.add(sync_operators_group())
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo data ready: account “{ACCOUNT_NAME}”, {len(CONTACTS)} contacts, "
                f"{len(TAXES)} taxes, {len(INVOICES)} invoices.\n"
                f"Sign in as {DEMO_EMAIL} with password {DEMO_PASSWORD}; admin as "
                f"{OPERATOR_EMAIL} (group “{SYNC_OPERATORS}”) with the same password"
            )
        )

    def _verified_email(self, user: Any) -> None:
        from allauth.account.models import EmailAddress

        EmailAddress.objects.update_or_create(
            user=user, email=DEMO_EMAIL, defaults={"verified": True, "primary": True}
        )

    def _invoice(self, account: Account, contacts: dict, taxes: dict, spec: dict[str, Any]) -> None:
        issue_date = SEED_DATE - datetime.timedelta(days=spec["days_ago"])
        # Existing demo invoices are left as they are: their lines and payments may already be in
        # Xero, and the demo user may have changed them.
        invoice, created = Invoice.objects.get_or_create(
            account=account,
            number=spec["number"],
            defaults={
                "contact": contacts[spec["contact"]],
                "currency": spec["currency"],
                "issue_date": issue_date,
                "due_date": issue_date + datetime.timedelta(days=20),
                "tax_inclusive": spec.get("tax_inclusive", False),
                "status": "draft",
                "reference": f"Demo {spec['number']}",
            },
        )
        if not created:
            return
        for position, (item, description, qty, price, pct, amount, tax) in enumerate(spec["lines"]):
            InvoiceLine.objects.create(
                invoice=invoice,
                position=position,
                item_name=item,
                description=description,
                quantity=Decimal(qty),
                unit_price=Decimal(price),
                discount_percent=Decimal(pct) if pct else None,
                discount_amount=Decimal(amount) if amount else None,
                tax=taxes[tax],
            )
        status = spec["status"]
        invoice.status = "sent" if status in ("sent", "partially_paid", "paid") else status
        invoice.recalculate()
        for amount in spec.get("payments", []):
            Payment.objects.create(
                invoice=invoice,
                amount=min(Decimal(amount), invoice.amount_due),
                date=issue_date + datetime.timedelta(days=7),
                reference="Bank transfer",
            )
            invoice.recalculate()
