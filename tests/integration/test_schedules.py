"""The periodic tasks a deployment gets after migrate."""

from __future__ import annotations

import pytest
from django.utils.module_loading import import_string

from xero_integration.schedules import install_schedules

pytestmark = pytest.mark.django_db


def test_migrate_installs_every_periodic_task_once_and_each_can_be_called():
    from django_q.models import Schedule

    install_schedules()  # again, as every migrate does: nothing doubles
    schedules = {s.name: s for s in Schedule.objects.filter(name__startswith="xero_integration.")}
    assert set(schedules) == {
        "xero_integration.import_contact_changes",
        "xero_integration.process_webhook_events",
        "xero_integration.sweep_sync_jobs",
        "xero_integration.resume_contact_imports",
        "xero_integration.expire_connect_attempts",
        "xero_integration.keep_tokens_alive",
        "xero_integration.read_xero_changes",
        "xero_integration.check_drift",
        "xero_integration.send_alerts",
    }
    assert schedules["xero_integration.sweep_sync_jobs"].minutes == 1
    assert schedules["xero_integration.read_xero_changes"].minutes == 15
    assert schedules["xero_integration.keep_tokens_alive"].schedule_type == Schedule.DAILY
    assert schedules["xero_integration.check_drift"].schedule_type == Schedule.DAILY
    for schedule in schedules.values():
        assert callable(import_string(schedule.func))
        assert schedule.repeats == -1


def test_the_contact_import_interval_is_a_setting(settings):
    from django_q.models import Schedule

    settings.XERO_CONTACT_IMPORT_MINUTES = 30
    install_schedules()
    assert Schedule.objects.get(name="xero_integration.import_contact_changes").minutes == 30
