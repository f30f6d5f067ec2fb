"""Forms of the demo CRM; each rejects bad input with an error on the field concerned."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from crm_demo.crm.models import Account, Contact, Invoice, InvoiceLine, Payment, Tax


class ContactForm(forms.ModelForm):
    """Create or edit a contact."""

    class Meta:
        model = Contact
        fields = [
            "name",
            "first_name",
            "last_name",
            "email",
            "phone",
            "company",
            "address_line1",
            "address_line2",
            "city",
            "region",
            "postal_code",
            "country",
        ]


class InvoiceForm(forms.ModelForm):
    """An invoice's header; its lines come in InvoiceLineFormSet."""

    class Meta:
        model = Invoice
        fields = [
            "number",
            "contact",
            "currency",
            "issue_date",
            "due_date",
            "tax_inclusive",
            "reference",
        ]
        widgets = {
            "issue_date": forms.DateInput(attrs={"type": "date"}),
            "due_date": forms.DateInput(attrs={"type": "date"}),
        }

    def __init__(self, *args: Any, account: Account, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.account = account
        self.fields["contact"].queryset = Contact.objects.filter(account=account)
        if not self.instance.pk:
            self.fields["currency"].initial = account.base_currency

    def clean_number(self) -> str:
        number = self.cleaned_data["number"].strip()
        clash = Invoice.objects.filter(account=self.account, number__iexact=number)
        if self.instance.pk:
            clash = clash.exclude(pk=self.instance.pk)
        if clash.exists():
            raise ValidationError(f"Invoice number {number} is already used in this account.")
        return number

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if self.instance.pk and self.instance.status == Invoice.Status.VOID:
            raise ValidationError("A void invoice cannot be edited.")
        if self.instance.pk and self.instance.status == Invoice.Status.PAID:
            raise ValidationError("A paid invoice cannot be edited.")
        issue, due = cleaned.get("issue_date"), cleaned.get("due_date")
        if issue and due and due < issue:
            self.add_error("due_date", "The due date cannot be before the issue date.")
        return cleaned


class InvoiceLineForm(forms.ModelForm):
    """One line: a described item, its quantity and price, an optional discount and tax."""

    class Meta:
        model = InvoiceLine
        fields = [
            "item_name",
            "description",
            "quantity",
            "unit_price",
            "discount_percent",
            "discount_amount",
            "tax",
        ]
        widgets = {"description": forms.Textarea(attrs={"rows": 2, "maxlength": 4000})}

    def __init__(self, *args: Any, account: Account, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["tax"].queryset = Tax.objects.filter(account=account)

    def clean_quantity(self) -> Decimal:
        value = self.cleaned_data["quantity"]
        if value < 0:
            raise ValidationError(
                "Quantity cannot be negative; for a credit line use a negative unit price."
            )
        return value

    def clean_discount_percent(self) -> Decimal | None:
        value = self.cleaned_data.get("discount_percent")
        if value is not None and not Decimal("0") <= value <= Decimal("100"):
            raise ValidationError("A discount is between 0% and 100%.")
        return value

    def clean_discount_amount(self) -> Decimal | None:
        value = self.cleaned_data.get("discount_amount")
        if value is not None and value < 0:
            raise ValidationError("A discount amount cannot be negative.")
        return value

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if cleaned.get("discount_percent") and cleaned.get("discount_amount"):
            self.add_error(
                "discount_amount", "Give a discount as a percent or an amount, not both."
            )
        if not (cleaned.get("item_name") or cleaned.get("description")):
            self.add_error("item_name", "A line needs an item name or a description.")
        return cleaned


class BaseLineFormSet(forms.BaseInlineFormSet):
    """The invoice's lines: at least one."""

    def __init__(self, *args: Any, account: Account, **kwargs: Any) -> None:
        self.account = account
        super().__init__(*args, **kwargs)

    def get_form_kwargs(self, index: int | None) -> dict[str, Any]:
        return {**super().get_form_kwargs(index), "account": self.account}

    @property
    def empty_form(self) -> forms.Form:
        form = self.form(
            auto_id=self.auto_id,
            prefix=self.add_prefix("__prefix__"),
            empty_permitted=True,
            use_required_attribute=False,
            account=self.account,
        )
        self.add_fields(form, None)
        return form

    def clean(self) -> None:
        super().clean()
        kept = [
            form
            for form in self.forms
            if form.cleaned_data and not form.cleaned_data.get("DELETE", False)
        ]
        if not kept:
            raise ValidationError("An invoice needs at least one line.")


InvoiceLineFormSet = forms.inlineformset_factory(
    Invoice,
    InvoiceLine,
    form=InvoiceLineForm,
    formset=BaseLineFormSet,
    extra=1,
    can_delete=True,
)


class PaymentForm(forms.ModelForm):
    """Record a payment: more than zero and no more than the amount due."""

    class Meta:
        model = Payment
        fields = ["amount", "date", "reference"]
        widgets = {"date": forms.DateInput(attrs={"type": "date"})}

    def __init__(self, *args: Any, invoice: Invoice, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.invoice = invoice

    def clean_amount(self) -> Decimal:
        amount = self.cleaned_data["amount"]
        if amount <= 0:
            raise ValidationError("A payment must be more than zero.")
        if amount > self.invoice.amount_due:
            raise ValidationError(
                f"The payment is more than the amount due "
                f"({self.invoice.amount_due} {self.invoice.currency})."
            )
        return amount

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if not self.invoice.accepts_payments:
            raise ValidationError(
                f"A {self.invoice.get_status_display().lower()} invoice cannot take payments."
            )
        return cleaned
