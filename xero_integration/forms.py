"""Forms of the Xero settings page."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from xero_integration.models import AccountAlerts, SyncLog, XeroConnection


class DefaultAccountsForm(forms.Form):
    """The account payments post to (only accounts that accept payments) and the sales account."""

    payment_account_id = forms.ChoiceField(
        label=_("Payments go to"),
        help_text=_(
            "Only Xero accounts that accept payments are listed: bank accounts, and accounts "
            "with “Enable payments to this account” ticked."
        ),
        error_messages={"required": _("Choose the account payments go to.")},
    )
    revenue_account_code = forms.ChoiceField(
        label=_("Invoice lines post to"),
        help_text=_("The revenue account used for every invoice line sent to Xero."),
        error_messages={"required": _("Choose the revenue account for invoice lines.")},
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
        self.fields["payment_account_id"].choices = [("", _("Choose an account…"))] + [
            (a["AccountID"], _label(a)) for a in connection.payment_accounts()
        ]
        self.fields["revenue_account_code"].choices = [("", _("Choose an account…"))] + [
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
        SyncLog.objects.create(
            connection=self.connection,
            account_key=self.connection.account_key,
            action="default_accounts",
            message="Payments go to {}; invoice lines post to {} {}.".format(
                self.connection.account_name(account_id=self.connection.payment_account_id)
                or self.connection.payment_account_id,
                self.connection.revenue_account_code,
                self.connection.account_name(code=self.connection.revenue_account_code),
            ).replace(" .", "."),
        )
        if self.connection.is_connected:
            outbox.requeue_account(self.connection.account_key, reasons=(SyncJob.Reason.SETUP,))
        return self.connection


class AlertsForm(forms.ModelForm):
    """The account's choice of a daily digest of failed syncs."""

    class Meta:
        model = AccountAlerts
        fields = ["daily_digest"]
        labels = {"daily_digest": _("Email a daily digest of failed syncs")}
        help_texts = {
            "daily_digest": _(
                "Once a day, while invoices fail to reach Xero, the account's owners and "
                "admins get the list."
            )
        }


def _label(account: dict[str, Any]) -> str:
    code = account.get("Code")
    return f"{code} – {account['Name']}" if code else account["Name"]
