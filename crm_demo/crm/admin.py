"""Django admin for every model of the demo CRM."""

from django.contrib import admin

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


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ["user"]


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    list_display = ["name", "base_currency"]
    search_fields = ["name"]
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "account", "role"]
    list_filter = ["role", "account"]
    raw_id_fields = ["user"]


@admin.register(Contact)
class ContactAdmin(admin.ModelAdmin):
    list_display = ["name", "email", "company", "account", "updated_at"]
    list_filter = ["account"]
    search_fields = ["name", "email", "company"]


class TaxComponentInline(admin.TabularInline):
    model = TaxComponent
    extra = 1


@admin.register(Tax)
class TaxAdmin(admin.ModelAdmin):
    list_display = ["name", "account", "effective_rate"]
    list_filter = ["account"]
    inlines = [TaxComponentInline]


class InvoiceLineInline(admin.TabularInline):
    model = InvoiceLine
    extra = 0


class PaymentInline(admin.TabularInline):
    model = Payment
    extra = 0


@admin.register(Invoice)
class InvoiceAdmin(admin.ModelAdmin):
    list_display = ["number", "contact", "currency", "total", "amount_due", "status", "account"]
    list_filter = ["status", "currency", "account"]
    search_fields = ["number", "contact__name", "reference"]
    raw_id_fields = ["contact"]
    readonly_fields = ["subtotal", "tax_total", "total", "amount_paid", "amount_due"]
    inlines = [InvoiceLineInline, PaymentInline]

    def save_related(self, request, form, formsets, change) -> None:  # type: ignore[no-untyped-def]
        super().save_related(request, form, formsets, change)
        form.instance.recalculate()


@admin.register(Payment)
class PaymentAdmin(admin.ModelAdmin):
    list_display = ["invoice", "amount", "date", "reference"]
    search_fields = ["invoice__number", "reference"]
    raw_id_fields = ["invoice"]

    def save_model(self, request, obj, form, change) -> None:  # type: ignore[no-untyped-def]
        super().save_model(request, obj, form, change)
        obj.invoice.recalculate()

    def delete_model(self, request, obj) -> None:  # type: ignore[no-untyped-def]
        invoice = obj.invoice
        super().delete_model(request, obj)
        invoice.recalculate()
