from django.apps import AppConfig


class MyCrmConfig(AppConfig):
    name = "mycrm"
    default_auto_field = "django.db.models.BigAutoField"
