"""Pages of the demo CRM. Every query is limited to the signed-in user's account."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from crm_demo.crm.accounts import current_account, current_membership
from crm_demo.crm.forms import ContactForm, InvoiceForm, InvoiceLineFormSet, PaymentForm
from crm_demo.crm.models import Contact, Invoice, Payment
from xero_integration import preflight


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """The dashboard: recent invoices and what is owed."""
    account = current_account(request)
    invoices = Invoice.objects.filter(account=account).select_related("contact")
    return render(
        request,
        "crm/home.html",
        {
            "account": account,
            "recent": invoices[:8],
            "open_count": invoices.filter(
                status__in=[Invoice.Status.SENT, Invoice.Status.PARTIALLY_PAID]
            ).count(),
            "contact_count": Contact.objects.filter(account=account).count(),
        },
    )


@login_required
def contact_list(request: HttpRequest) -> HttpResponse:
    """Contacts of the account, searchable by name, email or company."""
    account = current_account(request)
    contacts = Contact.objects.filter(account=account)
    query = request.GET.get("q", "").strip()
    if query:
        contacts = contacts.filter(
            Q(name__icontains=query) | Q(email__icontains=query) | Q(company__icontains=query)
        )
    return render(request, "crm/contact_list.html", {"contacts": contacts[:500], "q": query})


@login_required
def contact_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One contact with its invoices."""
    contact = get_object_or_404(Contact, pk=pk, account=current_account(request))
    return render(
        request,
        "crm/contact_detail.html",
        {"contact": contact, "invoices": contact.invoices.all()},
    )


@login_required
def contact_edit(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    """Create a contact, or edit one of the account's."""
    account = current_account(request)
    contact = get_object_or_404(Contact, pk=pk, account=account) if pk else Contact(account=account)
    form = ContactForm(request.POST or None, instance=contact)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, f"Contact {contact.name} saved.")
        return redirect(contact)
    return render(request, "crm/contact_form.html", {"form": form, "contact": contact})


@login_required
def invoice_list(request: HttpRequest) -> HttpResponse:
    """Invoices of the account, filterable by status."""
    account = current_account(request)
    invoices = Invoice.objects.filter(account=account).select_related("contact")
    status = request.GET.get("status", "")
    if status in Invoice.Status.values:
        invoices = invoices.filter(status=status)
    return render(
        request,
        "crm/invoice_list.html",
        {"invoices": invoices, "status": status, "statuses": Invoice.Status.choices},
    )


