from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("integrations/xero/", include("xero_integration.urls")),
    path("", include("mycrm.urls")),
]
