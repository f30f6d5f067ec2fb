"""URLs of the Xero settings pages; include them under a prefix such as "integrations/xero/"."""

from django.urls import path

from xero_integration import views

app_name = "xero_integration"

urlpatterns = [
    path("", views.settings_page, name="settings"),
    path("connect/", views.start_connect, name="connect"),
    path("callback/", views.callback, name="callback"),
    path("connect/<uuid:attempt_id>/", views.attempt_page, name="attempt"),
    path("connect/<uuid:attempt_id>/choose/", views.choose_organisation, name="choose"),
    path("accounts/", views.save_accounts, name="accounts"),
    path("accounts/reload/", views.reload_accounts, name="reload_accounts"),
    path("contacts/import/", views.import_contacts, name="import_contacts"),
    path("webhooks/", views.webhook, name="webhook"),
    path("disconnect/", views.disconnect, name="disconnect"),
    path("history/send/", views.send_history, name="send_history"),
    path("history/recount/", views.recount_history, name="recount_history"),
    path("alerts/", views.save_alerts, name="alerts"),
    path("parts/<slug:part>/", views.settings_part, name="part"),
    path("invoices/<str:host_model>/<str:host_id>/sync/", views.sync_invoice, name="sync_invoice"),
]
