"""URLs of the demo CRM: sign-in (allauth), admin, the CRM pages and the Xero integration."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("integrations/xero/", include("xero_integration.urls")),
    path("", include("crm_demo.crm.urls")),
]
