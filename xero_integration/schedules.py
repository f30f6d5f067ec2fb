"""Periodic tasks, installed idempotently after every migrate."""

from __future__ import annotations

from typing import Any


def install_schedules(**kwargs: Any) -> None:
    """Create or update this app's django-q2 schedules (keyed by name)."""
    from django_q.models import Schedule

    Schedule.objects.update_or_create(
        name="xero_integration.keep_tokens_alive",
        defaults={
            "func": "xero_integration.tasks.keep_tokens_alive",
            "schedule_type": Schedule.DAILY,
            "repeats": -1,
        },
    )
