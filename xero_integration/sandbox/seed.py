"""What a new sandbox organisation comes with: a realistic chart of accounts, the tax rates of
its country, currencies, and optionally many ACTIVE contacts."""

from __future__ import annotations

import random
import uuid
from decimal import Decimal

CURRENCY_NAMES = {
    "AUD": "Australian Dollar",
    "CAD": "Canadian Dollar",
    "CHF": "Swiss Franc",
    "CNY": "Chinese Yuan",
    "EUR": "Euro",
    "GBP": "British Pound",
    "HKD": "Hong Kong Dollar",
    "INR": "Indian Rupee",
    "JPY": "Japanese Yen",
    "NZD": "New Zealand Dollar",
    "SGD": "Singapore Dollar",
    "USD": "United States Dollar",
    "ZAR": "South African Rand",
}

# Countries whose organisations must give new tax rates a ReportTaxType (Xero's API documentation).
REPORT_TAX_TYPE_REQUIRED = {"AU", "NZ", "GB", "UK"}
REPORT_TAX_TYPE_REFUSED = {"US"}

VERSION_BY_COUNTRY = {"AU": "AU", "NZ": "NZ", "GB": "UK", "UK": "UK", "US": "US"}


def _rate(name, tax_type, rate, report=None, revenue=True, expenses=False, status="ACTIVE"):
    rate = Decimal(str(rate))
    return {
        "Name": name,
        "TaxType": tax_type,
        "ReportTaxType": report,
        "CanApplyToAssets": expenses,
        "CanApplyToEquity": expenses,
        "CanApplyToExpenses": expenses,
        "CanApplyToLiabilities": expenses,
        "CanApplyToRevenue": revenue,
        "DisplayTaxRate": rate,
        "EffectiveRate": rate,
        "Status": status,
        "TaxComponents": [
            {"Name": name, "Rate": rate, "IsCompound": False, "IsNonRecoverable": False}
        ],
    }


def tax_rates_for(country: str) -> list[dict]:
    country = country.upper()
    if country == "NZ":
        return [
            _rate("15% GST on Income", "OUTPUT2", "15.0000", "OUTPUT"),
            _rate(
                "15% GST on Expenses", "INPUT2", "15.0000", "INPUT", revenue=False, expenses=True
            ),
            _rate("Zero Rated", "ZERORATED", "0.0000", "EXEMPTOUTPUT", expenses=True),
            _rate("No GST", "NONE", "0.0000", "NONE", expenses=True),
            _rate("Old 12.5% GST", "OUTPUT", "12.5000", "OUTPUT", status="ARCHIVED"),
        ]
    if country == "AU":
        return [
            _rate("GST on Income", "OUTPUT", "10.0000", "OUTPUT"),
            _rate("GST on Expenses", "INPUT", "10.0000", "INPUT", revenue=False, expenses=True),
            _rate("GST Free Income", "EXEMPTOUTPUT", "0.0000", "EXEMPTOUTPUT"),
            _rate("BAS Excluded", "BASEXCLUDED", "0.0000", "BASEXCLUDED", expenses=True),
        ]
    if country in ("GB", "UK"):
        return [
            _rate("20% (VAT on Income)", "OUTPUT2", "20.0000", "OUTPUT"),
            _rate(
                "20% (VAT on Expenses)", "INPUT2", "20.0000", "INPUT", revenue=False, expenses=True
            ),
            _rate("5% (VAT on Income)", "RROUTPUT", "5.0000", "OUTPUT"),
            _rate("Zero Rated Income", "ZERORATEDOUTPUT", "0.0000", "ZERORATEDOUTPUT"),
            _rate("No VAT", "NONE", "0.0000", "NONE", expenses=True),
        ]
    if country == "US":
        return [
            _rate("Tax Exempt", "NONE", "0.0000", None, expenses=True),
            _rate("Tax on Sales", "OUTPUT", "0.0000", None),
            _rate("Tax on Purchases", "INPUT", "0.0000", None, revenue=False, expenses=True),
        ]
    return [
        _rate("Tax on Sales", "OUTPUT", "0.0000", None),
        _rate("Tax on Purchases", "INPUT", "0.0000", None, revenue=False, expenses=True),
        _rate("Tax Exempt", "NONE", "0.0000", None, expenses=True),
    ]


