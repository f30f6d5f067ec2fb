"""Access tokens: used while fresh, refreshed once near expiry by one worker, saved before use.

The sandbox's clock and the CRM's view of the token's expiry move together: the sandbox clock is
advanced and the stored expiry moved back by the same amount, as if that much time had passed.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from django.db import connection as db_connection
from django.db import connections
from django.db.models import F
from django.urls import reverse

from tests.integration.conftest import make_connection, token_requests
from xero_integration import connect, services, tokens
from xero_integration.exceptions import ConnectionNotReady
from xero_integration.models import ConnectionStatus, SyncLog, XeroConnection

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
#: The sandbox's access tokens live 30 minutes; 29.5 minutes in, one is 30 s from expiry, inside
#: the CRM's 60-second refresh margin but still valid in Xero.
ALMOST_EXPIRED = 29.5 * 60


def let_time_pass(xero_sandbox: Any, connection: XeroConnection, seconds: float) -> None:
    """Move the sandbox clock and the stored expiry as if ``seconds`` had passed."""
    xero_sandbox.advance_clock(seconds)
    XeroConnection.objects.filter(pk=connection.pk).update(
        access_token_expires_at=F("access_token_expires_at") - timedelta(seconds=seconds),
        tokens_refreshed_at=F("tokens_refreshed_at") - timedelta(seconds=seconds),
    )


def raw_token_columns(pk: int) -> tuple[str, str]:
    with db_connection.cursor() as cursor:
        cursor.execute(
            "SELECT access_token, refresh_token FROM xero_integration_xeroconnection WHERE id = %s",
            [pk],
        )
        return cursor.fetchone()


def read_in_another_connection(pk: int) -> tuple[str, str]:
    """The committed tokens, read from another thread (hence another database connection)."""
    result: list[tuple[str, str]] = []

    def read() -> None:
        try:
            row = XeroConnection.objects.get(pk=pk)
            result.append((row.access_token, row.refresh_token))
        finally:
            connections.close_all()

    reader = threading.Thread(target=read)
    reader.start()
    reader.join(30)
    assert result, "Could not read the connection from another database connection"
    return result[0]


@pytest.fixture
def connection(xero_app, organisation, owner_account_key, xero_sandbox) -> XeroConnection:
    return make_connection(xero_sandbox, xero_app, organisation["tenant_id"], owner_account_key)


def test_fresh_token_is_used_without_refreshing(connection, xero_sandbox) -> None:
    assert tokens.access_token(connection.pk) == connection.access_token
    organisation = connect.api_client(connection).organisation()
    assert organisation["Name"] == "Demo Company (NZ)"
    assert token_requests(xero_sandbox) == []


def test_expired_token_is_refreshed_once_and_saved_before_use(
    connection, xero_sandbox, monkeypatch
) -> None:
    old_access, old_refresh = connection.access_token, connection.refresh_token
    let_time_pass(xero_sandbox, connection, ALMOST_EXPIRED)

    # Record what the database holds at the moment each API call leaves the CRM.
    seen: list[tuple[str, tuple[str, str]]] = []
    original = services.new_session

    def spying_session() -> requests.Session:
        session = original()
        send = session.request

        def request(method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:
            auth = (kwargs.get("headers") or {}).get("Authorization", "")
            if "/api.xro/" in url:
                seen.append(
                    (auth.removeprefix("Bearer "), read_in_another_connection(connection.pk))
                )
            return send(method, url, *args, **kwargs)

        session.request = request  # type: ignore[method-assign]
        return session

    monkeypatch.setattr(services, "new_session", spying_session)

    organisation = connect.api_client(connection).organisation()
    assert organisation["Name"] == "Demo Company (NZ)"

    refreshes = token_requests(xero_sandbox)
    assert [r["status"] for r in refreshes] == [200]
    saved = XeroConnection.objects.get(pk=connection.pk)
    assert saved.access_token != old_access and saved.refresh_token != old_refresh
    assert saved.access_token_is_fresh(timedelta(minutes=29))
    assert saved.token_generation == connection.token_generation + 1

    # The call went out with the new token, which was already committed, with its refresh token.
    assert seen, "The API call was not observed"
    used_token, (stored_access, stored_refresh) = seen[0]
    assert used_token == saved.access_token
    assert (stored_access, stored_refresh) == (saved.access_token, saved.refresh_token)

    # Encrypted at rest.
    raw_access, raw_refresh = raw_token_columns(connection.pk)
    assert saved.access_token not in raw_access and saved.refresh_token not in raw_refresh
    assert old_refresh not in raw_refresh

    # Fresh again: no further refresh.
    assert tokens.access_token(connection.pk) == saved.access_token
    assert len(token_requests(xero_sandbox)) == 1


def test_twenty_threads_at_expiry_make_one_refresh(connection, xero_sandbox) -> None:
    let_time_pass(xero_sandbox, connection, ALMOST_EXPIRED)
    workers = 20
    barrier = threading.Barrier(workers)
    results: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def work() -> None:
        try:
            barrier.wait(10)
            token = tokens.access_token(connection.pk)
            with lock:
                results.append(token)
        except BaseException as exc:  # reported below
            with lock:
                errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)

    if errors and db_connection.vendor == "sqlite" and db_connection.is_in_memory_db():
        locked = sum("database table is locked" in str(e) for e in errors)
        pytest.fail(
            f"{len(errors)} of {workers} threads failed ({locked} with 'database table is "
            "locked'). The test database is SQLite in memory with a shared cache, where a "
            "waiting writer gets SQLITE_LOCKED at once instead of waiting for the lock, so the "
            "refresh lock cannot be exercised. Give the SQLite test database a file "
            "(DATABASES['default']['TEST']['NAME']) to test what a deployment does. "
            f"Errors: {sorted({repr(e) for e in errors})}",
            pytrace=False,
        )
    assert not errors, [repr(e) for e in errors]
    refreshes = token_requests(xero_sandbox)
    assert [r["status"] for r in refreshes] == [200], f"{len(refreshes)} refreshes, not one"
    saved = XeroConnection.objects.get(pk=connection.pk)
    assert len(results) == workers
    assert set(results) == {saved.access_token}, f"{len(set(results))} different tokens handed out"
    assert saved.status == ConnectionStatus.CONNECTED
    assert xero_sandbox.api("GET", "/Organisation", saved.tenant_id, saved.access_token).ok


WORKER_SCRIPT = """
import hashlib
import sys
import time

