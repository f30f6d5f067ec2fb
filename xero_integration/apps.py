"""Django app configuration for xero_integration."""

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class XeroIntegrationConfig(AppConfig):
    """Registers the system checks and signal receivers; installs the periodic tasks after
    migrate."""

    name = "xero_integration"
    verbose_name = "Xero integration"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imported for its side effect: registering the system checks with Django.
        from xero_integration import checks, receivers  # noqa: F401
        from xero_integration.schedules import install_schedules

        post_migrate.connect(install_schedules, sender=self)

        receivers.connect_host_models()
