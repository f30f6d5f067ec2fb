from django.contrib import admin

from mycrm.models import Customer, Invoice, InvoiceLine, Organisation, Payment


class InvoiceLineInline(admin.TabularInline):
    model = InvoiceLine
    extra = 1


class PaymentInline(admin.TabularInline):
    model = Payment
    extra = 0


@admin.register(Invoice)
class InvoiceAdmin(admin.ModelAdmin):
    # Admin saves the invoice and its lines in one transaction: the sync sees them together.
    inlines = [InvoiceLineInline, PaymentInline]
    list_display = ["number", "customer", "status", "issued_on"]


admin.site.register([Organisation, Customer])
