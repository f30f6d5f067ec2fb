"""WSGI entry point of the demo CRM."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crm_demo.settings")
application = get_wsgi_application()