def default_sales_tax(country: str) -> str:
    return {"NZ": "OUTPUT2", "AU": "OUTPUT", "GB": "OUTPUT2", "UK": "OUTPUT2"}.get(
        country.upper(), "NONE" if country.upper() == "US" else "OUTPUT"
    )


def _account(code, name, type_, class_, **extra):
    account = {
        "AccountID": str(uuid.uuid4()),
        "Code": code,
        "Name": name,
        "Type": type_,
        "Class": class_,
        "Status": "ACTIVE",
        "EnablePaymentsToAccount": False,
        "ShowInExpenseClaims": False,
        "BankAccountType": "",
        "ReportingCode": "",
        "HasAttachments": False,
        "AddToWatchlist": False,
    }
    account.update(extra)
    if account["Code"] is None:
        del account["Code"]
    return account


def chart_of_accounts(country: str, currency: str) -> list[dict]:
    sales_tax = default_sales_tax(country)
    return [
        _account(
            "090",
            "Business Bank Account",
            "BANK",
            "ASSET",
            BankAccountType="BANK",
            BankAccountNumber="12-3456-7890123-00",
            CurrencyCode=currency,
            TaxType="NONE",
        ),
        _account(
            None,
            "Business Savings Account",
            "BANK",
            "ASSET",
            BankAccountType="BANK",
            BankAccountNumber="12-3456-7890123-01",
            CurrencyCode=currency,
            TaxType="NONE",
        ),
        _account("200", "Sales", "REVENUE", "REVENUE", TaxType=sales_tax),
        _account("260", "Other Revenue", "REVENUE", "REVENUE", TaxType=sales_tax),
        _account("270", "Interest Income", "OTHERINCOME", "REVENUE", TaxType="NONE"),
        _account(
            "280",
            "Old Consulting Income",
            "REVENUE",
            "REVENUE",
            TaxType=sales_tax,
            Status="ARCHIVED",
        ),
        _account(
            "610",
            "Accounts Receivable",
            "CURRENT",
            "ASSET",
            SystemAccount="DEBTORS",
            TaxType="NONE",
        ),
        _account(
            "615",
            "Undeposited Funds",
            "CURRENT",
            "ASSET",
            TaxType="NONE",
            EnablePaymentsToAccount=True,
        ),
        _account(
            "620",
            "Old Clearing Account",
            "CURRENT",
            "ASSET",
            TaxType="NONE",
            EnablePaymentsToAccount=True,
            Status="ARCHIVED",
        ),
        _account(
            "800",
            "Accounts Payable",
            "CURRLIAB",
            "LIABILITY",
            SystemAccount="CREDITORS",
            TaxType="NONE",
        ),
        _account("820", "Sales Tax", "CURRLIAB", "LIABILITY", SystemAccount="GST", TaxType="NONE"),
        _account("429", "General Expenses", "EXPENSE", "EXPENSE", TaxType="NONE"),
        _account(
            "860", "Rounding", "CURRLIAB", "LIABILITY", SystemAccount="ROUNDING", TaxType="NONE"
        ),
        _account("970", "Owner A Funds Introduced", "EQUITY", "EQUITY", TaxType="NONE"),
    ]


