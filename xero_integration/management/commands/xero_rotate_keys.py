"""``python manage.py xero_rotate_keys``: re-encrypt every stored secret with the newest key.

Rotation: put a new key first in XERO_ENCRYPTION_KEYS (keep the old one after it), deploy, run
this command, then drop the old key. Running it again changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from django.apps import apps
from django.core.management.base import BaseCommand, CommandError
from django.db import connection as db_connection

from xero_integration import app_settings
from xero_integration.fields import EncryptedTextField, get_fernet


@dataclass
class Counts:
    """What happened to the values of one encrypted column."""

    rotated: int = 0
    current: int = 0
    unreadable: int = 0


def rotate_column(model: Any, field: EncryptedTextField) -> Counts:
    """Re-encrypt one column's values under the newest key; values already under it, and
    values no key decrypts, are left as they are."""
    newest = Fernet(app_settings.ENCRYPTION_KEYS[0])
    every_key = get_fernet()
    table = db_connection.ops.quote_name(model._meta.db_table)
    column = db_connection.ops.quote_name(field.column)
    pk = db_connection.ops.quote_name(model._meta.pk.column)
    counts = Counts()
    # Raw SQL: the field itself would decrypt on read and encrypt again on write.
    with db_connection.cursor() as cursor:
        cursor.execute(f"SELECT {pk}, {column} FROM {table} WHERE {column} <> ''")
        rows = cursor.fetchall()
    for row_pk, ciphertext in rows:
        token = ciphertext.encode()
        try:
            newest.decrypt(token)
        except InvalidToken:
            pass
        else:
            counts.current += 1
            continue
        try:
            rotated = every_key.rotate(token).decode()
        except InvalidToken:
            counts.unreadable += 1
            continue
        with db_connection.cursor() as cursor:
            # Only if unchanged since read: a token refreshed meanwhile is already current.
            cursor.execute(
                f"UPDATE {table} SET {column} = %s WHERE {pk} = %s AND {column} = %s",
                [rotated, row_pk, ciphertext],
            )
            if cursor.rowcount:
                counts.rotated += 1
            else:
                counts.current += 1
    return counts


class Command(BaseCommand):
    help = "Re-encrypt every stored Xero token with the newest key of XERO_ENCRYPTION_KEYS."

    def handle(self, *args: Any, **options: Any) -> None:
        total = Counts()
        for model in apps.get_app_config("xero_integration").get_models():
            for field in model._meta.concrete_fields:
                if not isinstance(field, EncryptedTextField):
                    continue
                counts = rotate_column(model, field)
                total.rotated += counts.rotated
                total.current += counts.current
                total.unreadable += counts.unreadable
                self.stdout.write(
                    f"{model._meta.label}.{field.name}: {counts.rotated} re-encrypted, "
                    f"{counts.current} already under the newest key, "
                    f"{counts.unreadable} unreadable"
                )
        self.stdout.write(
            f"Total: {total.rotated} re-encrypted, {total.current} already under the newest "
            f"key, {total.unreadable} unreadable."
        )
        if total.unreadable:
            raise CommandError(
                f"{total.unreadable} value(s) cannot be decrypted with any key in "
                "XERO_ENCRYPTION_KEYS and were left as they are. Put back the key they were "
                "saved with and run this again; otherwise their connections show “needs "
                "reconnecting” until someone reconnects them."
            )
