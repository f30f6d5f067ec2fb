"""The CRM's pages that show the integration: Settings → Integrations and an invoice."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from mycrm.models import Invoice


@login_required
def integrations(request: HttpRequest) -> HttpResponse:
    return render(request, "mycrm/integrations.html")


@login_required
def invoice_detail(request: HttpRequest, pk: int) -> HttpResponse:
    invoice = get_object_or_404(Invoice, pk=pk, organisation__members=request.user)
    return render(request, "mycrm/invoice.html", {"invoice": invoice})
