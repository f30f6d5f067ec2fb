"""Background tasks (django-q2 entry points). They take ids only and hold no logic of their own."""

from __future__ import annotations

import logging

from django.db import transaction
from django_q.conf import Conf
from django_q.tasks import async_task

from xero_integration import connect, contacts, invoices, outbox, tokens

logger = logging.getLogger(__name__)

#: True while the broker refuses tasks: its failure is logged once, not once per save.
_broker_down = False


def dispatch(task_path: str, *args: object) -> None:
    """Queue a task once the current transaction commits (at once outside a transaction).

    The caller's data is committed by then, so a broker that cannot take the task must not
    turn the caller's save into an error: the task is left to the sweeper, which queues every
    due sync job again (``sweep_sync_jobs``), and the broker's failure is logged once.
    """
    # Run inline (django-q2's sync mode, as in tests), the task's own errors must surface.
    transaction.on_commit(lambda: _enqueue(task_path, args), robust=not Conf.SYNC)


def _enqueue(task_path: str, args: tuple[object, ...]) -> None:
    global _broker_down
    if Conf.SYNC:
        async_task(task_path, *args)
        return
    try:
        async_task(task_path, *args)
    except Exception:
        if not _broker_down:
            _broker_down = True
            logger.exception(
                "The task broker refused %s; the work stays queued in the database and the "
                "sweeper sends it once the broker is back.",
                task_path,
            )
        return
    if _broker_down:
        _broker_down = False
        logger.warning("The task broker takes tasks again.")


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
    from xero_integration import webhooks

    return webhooks.process()


def read_xero_changes() -> int:
    """Read invoice and payment changes made in Xero, for every connected organisation."""
    from xero_integration import readback

    return readback.read_changes_everywhere()


def check_drift() -> int:
    """Compare the invoices sent recently with Xero's copies (daily)."""
    from xero_integration import readback

    return readback.check_drift_everywhere()


def send_alerts() -> int:
    """Email account managers about a connection to reconnect or syncs failing (once each)."""
    from xero_integration import alerts

    return alerts.send_due()


def count_history(backfill_id: int) -> None:
    """Count the invoices an organisation lacks from before the connection (the dry run)."""
    from xero_integration import history

    history.count(backfill_id)


def send_history(backfill_id: int) -> None:
    """Send one batch of the invoices created before connecting, then queue the next."""
    from xero_integration import history

    history.send(backfill_id)