@login_required
def invoice_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One invoice with its lines, payments and actions."""
    invoice = get_object_or_404(
        Invoice.objects.select_related("contact"), pk=pk, account=current_account(request)
    )
    return render(
        request,
        "crm/invoice_detail.html",
        {
            "invoice": invoice,
            "lines": invoice.lines.select_related("tax"),
            "payments": invoice.payments.all(),
            "payment_form": PaymentForm(invoice=invoice) if invoice.accepts_payments else None,
        },
    )


@login_required
def invoice_edit(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    """Create an invoice, or edit one that is still open; header and lines save together."""
    account = current_account(request)
    invoice = get_object_or_404(Invoice, pk=pk, account=account) if pk else Invoice(account=account)
    data = request.POST if request.method == "POST" else None
    form = InvoiceForm(data, instance=invoice, account=account)
    lines = InvoiceLineFormSet(data, instance=invoice, account=account, prefix="lines")
    if pk and not invoice.is_editable:
        messages.error(
            request, f"A {invoice.get_status_display().lower()} invoice cannot be edited."
        )
        return redirect(invoice)
    problems: list = []
    if request.method == "POST" and form.is_valid() and lines.is_valid():
        unsaved = [invoice] + [f.instance for f in lines.forms if f.instance._state.adding]
        with transaction.atomic():
            invoice = form.save()
            for position, line in enumerate(lines.save(commit=False)):
                line.position = position
                line.save()
            for line in lines.deleted_objects:
                line.delete()
            invoice.recalculate()
            # What Xero would refuse in the invoice as submitted, shown before it is saved;
            # "Save anyway" keeps it (its sync then waits for a fix, with the same words).
            problems = [] if request.POST.get("save_anyway") else preflight.check(invoice)
            if problems:
                transaction.set_rollback(True)
        if not problems:
            messages.success(request, f"Invoice {invoice.number} saved.")
            return redirect(invoice)
        for instance in unsaved:
            if instance._state.adding or instance is not invoice:
                instance.pk = None  # its row was rolled back
                instance._state.adding = True
    return render(
        request,
        "crm/invoice_form.html",
        {"form": form, "lines": lines, "invoice": invoice, "problems": problems},
    )


def _own_invoice(request: HttpRequest, pk: int) -> Invoice:
    return get_object_or_404(
        Invoice.objects.select_for_update(), pk=pk, account=current_account(request)
    )


@login_required
@require_POST
def invoice_send(request: HttpRequest, pk: int) -> HttpResponse:
    """Mark a draft as sent to the contact."""
    with transaction.atomic():
        invoice = _own_invoice(request, pk)
        if invoice.status != Invoice.Status.DRAFT:
            messages.error(request, "Only a draft can be sent.")
        else:
            invoice.status = Invoice.Status.SENT
            invoice.recalculate()
            messages.success(request, f"Invoice {invoice.number} sent.")
    return redirect(invoice)


@login_required
@require_http_methods(["GET", "POST"])
def invoice_void(request: HttpRequest, pk: int) -> HttpResponse:
    """Void an invoice that is not paid in full. A GET asks first, saying what happens in Xero
    (the invoice page asks in a dialog)."""
    if request.method == "GET":
        invoice = get_object_or_404(Invoice, pk=pk, account=current_account(request))
        if invoice.status in (Invoice.Status.PAID, Invoice.Status.VOID):
            return redirect(invoice)
        return render(request, "crm/invoice_void.html", {"invoice": invoice})
    with transaction.atomic():
        invoice = _own_invoice(request, pk)
        if invoice.status in (Invoice.Status.PAID, Invoice.Status.VOID):
            messages.error(
                request, f"A {invoice.get_status_display().lower()} invoice cannot be voided."
            )
        else:
            invoice.status = Invoice.Status.VOID
            invoice.save()
            messages.success(request, f"Invoice {invoice.number} voided.")
    return redirect(invoice)


@login_required
@require_POST
def payment_create(request: HttpRequest, pk: int) -> HttpResponse:
    """Record a payment against an invoice."""
    with transaction.atomic():
        invoice = _own_invoice(request, pk)
        form = PaymentForm(request.POST, invoice=invoice)
        if form.is_valid():
            payment = form.save(commit=False)
            payment.invoice = invoice
            payment.save()
            invoice.recalculate()
            messages.success(request, f"Payment of {payment.amount} recorded.")
            return redirect(invoice)
    return render(
        request,
        "crm/invoice_detail.html",
        {
            "invoice": invoice,
            "lines": invoice.lines.select_related("tax"),
            "payments": invoice.payments.all(),
            "payment_form": form,
        },
        status=400,
    )


@login_required
@require_POST
def payment_delete(request: HttpRequest, pk: int, payment_pk: int) -> HttpResponse:
    """Remove a payment; the invoice's status moves back accordingly."""
    with transaction.atomic():
        invoice = _own_invoice(request, pk)
        payment = get_object_or_404(Payment, pk=payment_pk, invoice=invoice)
        if invoice.status == Invoice.Status.VOID:
            messages.error(request, "Payments of a void invoice cannot be changed.")
        elif payment.recorded_in_xero:
            messages.error(
                request,
                "This payment was recorded in Xero: remove it in Xero, and the CRM follows.",
            )
        else:
            payment.delete()
            invoice.recalculate()
            messages.success(request, "Payment removed.")
    return redirect(invoice)


@login_required
def integrations(request: HttpRequest) -> HttpResponse:
    """Settings → Integrations: one tile per installed integration."""
    membership = current_membership(request)
    if membership is None:
        current_account(request)
    return render(
        request,
        "crm/integrations.html",
        {"tiles": getattr(settings, "CRM_INTEGRATION_TILES", []), "membership": membership},
    )
