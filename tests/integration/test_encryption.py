"""Tokens are encrypted at rest, readable through the model, and survive key rotation:
``xero_rotate_keys`` moves every row to the newest key, and a row no key can read asks for a
reconnect instead of breaking pages."""

from io import StringIO

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command
from django.db import connection as db_connection
from django.test import override_settings
from django.urls import reverse

from xero_integration import tokens
from xero_integration.exceptions import ConfigurationError, ConnectionNotReady
from xero_integration.models import ConnectAttempt, ConnectionStatus, XeroConnection

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


# Key rotation ---------------------------------------------------------------------------------


def rotate() -> str:
    out = StringIO()
    call_command("xero_rotate_keys", stdout=out)
    return out.getvalue()


def test_rotate_keys_moves_every_encrypted_value_to_the_newest_key_once(settings) -> None:
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.XERO_ENCRYPTION_KEYS = [old_key]
    connection = XeroConnection.objects.create(
        account_key="1", access_token=ACCESS, refresh_token=REFRESH
    )
    attempt = ConnectAttempt.objects.create(
        account_key="1", code="the-code", code_verifier="the-verifier", redirect_uri="https://x"
    )
    XeroConnection.objects.create(account_key="2")  # no tokens: nothing to rotate

    settings.XERO_ENCRYPTION_KEYS = [new_key, old_key]
    report = rotate()
    assert "4 re-encrypted" in report and "0 unreadable" in report
    for secret in (ACCESS, REFRESH, "the-code", "the-verifier", old_key, new_key):
        assert secret not in report

    # The old key can go: everything reads with the new one alone.
    settings.XERO_ENCRYPTION_KEYS = [new_key]
    loaded = XeroConnection.objects.get(pk=connection.pk)
    assert (loaded.access_token, loaded.refresh_token) == (ACCESS, REFRESH)
    assert loaded.status == connection.status
    again = ConnectAttempt.objects.get(pk=attempt.pk)
    assert (again.code, again.code_verifier) == ("the-code", "the-verifier")

    # Running it again changes nothing.
    before = raw_columns(connection.pk)
    report = rotate()
    assert "0 re-encrypted" in report and "4 already under the newest key" in report
    assert raw_columns(connection.pk) == before


def test_rotate_keys_reports_values_no_key_can_read_and_moves_the_rest(settings) -> None:
    lost_key, old_key, new_key = (Fernet.generate_key().decode() for _ in range(3))
    settings.XERO_ENCRYPTION_KEYS = [lost_key]
    lost = XeroConnection.objects.create(account_key="1", refresh_token=REFRESH)
    settings.XERO_ENCRYPTION_KEYS = [old_key]
    kept = XeroConnection.objects.create(account_key="2", refresh_token=REFRESH)

    settings.XERO_ENCRYPTION_KEYS = [new_key, old_key]
    lost_before = raw_columns(lost.pk)
    with pytest.raises(CommandError, match="1 value"):
        rotate()
    assert raw_columns(lost.pk) == lost_before  # left as it was, for the old key to read
    settings.XERO_ENCRYPTION_KEYS = [new_key]
    assert XeroConnection.objects.get(pk=kept.pk).refresh_token == REFRESH


# A value no key can read -----------------------------------------------------------------------


@pytest.fixture
def unreadable_connection(settings, owner) -> XeroConnection:
    """The owner's connected account, its tokens saved under a key since dropped."""
    dropped = Fernet.generate_key().decode()
    settings.XERO_ENCRYPTION_KEYS = [dropped]
    connection = XeroConnection.objects.create(
        account_key=str(owner.account_id),
        status=ConnectionStatus.CONNECTED,
        tenant_id="tenant-1",
        tenant_name="Lost Keys Ltd",
        access_token=ACCESS,
        refresh_token=REFRESH,
    )
    settings.XERO_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    return connection


def test_an_unreadable_connection_asks_for_a_reconnect_on_its_pages(
    unreadable_connection, owner_client, admin_client
) -> None:
    page = owner_client.get(reverse("xero_integration:settings"))
    assert page.status_code == 200
    text = page.content.decode()
    assert "Needs reconnect" in text and "cannot be decrypted" in text
    assert "Reconnect to Xero" in text
    assert owner_client.get(reverse("crm:integrations")).status_code == 200
    admin = reverse("admin:xero_integration_xeroconnection_changelist")
    assert admin_client.get(admin).status_code == 200
    change = reverse(
        "admin:xero_integration_xeroconnection_change", args=[unreadable_connection.pk]
    )
    assert admin_client.get(change).status_code == 200


def test_an_unreadable_connection_keeps_its_ciphertext_until_reconnected(
    unreadable_connection, settings
) -> None:
    before = raw_columns(unreadable_connection.pk)
    loaded = XeroConnection.objects.get(pk=unreadable_connection.pk)
    assert loaded.refresh_token == "" and not loaded.is_connected
    loaded.save()  # a save (say, in admin) must not wipe what a restored key could read
    assert raw_columns(unreadable_connection.pk) == before


def test_a_worker_finding_an_unreadable_connection_marks_it_and_waits(
    unreadable_connection,
) -> None:
    with pytest.raises(ConnectionNotReady):
        tokens.access_token(unreadable_connection.pk)
    row = XeroConnection.objects.filter(pk=unreadable_connection.pk).values("status").get()
    assert row["status"] == ConnectionStatus.NEEDS_RECONNECT
