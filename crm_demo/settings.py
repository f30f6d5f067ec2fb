"""Settings of the demo CRM, read from the environment (and an optional .env file).

Every value has a working default for the demo; `.env.example` documents each variable.
"""

import os
import sys
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# The test suite configures itself; a developer's demo .env must not leak into it.
if (BASE_DIR / ".env").is_file() and "pytest" not in sys.modules:
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=True)
SECRET_KEY = env.str("SECRET_KEY", default="demo-only-insecure-secret-key-change-me")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# HTTPS, for production behind TLS (`manage.py check --deploy` asks for each). Off by default so
# that the demo runs on http://127.0.0.1; README's production section says what to set.
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=False)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=False)
# Behind a proxy that terminates TLS: the header it sets and its value for HTTPS, such as
# "HTTP_X_FORWARDED_PROTO,https". Only when the proxy always sets (or strips) that header.
_proxy_ssl_header = env.list("SECURE_PROXY_SSL_HEADER", default=[])
if _proxy_ssl_header and len(_proxy_ssl_header) != 2:
    raise ImproperlyConfigured(
        "SECURE_PROXY_SSL_HEADER must be a header and a value, such as "
        f"HTTP_X_FORWARDED_PROTO,https (got {','.join(_proxy_ssl_header)!r})."
    )
SECURE_PROXY_SSL_HEADER = tuple(_proxy_ssl_header) or None

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "allauth",
    "allauth.account",
    "django_q",
    "xero_integration",
    "crm_demo.crm",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
]

ROOT_URLCONF = "crm_demo.urls"
WSGI_APPLICATION = "crm_demo.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "crm_demo" / "templates"],
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

VAR_DIR = BASE_DIR / "var"
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'demo.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    VAR_DIR.mkdir(exist_ok=True)
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            # Several processes (web server, workers, webhooks) share one SQLite file in the
            # demo: a writer waits for the lock (up to 20 s) instead of failing at once...
            "timeout": 20,
            # ...which SQLite allows only to a transaction that takes the write lock when it
            # begins: one that read first (DEFERRED, the default) and then writes is refused
            # at once with "database is locked", whatever the timeout.
            "transaction_mode": "IMMEDIATE",
            # Write-ahead logging: readers neither wait for the writer nor hold it up.
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL",
        }
    )
    # Tests get a file too: an in-memory database fails a waiting writer at once instead of
    # letting it wait, so the tests of concurrent workers would not test what runs here.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-{os.getpid()}.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]

# Sign-in with email and password (django-allauth).
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = env.str("ACCOUNT_EMAIL_VERIFICATION", default="none")
ACCOUNT_LOGOUT_ON_GET = False
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "/"
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env.str("STATIC_ROOT", default=str(VAR_DIR / "static"))

# Background tasks (django-q2): the ORM broker by default, Redis when REDIS_URL is set.
REDIS_URL = env.str("REDIS_URL", default="")
Q_CLUSTER = {
    "name": env.str("Q_NAME", default="crm_demo"),
    "workers": env.int("Q_WORKERS", default=2),
    "timeout": 120,
    # retry must exceed timeout, or a slow task is handed to a second worker while still running.
    "retry": 180,
    "max_attempts": 3,
    "queue_limit": 50,
    "bulk": 10,
    "catch_up": False,
    "poll": 0.5,
    "save_limit": 500,
    "label": "Background tasks",
    # Tests run tasks inline, in the caller's process.
    "sync": env.bool("Q_SYNC", default=False),
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"

# xero_integration: the adapter that connects the app to this CRM, and Xero's credentials and URLs.
XERO_ADAPTER = "crm_demo.crm.xero_adapter.CrmXeroAdapter"
XERO_CLIENT_ID = env.str("XERO_CLIENT_ID", default="")
XERO_CLIENT_SECRET = env.str("XERO_CLIENT_SECRET", default="")
XERO_LOGIN_URL = env.str("XERO_LOGIN_URL", default="https://login.xero.com")
XERO_IDENTITY_URL = env.str("XERO_IDENTITY_URL", default="https://identity.xero.com")
XERO_API_URL = env.str("XERO_API_URL", default="https://api.xero.com")
XERO_REDIRECT_URI = env.str("XERO_REDIRECT_URI", default="")
XERO_ENCRYPTION_KEYS = env.list("XERO_ENCRYPTION_KEYS", default=[])
XERO_USE_LEGACY_SCOPES = env.bool("XERO_USE_LEGACY_SCOPES", default=False)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        # Xero's Intent to Receive check is refused (401) on purpose: not a failure to show.
        "hide_intent_to_receive": {"()": "crm_demo.logfilters.HideIntentToReceive"},
    },
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "server": {
            "()": "django.utils.log.ServerFormatter",
            "format": "[{server_time}] {message}",
            "style": "{",
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["hide_intent_to_receive"],
        },
        "server": {
            "class": "logging.StreamHandler",
            "formatter": "server",
            "filters": ["hide_intent_to_receive"],
        },
    },
    "loggers": {
        # Django's own console handler would print its request warnings a second time: they
        # reach the root's.
        "django": {"handlers": [], "level": "INFO"},
        "django.server": {"handlers": ["server"], "level": "INFO", "propagate": False},
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}

# The demo CRM's Settings → Integrations page: one tile template per integration.
CRM_INTEGRATION_TILES = ["xero_integration/tile.html"]
# With several workers, the rate-limit budgets live in Redis so that all of them share one.
XERO_LIMITER_REDIS_URL = env.str("XERO_LIMITER_REDIS_URL", default=REDIS_URL)
XERO_REQUEST_TIMEOUT = env.float("XERO_REQUEST_TIMEOUT", default=30.0)
XERO_SYNC_DRAFTS = env.bool("XERO_SYNC_DRAFTS", default=True)
XERO_CREATE_TAX_RATES = env.bool("XERO_CREATE_TAX_RATES", default=True)
XERO_RETRY_BASE_SECONDS = env.float("XERO_RETRY_BASE_SECONDS", default=30.0)
XERO_CALLS_PER_MINUTE = env.int("XERO_CALLS_PER_MINUTE", default=60)
XERO_WEBHOOK_KEY = env.str("XERO_WEBHOOK_KEY", default="")
# The CRM's own address, for the link in alert emails (the demo prints them on the console).
XERO_SITE_URL = env.str("XERO_SITE_URL", default="http://127.0.0.1:8000")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Demo CRM <crm@example.com>")
