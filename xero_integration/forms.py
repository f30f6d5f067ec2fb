"""Forms of the Xero settings page."""

from __future__ import annotations

from typing import Any

from django import forms

from xero_integration.models import XeroConnection


class DefaultAccountsForm(forms.Form):
    """The account payments post to (only accounts that accept payments) and the sales account."""

    payment_account_id = forms.ChoiceField(
        label="Payments go to",
        help_text="Only Xero accounts that accept payments are listed: bank accounts, and "
        "accounts with “Enable payments to this account” ticked.",
    )
    revenue_account_code = forms.ChoiceField(
        label="Invoice lines post to",
        help_text="The revenue account used for every invoice line sent to Xero.",
    )

    def __init__(self, *args: Any, connection: XeroConnection, **kwargs: Any) -> None:
        kwargs.setdefault(
            "initial",
            {
                "payment_account_id": connection.payment_account_id,
                "revenue_account_code": connection.revenue_account_code,
            },
        )
        super().__init__(*args, **kwargs)
        self.connection = connection
        self.fields["payment_account_id"].choices = [("", "Choose an account…")] + [
            (a["AccountID"], _label(a)) for a in connection.payment_accounts()
        ]
        self.fields["revenue_account_code"].choices = [("", "Choose an account…")] + [
            (a["Code"], _label(a)) for a in connection.revenue_accounts()
        ]

    def save(self) -> XeroConnection:
        """Store the choices on the connection; invoices that failed for want of them are
        sent now."""
        from xero_integration import outbox
        from xero_integration.models import SyncJob

        self.connection.payment_account_id = self.cleaned_data["payment_account_id"]
        self.connection.revenue_account_code = self.cleaned_data["revenue_account_code"]
        self.connection.remember_defaults()
        self.connection.save(
            update_fields=[
                "payment_account_id",
                "revenue_account_code",
                "organisation_defaults",
                "updated_at",
            ]
        )
        if self.connection.is_connected:
            outbox.requeue_account(self.connection.account_key, reasons=(SyncJob.Reason.SETUP,))
        return self.connection


def _label(account: dict[str, Any]) -> str:
    code = account.get("Code")
    return f"{code} – {account['Name']}" if code else account["Name"]
