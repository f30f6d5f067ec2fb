"""Tokens are encrypted at rest, readable through the model, and survive key rotation."""

import pytest
from cryptography.fernet import Fernet
from django.db import connection as db_connection
from django.test import override_settings
from django.urls import reverse

from xero_integration.exceptions import ConfigurationError
from xero_integration.models import XeroConnection

pytestmark = pytest.mark.django_db

ACCESS = "eyJhbGciOiJSUzI1NiJ9.access-token-plaintext"
REFRESH = "refresh-token-plaintext-0123456789"


def raw_columns(pk: int) -> tuple[str, str]:
    with db_connection.cursor() as cursor:
        cursor.execute(
            "SELECT access_token, refresh_token FROM xero_integration_xeroconnection WHERE id = %s",
            [pk],
        )
        return cursor.fetchone()


def test_token_columns_hold_no_plaintext() -> None:
    saved = XeroConnection.objects.create(
        account_key="1", access_token=ACCESS, refresh_token=REFRESH
    )
    access_raw, refresh_raw = raw_columns(saved.pk)
    assert ACCESS not in access_raw and REFRESH not in refresh_raw
    assert "plaintext" not in access_raw + refresh_raw
    loaded = XeroConnection.objects.get(pk=saved.pk)
    assert (loaded.access_token, loaded.refresh_token) == (ACCESS, REFRESH)


def test_rotation_keeps_old_tokens_readable() -> None:
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    with override_settings(XERO_ENCRYPTION_KEYS=[old_key]):
        saved = XeroConnection.objects.create(account_key="1", refresh_token=REFRESH)
    with override_settings(XERO_ENCRYPTION_KEYS=[new_key, old_key]):
        assert XeroConnection.objects.get(pk=saved.pk).refresh_token == REFRESH
    with (
        override_settings(XERO_ENCRYPTION_KEYS=[new_key]),
        pytest.raises(ConfigurationError, match="keep the old key"),
    ):
        XeroConnection.objects.get(pk=saved.pk)


@pytest.mark.parametrize("debug", [False, True])
def test_saving_a_token_without_a_key_fails_loudly(settings, debug: bool) -> None:
    settings.DEBUG, settings.XERO_ENCRYPTION_KEYS = debug, []
    with pytest.raises(ConfigurationError, match="XERO_ENCRYPTION_KEYS"):
        XeroConnection.objects.create(account_key="1", refresh_token=REFRESH)


def test_connect_without_a_key_says_so_instead_of_starting(settings, owner_client) -> None:
    settings.DEBUG, settings.XERO_ENCRYPTION_KEYS = True, []
    settings.XERO_CLIENT_ID = "crm-test-web"
    response = owner_client.post(reverse("xero_integration:connect"))
    assert response.status_code == 503
    assert "XERO_ENCRYPTION_KEYS" in response.content.decode()
