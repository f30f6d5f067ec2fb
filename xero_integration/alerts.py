"""Emails to a CRM account's managers when its Xero sync needs them.

One email when the connection needs reconnecting, one when invoices have failed to reach Xero
for ``XERO_FAILING_MINUTES`` (an hour): each once, not per failure, until its trouble is over.
Accounts that chose it also get a daily digest of failed syncs. A periodic task checks every
few minutes; the emails go through Django's email framework and link to the settings page.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable

from django.conf import settings
from django.core.mail import send_mail
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation

from xero_integration import app_settings, health
from xero_integration.adapters import get_adapter
from xero_integration.models import (
    AccountAlerts,
    ConnectionStatus,
    SyncJob,
    SyncLog,
    XeroConnection,
)

logger = logging.getLogger(__name__)

DIGEST_EVERY = datetime.timedelta(hours=24)
#: How many failed invoices an email lists by number (the settings page has the rest).
LISTED = 10


def send_due(now: datetime.datetime | None = None) -> int:
    """Send every alert that is due, for every connected (or to be reconnected) account;
    returns how many emails went."""
    now = now or timezone.now()
    sent = 0
    for connection in XeroConnection.objects.exclude(status=ConnectionStatus.DISCONNECTED):
        alerts, _ = AccountAlerts.objects.get_or_create(account_key=connection.account_key)
        try:
            sent += _reconnect_alert(connection, alerts, now)
            sent += _failing_alert(connection, alerts, now)
            sent += _digest(connection, alerts, now)
        except Exception:  # one account's bad address must not stop the others' alerts
            logger.exception("Xero alerts of account %s could not be sent", connection.account_key)
    return sent


def _reconnect_alert(
    connection: XeroConnection, alerts: AccountAlerts, now: datetime.datetime
) -> int:
    if connection.status != ConnectionStatus.NEEDS_RECONNECT:
        _clear(alerts, "reconnect_alerted_at")
        return 0
    return _once(
        alerts,
        "reconnect_alerted_at",
        now,
        lambda: _email(
            connection,
            "reconnect",
            {"reason": connection.status_reason},
        ),
    )


def troubled_jobs(connection: XeroConnection, now: datetime.datetime) -> list[SyncJob]:
    """The account's failed jobs and those that keep failing, oldest first (not those that
    only wait for the default accounts: to users they wait for set-up)."""
    return [
        job
        for job in health.troubled(
            SyncJob.objects.filter(account_key=connection.account_key), now
        ).order_by("updated_at", "pk")
        if not health.awaits_default_accounts(job, connection)
    ]


def _failing_alert(
    connection: XeroConnection, alerts: AccountAlerts, now: datetime.datetime
) -> int:
    troubled = troubled_jobs(connection, now)
    if not troubled:
        _clear(alerts, "failing_alerted_at")
        return 0
    cutoff = now - datetime.timedelta(minutes=app_settings.FAILING_MINUTES)
    failing = [job for job in troubled if (job.failing_since or job.updated_at) <= cutoff]
    if not failing:
        return 0
    return _once(
        alerts,
        "failing_alerted_at",
        now,
        lambda: _email(connection, "failing", _listed(failing, connection, now)),
    )


def _digest(connection: XeroConnection, alerts: AccountAlerts, now: datetime.datetime) -> int:
    if not alerts.daily_digest:
        return 0
    if alerts.digest_sent_at and alerts.digest_sent_at > now - DIGEST_EVERY:
        return 0
    failed = troubled_jobs(connection, now)
    if not failed:
        return 0
    claimed = AccountAlerts.objects.filter(pk=alerts.pk, digest_sent_at=alerts.digest_sent_at)
    if not claimed.update(digest_sent_at=now):
        return 0  # another run sent it
    try:
        _email(connection, "digest", _listed(failed, connection, now))
    except Exception:
        AccountAlerts.objects.filter(pk=alerts.pk).update(digest_sent_at=alerts.digest_sent_at)
        raise
    return 1


def _listed(jobs: list[SyncJob], connection: XeroConnection, now: datetime.datetime) -> dict:
    return {
        "count": len(jobs),
        "invoices": [
            (job.number or job.host_id, health.invoice_sync(job, None, connection, now).sentence)
            for job in jobs[:LISTED]
        ],
        "more": max(0, len(jobs) - LISTED),
    }


def _once(
    alerts: AccountAlerts, field: str, now: datetime.datetime, send: Callable[[], int]
) -> int:
    """Send unless this alert was sent already during the same trouble; only one of several
    concurrent runs sends it."""
    if getattr(alerts, field) is not None:
        return 0
    if not AccountAlerts.objects.filter(pk=alerts.pk, **{field: None}).update(**{field: now}):
        return 0
    try:
        sent = send()
    except Exception:
        AccountAlerts.objects.filter(pk=alerts.pk).update(**{field: None})
        raise
    if not sent:
        # Nobody to tell yet: alert once there is someone.
        AccountAlerts.objects.filter(pk=alerts.pk).update(**{field: None})
    return sent


def _clear(alerts: AccountAlerts, field: str) -> None:
    if getattr(alerts, field) is not None:
        AccountAlerts.objects.filter(pk=alerts.pk).update(**{field: None})
        setattr(alerts, field, None)


def settings_link() -> str:
    """The settings page's address for an email: absolute with ``XERO_SITE_URL``, else the
    path alone."""
    return app_settings.SITE_URL + reverse("xero_integration:settings")


def _email(connection: XeroConnection, kind: str, extra: dict) -> int:
    """Render and send one alert to the account's managers; how many emails went (0 or 1)."""
    adapter = get_adapter()
    recipients = sorted({address for address in adapter.alert_recipients(connection.account_key)})
    if not recipients:
        logger.warning(
            "No one to send the Xero %s alert of account %s to (adapter.alert_recipients)",
            kind,
            connection.account_key,
        )
        return 0
    context = {
        "connection": connection,
        "account": adapter.account_label(connection.account_key),
        "link": settings_link(),
        "absolute": bool(app_settings.SITE_URL),
        **extra,
    }
    with translation.override(settings.LANGUAGE_CODE):
        subject = " ".join(
            render_to_string(f"xero_integration/email/{kind}_subject.txt", context).split()
        )
        body = render_to_string(f"xero_integration/email/{kind}.txt", context)
    send_mail(subject, body, None, recipients)
    SyncLog.objects.create(
        connection=connection,
        account_key=connection.account_key,
        action="alert",
        outcome=SyncLog.Outcome.INFO,
        message=f"{subject} (emailed to {', '.join(recipients)})",
    )
    return 1


def set_daily_digest(account_key: str, enabled: bool) -> AccountAlerts:
    """Turn the daily digest of failed syncs on or off for an account."""
    alerts, _ = AccountAlerts.objects.get_or_create(account_key=account_key)
    if alerts.daily_digest != enabled:
        AccountAlerts.objects.filter(pk=alerts.pk).update(daily_digest=enabled)
        alerts.daily_digest = enabled
    return alerts
