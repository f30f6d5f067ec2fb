"""A small CRM: organisations (the CRM's accounts), their customers, invoices and payments."""

from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.db import models

CENT = Decimal("0.01")


class Organisation(models.Model):
    """A business using the CRM; each one connects its own Xero organisation."""

    name = models.CharField(max_length=200)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="organisations")

    def __str__(self) -> str:
        return self.name


class Customer(models.Model):
    organisation = models.ForeignKey(
        Organisation, on_delete=models.CASCADE, related_name="customers"
    )
    name = models.CharField(max_length=255)
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=50, blank=True)

    def __str__(self) -> str:
        return self.name


class Invoice(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        SENT = "sent", "Sent"
        PAID = "paid", "Paid"
        CANCELLED = "cancelled", "Cancelled"

    organisation = models.ForeignKey(
        Organisation, on_delete=models.CASCADE, related_name="invoices"
    )
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="invoices")
    number = models.CharField(max_length=50)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    currency = models.CharField(max_length=3, default="NZD")
    issued_on = models.DateField()
    due_on = models.DateField(null=True, blank=True)

    def __str__(self) -> str:
        return self.number

    @property
    def total(self) -> Decimal:
        """Lines plus their tax, each line's tax rounded to the cent (as Xero does)."""
        return sum((line.amount + line.tax for line in self.lines.all()), Decimal("0.00"))


class InvoiceLine(models.Model):
    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="lines")
    description = models.CharField(max_length=255)
    quantity = models.DecimalField(max_digits=12, decimal_places=4, default=Decimal("1"))
    unit_price = models.DecimalField(max_digits=12, decimal_places=2)
    tax_rate = models.DecimalField(
        "tax rate (%)", max_digits=7, decimal_places=4, default=Decimal("0")
    )

    def __str__(self) -> str:
        return self.description

    @property
    def amount(self) -> Decimal:
        return (self.quantity * self.unit_price).quantize(CENT, ROUND_HALF_UP)

    @property
    def tax(self) -> Decimal:
        return (self.amount * self.tax_rate / 100).quantize(CENT, ROUND_HALF_UP)


class Payment(models.Model):
    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="payments")
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    received_on = models.DateField()
    reference = models.CharField(max_length=255, blank=True)
    # Recorded by someone in Xero (the bank feed, say) and brought here by the integration.
    from_xero = models.BooleanField(default=False)

    def __str__(self) -> str:
        return f"{self.amount} on {self.received_on}"
