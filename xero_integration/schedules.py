"""Periodic tasks, installed idempotently after every migrate."""

from __future__ import annotations

from typing import Any


def install_schedules(**kwargs: Any) -> None:
    """Create or update this app's django-q2 schedules (keyed by name)."""
    from django_q.models import Schedule

    from xero_integration import app_settings

    every_minutes = {
        # Contact changes in Xero, read with If-Modified-Since.
        "import_contact_changes": app_settings.CONTACT_IMPORT_MINUTES,
        # Webhook events whose processing waited (Xero unavailable, a reconnect).
        "process_webhook_events": 5,
        # Sync jobs whose task or worker was lost, or whose wait is over.
        "sweep_sync_jobs": 1,
        # Contact imports that wait for Xero or whose worker stopped.
        "resume_contact_imports": 5,
        # Invoice and payment changes made in Xero (the safety net for lost webhooks).
        "read_xero_changes": app_settings.CHANGES_MINUTES,
        # Consents abandoned at "choose an organisation": their tokens and connections let go.
        "expire_connect_attempts": 15,
        # Emails to account managers: a connection to reconnect, syncs failing, the digest.
        "send_alerts": 5,
    }
    for task, minutes in every_minutes.items():
        Schedule.objects.update_or_create(
            name=f"xero_integration.{task}",
            defaults={
                "func": f"xero_integration.tasks.{task}",
                "schedule_type": Schedule.MINUTES,
                "minutes": minutes,
                "repeats": -1,
            },
        )
    # Compare the invoices sent in the last XERO_DRIFT_DAYS with Xero's copies.
    Schedule.objects.update_or_create(
        name="xero_integration.check_drift",
        defaults={
            "func": "xero_integration.tasks.check_drift",
            "schedule_type": Schedule.DAILY,
            "repeats": -1,
        },
    )
    # Refresh tokens unused for 30 days, before Xero's 60-day expiry.
    Schedule.objects.update_or_create(
        name="xero_integration.keep_tokens_alive",
        defaults={
            "func": "xero_integration.tasks.keep_tokens_alive",
            "schedule_type": Schedule.DAILY,
            "repeats": -1,
        },
    )
