"""The demo CRM's data: accounts and their members, contacts, taxes, invoices and payments."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.urls import reverse

from crm_demo.crm import totals
from crm_demo.crm.currencies import CURRENCY_CHOICES

MONEY = {"max_digits": 14, "decimal_places": 2, "default": Decimal("0.00")}


class Account(models.Model):
    """A business using the CRM. Everything else belongs to one account."""

    name = models.CharField(max_length=200, unique=True)
    base_currency = models.CharField(max_length=3, choices=CURRENCY_CHOICES, default="NZD")
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="crm_accounts"
    )

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    """A user's place in an account."""

    class Role(models.TextChoices):
        OWNER = "owner", "Owner"
        ADMIN = "admin", "Admin"
        MEMBER = "member", "Member"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    account = models.ForeignKey(Account, on_delete=models.CASCADE)
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "account"], name="crm_unique_membership")
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.account} ({self.role})"

    @property
    def can_manage(self) -> bool:
        """Owners and admins manage the account's integrations."""
        return self.role in (self.Role.OWNER, self.Role.ADMIN)


class Contact(models.Model):
    """A person or business the account invoices."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="contacts")
    name = models.CharField(max_length=255)
    first_name = models.CharField(max_length=255, blank=True)
    last_name = models.CharField(max_length=255, blank=True)
    email = models.EmailField(max_length=255, blank=True)
    phone = models.CharField(max_length=50, blank=True)
    company = models.CharField(max_length=255, blank=True)
    address_line1 = models.CharField("address line 1", max_length=500, blank=True)
    address_line2 = models.CharField("address line 2", max_length=500, blank=True)
    city = models.CharField(max_length=255, blank=True)
    region = models.CharField(max_length=255, blank=True)
    postal_code = models.CharField(max_length=50, blank=True)
    country = models.CharField(max_length=50, blank=True)
    # Names of the fields whose value came from Xero: an import may refresh those, never the
    # ones staff typed in the CRM.
    source_fields = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("crm:contact_detail", args=[self.pk])


class Tax(models.Model):
    """A named tax made of one or more components, e.g. "GST 5% + QST 9.975% (compound)"."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="taxes")
    name = models.CharField(max_length=100)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "taxes"
        constraints = [
            models.UniqueConstraint(fields=["account", "name"], name="crm_unique_tax_name")
        ]

    def __str__(self) -> str:
        return self.name

    def effective_rate(self) -> Decimal:
        """The combined percent rate, compound components applied on top."""
        return totals.effective_rate((c.rate, c.compound) for c in self.components.all())


class TaxComponent(models.Model):
    """One rate of a tax; a compound component applies on top of the preceding ones."""

    tax = models.ForeignKey(Tax, on_delete=models.CASCADE, related_name="components")
    name = models.CharField(max_length=100)
    rate = models.DecimalField(max_digits=8, decimal_places=4)
    compound = models.BooleanField(default=False)
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return f"{self.name} {self.rate.normalize()}%{' (compound)' if self.compound else ''}"


class Invoice(models.Model):
    """A sales invoice. Totals are stored and recomputed from the lines and payments."""

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        SENT = "sent", "Sent"
        PARTIALLY_PAID = "partially_paid", "Partially paid"
        PAID = "paid", "Paid"
        VOID = "void", "Void"

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="invoices")
    number = models.CharField(max_length=50)
    contact = models.ForeignKey(Contact, on_delete=models.PROTECT, related_name="invoices")
    currency = models.CharField(max_length=3, choices=CURRENCY_CHOICES)
    issue_date = models.DateField()
    due_date = models.DateField(null=True, blank=True)
    tax_inclusive = models.BooleanField(
        "amounts include tax", default=False, help_text="Prices on the lines include tax."
    )
    reference = models.CharField(max_length=255, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.DRAFT)
    subtotal = models.DecimalField(**MONEY)
    tax_total = models.DecimalField(**MONEY)
    total = models.DecimalField(**MONEY)
    amount_paid = models.DecimalField(**MONEY)
    amount_due = models.DecimalField(**MONEY)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-issue_date", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["account", "number"], name="crm_unique_invoice_number")
        ]

    def __str__(self) -> str:
        return self.number

    def get_absolute_url(self) -> str:
        return reverse("crm:invoice_detail", args=[self.pk])

    @property
    def is_editable(self) -> bool:
        """Void and paid invoices are closed."""
        return self.status not in (self.Status.VOID, self.Status.PAID)

    @property
    def accepts_payments(self) -> bool:
        """Payments go to sent invoices with something still due."""
        return self.status in (self.Status.SENT, self.Status.PARTIALLY_PAID) and self.amount_due > 0

    def recalculate(self, save: bool = True) -> None:
        """Recompute totals, amount paid and due, and the payment-driven status."""
        figures = totals.invoice_totals(
            ((line.amount, line.tax_rate) for line in self.lines.all()), self.tax_inclusive
        )
        paid = sum((p.amount for p in self.payments.all()), Decimal("0.00"))
        self.subtotal, self.tax_total, self.total = figures.subtotal, figures.tax, figures.total
        self.amount_paid = paid
        self.amount_due = self.total - paid
        if self.status in (self.Status.SENT, self.Status.PARTIALLY_PAID, self.Status.PAID):
            if paid <= 0:
                self.status = self.Status.SENT
            elif self.amount_due > 0:
                self.status = self.Status.PARTIALLY_PAID
            else:
                self.status = self.Status.PAID
        if save:
            self.save()


class InvoiceLine(models.Model):
    """One line of an invoice: an item with quantity, price, an optional discount and tax."""

    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="lines")
    position = models.PositiveSmallIntegerField(default=0)
    item_name = models.CharField(max_length=255, blank=True)
    description = models.TextField(max_length=4000, blank=True)
    quantity = models.DecimalField(max_digits=14, decimal_places=4, default=Decimal("1"))
    unit_price = models.DecimalField(max_digits=14, decimal_places=4, default=Decimal("0"))
    discount_percent = models.DecimalField(
        "discount %", max_digits=5, decimal_places=2, null=True, blank=True
    )
    discount_amount = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    tax = models.ForeignKey(Tax, null=True, blank=True, on_delete=models.PROTECT)

    class Meta:
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return self.item_name or self.description[:40]

    @property
    def amount(self) -> Decimal:
        """The line amount after discount, rounded to the cent."""
        return totals.line_amount(
            self.quantity, self.unit_price, self.discount_percent, self.discount_amount
        )

    @property
    def tax_rate(self) -> Decimal:
        """The effective percent rate of the line's tax (0 without one)."""
        return self.tax.effective_rate() if self.tax_id else Decimal("0")


class Payment(models.Model):
    """Money received against an invoice."""

    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="payments")
    amount = models.DecimalField(max_digits=14, decimal_places=2)
    date = models.DateField()
    reference = models.CharField(max_length=255, blank=True)
    # Recorded by someone working in Xero (the bank feed, say) and brought into the CRM by the
    # integration: it is changed or removed in Xero, not here.
    recorded_in_xero = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["date", "id"]

    def __str__(self) -> str:
        return f"{self.amount} on {self.date}"
