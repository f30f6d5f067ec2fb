"""The demo CRM's settings pass Django's deployment checklist when the environment asks for
production (the variables README's production section lists)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cryptography.fernet import Fernet

BASE_DIR = Path(__file__).resolve().parents[2]


def production_environment() -> dict[str, str]:
    """What a production deployment sets, over a copy of this process's environment."""
    inherited = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("XERO_", "SECURE_", "DJANGO_"))
        and name not in ("DATABASE_URL", "DEBUG")
    }
    return {
        **inherited,
        "DJANGO_SETTINGS_MODULE": "crm_demo.settings",
        "DEBUG": "false",
        "SECRET_KEY": Fernet.generate_key().decode() + Fernet.generate_key().decode(),
        "ALLOWED_HOSTS": "crm.example.com",
        "CSRF_TRUSTED_ORIGINS": "https://crm.example.com",
        "SECURE_SSL_REDIRECT": "true",
        "SECURE_HSTS_SECONDS": "31536000",
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",
        "SECURE_HSTS_PRELOAD": "true",
        "SESSION_COOKIE_SECURE": "true",
        "CSRF_COOKIE_SECURE": "true",
        "SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO,https",
        "XERO_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "XERO_CLIENT_ID": "production-client-id",
        "XERO_CLIENT_SECRET": "production-client-secret",
        # Xero's own hosts, should a developer's .env point at the sandbox.
        "XERO_LOGIN_URL": "https://login.xero.com",
        "XERO_IDENTITY_URL": "https://identity.xero.com",
        "XERO_API_URL": "https://api.xero.com",
    }


def run_check(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_with_production_settings_reports_nothing() -> None:
    result = run_check(production_environment())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_a_malformed_proxy_ssl_header_is_named() -> None:
    env = production_environment() | {"SECURE_PROXY_SSL_HEADER": "https"}
    result = run_check(env)
    assert result.returncode != 0
    assert "SECURE_PROXY_SSL_HEADER must be a header and a value" in result.stderr