import django

django.setup()
from xero_integration import tokens

time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
try:
    token = tokens.access_token(int(sys.argv[1]))
except Exception as exc:
    print("ERROR " + repr(exc))
    sys.exit(1)
print("TOKEN " + hashlib.sha256(token.encode()).hexdigest())
"""


def _database_url(settings_dict: dict[str, Any]) -> str:
    user = settings_dict.get("USER") or ""
    password = settings_dict.get("PASSWORD") or ""
    credentials = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = settings_dict.get("PORT") or "5432"
    return f"postgres://{credentials}{host}:{port}/{settings_dict['NAME']}"


@pytest.mark.postgres
def test_twenty_processes_at_expiry_make_one_refresh(
    connection, xero_sandbox, xero_app, settings
) -> None:
    if db_connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (set DATABASE_URL); row locks across processes")
    let_time_pass(xero_sandbox, connection, ALMOST_EXPIRED)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "crm_demo.settings",
        "DATABASE_URL": _database_url(db_connection.settings_dict),
        "XERO_CLIENT_ID": settings.XERO_CLIENT_ID,
        "XERO_CLIENT_SECRET": settings.XERO_CLIENT_SECRET,
        "XERO_LOGIN_URL": settings.XERO_LOGIN_URL,
        "XERO_IDENTITY_URL": settings.XERO_IDENTITY_URL,
        "XERO_API_URL": settings.XERO_API_URL,
        "XERO_ENCRYPTION_KEYS": ",".join(settings.XERO_ENCRYPTION_KEYS),
        "PYTHONPATH": str(ROOT),
    }
    start = time.time() + 8
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER_SCRIPT, str(connection.pk), str(start)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(20)
    ]
    outputs = [p.communicate(timeout=120) for p in processes]
    failures = [
        err or out for (out, err), p in zip(outputs, processes, strict=True) if p.returncode
    ]
    assert not failures, failures

    refreshes = token_requests(xero_sandbox)
    assert [r["status"] for r in refreshes] == [200], f"{len(refreshes)} refreshes, not one"
    saved = XeroConnection.objects.get(pk=connection.pk)
    expected = "TOKEN " + hashlib.sha256(saved.access_token.encode()).hexdigest()
    assert [out.strip().splitlines()[-1] for out, _ in outputs] == [expected] * 20


def test_invalid_grant_marks_the_connection_needs_reconnect(
    connection, xero_sandbox, xero_app, owner_client
) -> None:
    # The authorisation was revoked outside this CRM.
    revoked = requests.post(
        xero_sandbox.url + "/connect/revocation",
        data={"token": connection.refresh_token},
        auth=(xero_app.client_id, xero_app.client_secret),
        headers={"Accept": "application/json"},
        timeout=10,
    )
    assert revoked.status_code == 200, revoked.text
    let_time_pass(xero_sandbox, connection, 31 * 60)

    with pytest.raises(ConnectionNotReady):
        tokens.access_token(connection.pk)

    assert [r["status"] for r in token_requests(xero_sandbox)] == [400]
    saved = XeroConnection.objects.get(pk=connection.pk)
    assert saved.status == ConnectionStatus.NEEDS_RECONNECT
    assert "invalid_grant" in saved.status_reason
    assert SyncLog.objects.filter(connection=saved, action="needs_reconnect").exists()

    # Work for the connection now waits instead of calling Xero again.
    with pytest.raises(ConnectionNotReady):
        tokens.access_token(connection.pk)
    assert len(token_requests(xero_sandbox)) == 1

    page = owner_client.get(reverse("xero_integration:settings"))
    assert "Needs reconnect" in page.content.decode()
    assert "Reconnect to Xero" in page.content.decode()


def _every_text_cell() -> list[tuple[str, str]]:
    """(table, value) for every non-empty text-ish cell of every table of the database."""
    cells: list[tuple[str, str]] = []
    with db_connection.cursor() as cursor:
        for table in db_connection.introspection.table_names(cursor):
            cursor.execute(f"SELECT * FROM {db_connection.ops.quote_name(table)}")
            for row in cursor.fetchall():
                for value in row:
                    if isinstance(value, bytes | memoryview):
                        value = bytes(value).decode("latin-1")
                    if isinstance(value, str) and value:
                        cells.append((table, value))
    return cells


def test_tokens_never_appear_in_plain_text_in_the_database_or_the_logs(
    xero_app,
    organisation,
    owner_client,
    owner_account_key,
    xero_sandbox,
    connect_through_sandbox,
    caplog,
) -> None:
    caplog.set_level(logging.DEBUG)
    connect_through_sandbox(owner_client, organisations=["Demo Company (NZ)"])
    first = XeroConnection.objects.get(account_key=owner_account_key)
    secrets = {first.access_token, first.refresh_token}

    let_time_pass(xero_sandbox, first, ALMOST_EXPIRED)
    tokens.access_token(first.pk)
    refreshed = XeroConnection.objects.get(pk=first.pk)
    secrets |= {refreshed.access_token, refreshed.refresh_token}
    assert len(secrets) == 4 and all(secrets)

    raw_access, raw_refresh = raw_token_columns(first.pk)
    assert raw_access and raw_refresh
    assert refreshed.access_token not in raw_access
    assert refreshed.refresh_token not in raw_refresh

    leaks = [
        (table, secret[:12] + "…")
        for table, value in _every_text_cell()
        for secret in secrets
        if secret in value
    ]
    assert leaks == []
    assert caplog.records, "Nothing was logged: the log check would prove nothing"
    logged = [
        (record.name, secret[:12] + "…")
        for record in caplog.records
        for secret in secrets
        if secret in record.getMessage()
    ]
    assert logged == []
