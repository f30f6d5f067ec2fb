from django.urls import path

from mycrm import views

urlpatterns = [
    path("settings/integrations/", views.integrations, name="integrations"),
    path("invoices/<int:pk>/", views.invoice_detail, name="invoice_detail"),
]
