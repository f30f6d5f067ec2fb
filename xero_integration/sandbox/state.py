"""The sandbox's state: registered apps, consents and tokens, and organisations with their
Xero records. Records are kept as dicts in Xero's shapes with Decimal amounts and date values."""

from __future__ import annotations

import secrets
import string
import threading
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from . import seed

AUTH_CODE_LIFETIME = timedelta(seconds=30)
ACCESS_TOKEN_LIFETIME = timedelta(minutes=30)
REFRESH_TOKEN_IDLE_LIFETIME = timedelta(days=60)
REFRESH_GRACE_PERIOD = timedelta(minutes=30)
IDEMPOTENCY_WINDOW = timedelta(minutes=6)

SANDBOX_USER_ID = "6f2e4a4e-0d0b-4c8e-9f59-2d7c8f3b0a11"
SANDBOX_USER_EMAIL = "demo.user@sandbox.invalid"


@dataclass
class App:
    client_id: str
    client_secret: str | None
    redirect_uris: list[str]
    name: str
    legacy_scopes: bool = False

    @property
    def is_pkce(self) -> bool:
        return not self.client_secret


@dataclass
class Connection:
    id: str
    tenant_id: str
    client_id: str
    auth_event_id: str
    created: datetime
    updated: datetime


@dataclass
class TokenFamily:
    """One consent's chain of tokens: the refresh tokens rotate, the scope stays."""

    id: str
    client_id: str
    scope: list[str]
    auth_event_id: str
    revoked: bool = False


@dataclass
class AccessToken:
    family_id: str
    expires_at: datetime
    auth_event_id: str


@dataclass
class RefreshToken:
    family_id: str
    issued_at: datetime
    rotated_at: datetime | None = None


@dataclass
class AuthCode:
    client_id: str
    redirect_uri: str
    scope: list[str]
    tenant_ids: list[str]
    code_challenge: str | None
    issued_at: datetime
    auth_event_id: str
    nonce: str | None = None
    used: bool = False


@dataclass
class Fault:
    method: str
    path: str
    kind: str
    remaining: int | None
    probability: float | None
    hold_seconds: float = 30.0
    retry_after: int = 1


@dataclass
class RateWindow:
    """Calls of one app to one organisation: rolling minute, daily count, in flight."""

    minute: deque = field(default_factory=deque)
    day_count: int = 0
    day_start: datetime | None = None
    in_flight: int = 0


def short_code() -> str:
    return "!" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(5))


class Organisation:
    """One Xero organisation (tenant) and everything in it."""

    def __init__(
        self,
        *,
        name: str,
        country_code: str,
        base_currency: str,
        multicurrency: bool,
        now: datetime,
        daily_limit: int | None = None,
        period_lock_date: date | None = None,
        contacts: int = 0,
    ) -> None:
        self.tenant_id = str(uuid.uuid4())
        self.short_code = short_code()
        self.name = name
        self.country_code = country_code.upper()
        self.base_currency = base_currency.upper()
        self.multicurrency = multicurrency
        self.created_at = now
        self.per_day = daily_limit or 5000
        self.per_minute = 60
        self.concurrent = 5
        self.period_lock_date = period_lock_date
        self.accounts = seed.chart_of_accounts(self.country_code, self.base_currency)
        for account in self.accounts:
            account["UpdatedDateUTC"] = now
        self.tax_rates = seed.tax_rates_for(self.country_code)
        self.currencies = [
            {
                "Code": self.base_currency,
                "Description": seed.CURRENCY_NAMES.get(self.base_currency, self.base_currency),
            }
        ]
        self.contacts: dict[str, dict] = {}
        for contact in seed.generate_contacts(contacts, self.tenant_id, now):
            self.contacts[contact["ContactID"]] = contact
        self.invoices: dict[str, dict] = {}
        self.payments: dict[str, dict] = {}
        self.invoice_sequence = 0
        self.tax_sequence = 0
        self.lock = threading.RLock()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        del state["lock"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.lock = threading.RLock()

    @property
    def version(self) -> str:
        return seed.VERSION_BY_COUNTRY.get(self.country_code, "GLOBAL")

    def organisation_record(self) -> dict:
        return {
            "OrganisationID": self.tenant_id,
            "APIKey": "",
            "Name": self.name,
            "LegalName": self.name,
            "PaysTax": True,
            "Version": self.version,
            "OrganisationType": "COMPANY",
            "BaseCurrency": self.base_currency,
            "CountryCode": self.country_code,
            "IsDemoCompany": False,
            "OrganisationStatus": "ACTIVE",
            "FinancialYearEndDay": 31,
            "FinancialYearEndMonth": 3,
            "SalesTaxBasis": "INVOICE" if self.country_code != "US" else "ACCRUALS",
            "SalesTaxPeriod": "TWOMONTHS",
            "DefaultSalesTax": "Tax Exclusive",
            "DefaultPurchasesTax": "Tax Exclusive",
            "PeriodLockDate": self.period_lock_date,
            "CreatedDateUTC": self.created_at,
            "OrganisationEntityType": "COMPANY",
            "Timezone": "UTC",
            "ShortCode": self.short_code,
            "Edition": "BUSINESS",
            "Class": "STARTER" if self.per_day <= 1000 else "STANDARD",
        }

    def actions(self) -> list[dict]:
        allowed = "ALLOWED" if self.multicurrency else "NOT-ALLOWED"
        return [
            {"Name": "UseMulticurrency", "Status": allowed},
            {"Name": "CreateApprovedInvoice", "Status": "ALLOWED"},
            {"Name": "CreateApprovedPayment", "Status": "ALLOWED"},
            {"Name": "CreateDraftInvoice", "Status": "ALLOWED"},
        ]

    def next_invoice_number(self) -> str:
        while True:
            self.invoice_sequence += 1
            number = f"INV-{self.invoice_sequence:04d}"
            if not self.invoice_number_taken(number):
                return number

    def invoice_number_taken(self, number: str, except_id: str | None = None) -> bool:
        wanted = number.strip().lower()
        return any(
            invoice["InvoiceID"] != except_id
            and invoice["Type"] == "ACCREC"
            and invoice["Status"] != "DELETED"
            and str(invoice.get("InvoiceNumber", "")).strip().lower() == wanted
            for invoice in self.invoices.values()
        )

    def currency_codes(self) -> set[str]:
        return {currency["Code"] for currency in self.currencies}

    def account_by(self, account_id: str | None = None, code: str | None = None) -> dict | None:
        for account in self.accounts:
            if account_id and account["AccountID"].lower() == str(account_id).lower():
                return account
            if code is not None and account.get("Code") == str(code):
                return account
        return None

    def tax_rate(self, tax_type: str) -> dict | None:
        for rate in self.tax_rates:
            if rate["TaxType"] == tax_type:
                return rate
        return None

    def next_tax_type(self) -> str:
        self.tax_sequence += 1
        return f"TAX{self.tax_sequence:03d}"


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def zero() -> Decimal:
    return Decimal("0.00")
