"""System checks catch misconfiguration with stable ids."""

from django.core import checks
from django.test import override_settings

from xero_integration.checks import (
    check_adapter,
    check_credentials,
    check_encryption_keys,
    check_task_queue,
)

TEST_KEY = "0" * 43 + "="


def ids(messages: list[checks.CheckMessage]) -> list[str]:
    return [message.id for message in messages]


@override_settings(XERO_CLIENT_ID="crm-demo", XERO_ENCRYPTION_KEYS=[TEST_KEY])
def test_the_demo_configuration_passes_every_check() -> None:
    """Every check the app registers, run as ``manage.py check`` runs them."""
    found = [m for m in checks.run_checks(include_deployment_checks=False) if m.id]
    assert [m.id for m in found if m.id.startswith("xero_integration.")] == []
    registered = {check.__name__ for check in checks.registry.registry.get_checks()}
    assert {
        "check_adapter",
        "check_encryption_keys",
        "check_task_queue",
        "check_run_fits_the_task_timeout",
        "check_credentials",
        "check_host_layout",
    } <= registered


@override_settings(XERO_ADAPTER="no.such.Adapter")
def test_an_adapter_that_does_not_import_is_an_error() -> None:
    assert ids(check_adapter()) == ["xero_integration.E001"]


@override_settings(XERO_ADAPTER="xero_integration.adapters.DefaultXeroAdapter")
def test_an_adapter_missing_hooks_names_them() -> None:
    (message,) = check_adapter()
    assert message.id == "xero_integration.E001"
    assert "to_invoice" in message.msg and "upsert_contacts" in message.msg


@override_settings(XERO_ADAPTER="django.contrib.auth.models.User")
def test_an_adapter_of_the_wrong_class_is_an_error() -> None:
    assert ids(check_adapter()) == ["xero_integration.E001"]


@override_settings(DEBUG=False, XERO_ENCRYPTION_KEYS=[])
def test_missing_encryption_key_outside_debug_is_an_error() -> None:
    assert ids(check_encryption_keys()) == ["xero_integration.E002"]


@override_settings(DEBUG=True, XERO_ENCRYPTION_KEYS=[])
def test_missing_encryption_key_in_debug_is_a_warning_that_connect_is_refused() -> None:
    # Not an error, so makemigrations and friends still run; storing a token is refused.
    (message,) = check_encryption_keys()
    assert message.id == "xero_integration.W003"
    assert "refused" in message.msg


@override_settings(XERO_ENCRYPTION_KEYS=["not-a-fernet-key"])
def test_a_malformed_encryption_key_is_an_error() -> None:
    assert ids(check_encryption_keys()) == ["xero_integration.E002"]


@override_settings(Q_CLUSTER={"timeout": 60, "retry": 60, "orm": "default"})
def test_retry_not_above_timeout_is_an_error() -> None:
    assert ids(check_task_queue()) == ["xero_integration.E003"]


@override_settings(XERO_CLIENT_ID="", DEBUG=True)
def test_missing_client_id_is_a_warning() -> None:
    assert ids(check_credentials()) == ["xero_integration.W001"]


@override_settings(
    XERO_CLIENT_ID="abc",
    DEBUG=False,
    XERO_API_URL="http://127.0.0.1:8765",
    XERO_LOGIN_URL="https://login.xero.com",
    XERO_IDENTITY_URL="https://identity.xero.com",
)
def test_sandbox_url_outside_debug_is_a_warning() -> None:
    (message,) = check_credentials()
    assert message.id == "xero_integration.W002"
    assert "XERO_API_URL" in message.msg
