"""The demo CRM app."""

from django.apps import AppConfig


class CrmConfig(AppConfig):
    """Accounts, contacts, taxes, invoices and payments."""

    name = "crm_demo.crm"
    label = "crm"
    verbose_name = "CRM"
    default_auto_field = "django.db.models.BigAutoField"