_FIRST = [
    "Olivia",
    "Liam",
    "Aroha",
    "Noah",
    "Mere",
    "Jack",
    "Isla",
    "Wiremu",
    "Sofia",
    "Lucas",
    "Chloé",
    "Zoë",
    "Mateo",
    "Priya",
    "Hiro",
    "Yuki",
    "Ana",
    "Tane",
    "Emma",
    "Leo",
]
_LAST = [
    "Smith",
    "Ngata",
    "Williams",
    "Brown",
    "Wilson",
    "Taylor",
    "Nguyen",
    "Patel",
    "Singh",
    "García",
    "Müller",
    "O'Brien",
    "Tanaka",
    "Kowalski",
    "Anderson",
    "Thomas",
    "Walker",
]
_COMPANY = [
    "Ridgeway",
    "Harbour",
    "Kauri",
    "Summit",
    "Tui",
    "Pohutukawa",
    "Bayside",
    "Atlas",
    "Northwind",
    "Silver Fern",
    "Redwood",
    "Coastal",
    "Totara",
    "Meridian",
]
_KIND = [
    "Plumbing",
    "Bakery",
    "Design",
    "Builders",
    "Consulting",
    "Cafe",
    "Motors",
    "Gardens",
    "Electrical",
    "Studio",
    "Logistics",
    "Dental",
]
_CITIES = [
    ("Auckland", "1010"),
    ("Wellington", "6011"),
    ("Christchurch", "8011"),
    ("Sydney", "2000"),
    ("Melbourne", "3000"),
    ("London", "EC1A 1BB"),
]
_JAPANESE = ["株式会社さくら", "山田商店", "東京デザイン事務所", "大阪テクノロジー"]


def generate_contacts(count: int, seed: str, now) -> list[dict]:
    """``count`` ACTIVE contacts with unique names and Xero's real variety: missing emails, an
    email shared by two contacts, non-Latin and very long names, addresses and phones."""
    rng = random.Random(seed)
    contacts = []
    for index in range(count):
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        variant = index % 10
        if variant == 7 and index < 2000:
            name = f"{_JAPANESE[index % len(_JAPANESE)]} {index + 1}"
        elif variant in (1, 4):
            name = f"{first} {last} {index + 1}"
        else:
            name = f"{rng.choice(_COMPANY)} {rng.choice(_KIND)} {index + 1}"
        if index == 13:
            name = "The Extraordinarily Long Named Cooperative of Independent Artisans, " * 3
            name = name.strip()[:240] + f" {index + 1}"
        if variant == 3:
            email = ""
        elif variant == 6 and index > 0:
            email = f"accounts{index - 1}@example.com"  # shared with the previous contact
        else:
            email = f"accounts{index}@example.com"
        city, postcode = rng.choice(_CITIES)
        contact = {
            "ContactID": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "ContactStatus": "ACTIVE",
            "Name": name,
            "FirstName": first,
            "LastName": last,
            "EmailAddress": email,
            "BankAccountDetails": "",
            "Addresses": [
                {
                    "AddressType": "POBOX",
                    "AddressLine1": f"PO Box {100 + index}",
                    "City": city,
                    "Region": "",
                    "PostalCode": postcode,
                    "Country": "",
                    "AttentionTo": "",
                },
                {
                    "AddressType": "STREET",
                    "AddressLine1": f"{index % 300 + 1} Queen Street",
                    "City": city,
                    "Region": "",
                    "PostalCode": postcode,
                    "Country": "",
                },
            ],
            "Phones": [
                {
                    "PhoneType": "DEFAULT",
                    "PhoneNumber": f"{5550000 + index}",
                    "PhoneAreaCode": "9",
                    "PhoneCountryCode": "64",
                },
                {
                    "PhoneType": "MOBILE",
                    "PhoneNumber": "" if variant == 2 else f"21{index:07d}",
                    "PhoneAreaCode": "",
                    "PhoneCountryCode": "",
                },
                {
                    "PhoneType": "FAX",
                    "PhoneNumber": "",
                    "PhoneAreaCode": "",
                    "PhoneCountryCode": "",
                },
            ],
            "UpdatedDateUTC": now,
            "ContactGroups": [],
            "IsSupplier": False,
            "IsCustomer": False,
            "ContactPersons": [],
            "HasAttachments": False,
            "HasValidationErrors": False,
        }
        contacts.append(contact)
    return contacts
