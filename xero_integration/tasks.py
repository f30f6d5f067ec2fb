"""The app's periodic tasks (django-q2 schedules, see schedules.py) and the names of tasks
queued before their code moved: each is a thin entry point holding no logic of its own.

The modules queue their own functions through ``taskqueue``; nothing imports this module, so
it may import them all.
"""

from __future__ import annotations

from xero_integration import (
    alerts,
    connect,
    contacts,
    history,
    invoices,
    outbox,
    readback,
    tokens,
    webhooks,
)


def exchange_code(attempt_id: str) -> None:
    """Finish a trip through Xero's consent screen."""
    connect.exchange_code(attempt_id)


def finish_connect(attempt_id: str) -> None:
    """Keep the organisation the user chose."""
    connect.finish(attempt_id)


def expire_connect_attempts() -> int:
    """Cancel consents left unfinished, letting go of what they hold in Xero."""
    return connect.expire_stale_attempts()


def load_reference_data(connection_id: int) -> None:
    """Refresh the organisation's details and accounts."""
    connect.load_reference_data(connection_id)


def disconnect_in_xero(connection_id: int, token_generation: int) -> None:
    """Tell Xero about a disconnect made in the CRM."""
    connect.disconnect_in_xero(connection_id, token_generation)


def keep_tokens_alive() -> int:
    """Refresh tokens unused for 30 days, before Xero's 60-day expiry."""
    return tokens.keep_tokens_alive()


def import_contacts(import_id: int) -> None:
    """Run (or resume) a contact import."""
    contacts.run_import(import_id)


def import_contact_changes() -> int:
    """Read contact changes from Xero for every connected organisation."""
    return contacts.import_changes_everywhere()


def resume_contact_imports() -> int:
    """Resume imports that waited for Xero or whose worker stopped."""
    return contacts.resume_imports()


def push_invoice(account_key: str, host_model: str, host_id: str) -> None:
    """Bring one host invoice (and its payments) up to date in Xero."""
    invoices.run(account_key, host_model, host_id)


def sweep_sync_jobs() -> int:
    """Re-dispatch sync jobs that are due but not queued (broker down, worker killed)."""
    return outbox.sweep()


def process_webhook_events() -> int:
    """Act on the CONTACT and INVOICE events Xero's webhooks delivered."""
    return webhooks.process()


def read_xero_changes() -> int:
    """Read invoice and payment changes made in Xero, for every connected organisation."""
    return readback.read_changes_everywhere()


def check_drift() -> int:
    """Compare the invoices sent recently with Xero's copies (daily)."""
    return readback.check_drift_everywhere()


def send_alerts() -> int:
    """Email account managers about a connection to reconnect or syncs failing (once each)."""
    return alerts.send_due()


def count_history(backfill_id: int) -> None:
    """Count the invoices an organisation lacks from before the connection (the dry run)."""
    history.count(backfill_id)


def send_history(backfill_id: int) -> None:
    """Send one batch of the invoices created before connecting, then queue the next."""
    history.send(backfill_id)
