"""Periodic tasks, installed idempotently after every migrate."""

from __future__ import annotations

from typing import Any


def install_schedules(**kwargs: Any) -> None:
    """Create or update this app's django-q2 schedules (keyed by name)."""
    from django_q.models import Schedule

    from xero_integration import app_settings

    Schedule.objects.update_or_create(
        name="xero_integration.import_contact_changes",
        defaults={
            "func": "xero_integration.tasks.import_contact_changes",
            "schedule_type": Schedule.MINUTES,
            "minutes": app_settings.CONTACT_IMPORT_MINUTES,
            "repeats": -1,
        },
    )
    Schedule.objects.update_or_create(
        name="xero_integration.process_webhook_events",
        defaults={
            "func": "xero_integration.tasks.process_webhook_events",
            "schedule_type": Schedule.MINUTES,
            "minutes": 5,
            "repeats": -1,
        },
    )
    Schedule.objects.update_or_create(
        name="xero_integration.sweep_sync_jobs",
        defaults={
            "func": "xero_integration.tasks.sweep_sync_jobs",
            "schedule_type": Schedule.MINUTES,
            "minutes": 1,
            "repeats": -1,
        },
    )
    Schedule.objects.update_or_create(
        name="xero_integration.resume_contact_imports",
        defaults={
            "func": "xero_integration.tasks.resume_contact_imports",
            "schedule_type": Schedule.MINUTES,
            "minutes": 5,
            "repeats": -1,
        },
    )
    Schedule.objects.update_or_create(
        name="xero_integration.keep_tokens_alive",
        defaults={
            "func": "xero_integration.tasks.keep_tokens_alive",
            "schedule_type": Schedule.DAILY,
            "repeats": -1,
        },
    )
