"""Settings of a small CRM that installs xero_integration: the worked example of
docs/integrating.md, whose tests run from the built wheel (tests/packaging/)."""

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()

SECRET_KEY = env("SECRET_KEY", default="example-host-crm-insecure-key")
DEBUG = env.bool("DEBUG", default=True)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "mycrm",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
ROOT_URLCONF = "hostsite.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": BASE_DIR / "db.sqlite3",
        # The web server and the django-q2 worker write to one file: a transaction takes the
        # write lock when it starts (a read that turned into a write midway could not wait for
        # it), and waits up to 20 s for it.
        "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE"},
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
STATIC_URL = "static/"
LOGIN_URL = "admin:login"

# xero_integration
INSTALLED_APPS += ["django_q", "xero_integration"]
XERO_ADAPTER = "mycrm.xero_adapter.MyXeroAdapter"
XERO_CLIENT_ID = env("XERO_CLIENT_ID", default="")
XERO_CLIENT_SECRET = env("XERO_CLIENT_SECRET", default="")
XERO_ENCRYPTION_KEYS = env.list("XERO_ENCRYPTION_KEYS", default=[])
Q_CLUSTER = {"name": "mycrm", "orm": "default", "timeout": 120, "retry": 180}
# Trying it out against the sandbox (python -m xero_integration.sandbox) instead of Xero:
if env("XERO_SANDBOX_URL", default=""):
    XERO_LOGIN_URL = XERO_IDENTITY_URL = XERO_API_URL = env("XERO_SANDBOX_URL")
