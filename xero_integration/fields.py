"""EncryptedTextField: text encrypted at rest with Fernet keys from XERO_ENCRYPTION_KEYS.

The newest key encrypts; every listed key decrypts (MultiFernet), so keys rotate without downtime:
put a new key first, run ``manage.py xero_rotate_keys``, then drop the old key.
"""

from __future__ import annotations

from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.db import models

from xero_integration import app_settings
from xero_integration.exceptions import ConfigurationError


def get_fernet() -> MultiFernet:
    """The MultiFernet built from the configured keys (newest first).

    There is no fallback key: one derived from ``SECRET_KEY`` (often a checked-in demo value)
    would protect nothing, so storing a token without a configured key is refused.
    """
    keys = app_settings.ENCRYPTION_KEYS
    if not keys:
        raise ConfigurationError(
            "XERO_ENCRYPTION_KEYS is empty; Xero tokens cannot be stored encrypted. Generate a "
            "key with Fernet.generate_key() and set XERO_ENCRYPTION_KEYS."
        )
    return MultiFernet([Fernet(key.encode() if isinstance(key, str) else key) for key in keys])


def encrypt(value: str) -> str:
    """Encrypt a string for storage."""
    return get_fernet().encrypt(value.encode()).decode()


def decrypt(value: str) -> str:
    """Decrypt a stored string; a value no configured key can read is a configuration error."""
    try:
        return get_fernet().decrypt(value.encode()).decode()
    except InvalidToken as exc:
        raise ConfigurationError(
            "A stored Xero token cannot be decrypted with XERO_ENCRYPTION_KEYS: "
            "keep the old key in the list until the tokens are re-encrypted."
        ) from exc


class UnreadableSecret(str):
    """A stored value no configured key decrypts (its key was dropped from
    XERO_ENCRYPTION_KEYS). It reads as "" (no token), so the connection asks for a reconnect
    instead of failing, and a save writes the ciphertext back unchanged, so putting the old key
    back restores it."""

    ciphertext: str

    def __new__(cls, ciphertext: str) -> UnreadableSecret:
        value = super().__new__(cls, "")
        value.ciphertext = ciphertext
        return value


class EncryptedTextField(models.TextField):
    """A TextField whose column holds only Fernet ciphertext; Python sees the plain text, or an
    empty UnreadableSecret when no configured key decrypts it."""

    description = "Text encrypted at rest"

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> str | None:
        if value is None or value == "":
            return value
        try:
            return decrypt(value)
        except ConfigurationError:
            return UnreadableSecret(value)

    def get_prep_value(self, value: Any) -> Any:
        if isinstance(value, UnreadableSecret):
            return value.ciphertext
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        return encrypt(value)

    def rotate(self, value: str) -> str:
        """Ciphertext of ``value`` under the newest key."""
        return get_fernet().rotate(value.encode()).decode()
