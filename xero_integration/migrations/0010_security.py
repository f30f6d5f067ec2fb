"""Permissions for the admin actions, a sync log that outlives its connection, and one CRM
account per Xero organisation."""

import django.db.models.deletion
from django.db import migrations, models
from django.utils import timezone

LIVE = ["connected", "needs_reconnect"]


def disconnect_second_accounts_of_an_organisation(apps, schema_editor):
    """Before one organisation per CRM account is enforced: where several accounts share one
    organisation, the first to connect keeps it and the others are disconnected in the CRM
    only (in Xero they share one connection, which the first still uses)."""
    XeroConnection = apps.get_model("xero_integration", "XeroConnection")
    SyncLog = apps.get_model("xero_integration", "SyncLog")
    rows = (
        XeroConnection.objects.filter(status__in=LIVE)
        .exclude(tenant_id="")
        .order_by("connected_at", "pk")
        .values_list("pk", "account_key", "tenant_id", "tenant_name")
    )
    seen: set[str] = set()
    now = timezone.now()
    for pk, account_key, tenant_id, tenant_name in rows:
        if tenant_id not in seen:
            seen.add(tenant_id)
            continue
        reason = (
            f"{tenant_name or 'This organisation'} is connected to another account in this CRM, "
            "and a Xero organisation can be connected to one CRM account only. Connect another "
            "organisation."
        )
        XeroConnection.objects.filter(pk=pk).update(
            status="disconnected",
            status_reason=reason,
            disconnected_at=now,
            access_token="",
            refresh_token="",
            access_token_expires_at=None,
        )
        SyncLog.objects.create(
            connection_id=pk,
            account_key=account_key,
            action="disconnect",
            outcome="info",
            message=reason,
        )


class Migration(migrations.Migration):
    dependencies = [
        ("xero_integration", "0009_organisation_scoped_links"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="invoicelink",
            options={
                "permissions": [("sync_invoicelink", "Can sync invoices to Xero now")],
                "verbose_name": "Xero invoice link",
            },
        ),
        migrations.AlterModelOptions(
            name="syncjob",
            options={
                "permissions": [
                    ("retry_syncjob", "Can retry sync jobs"),
                    ("resolve_syncjob", "Can mark sync jobs resolved"),
                ],
                "verbose_name": "sync job",
            },
        ),
        migrations.AlterModelOptions(
            name="xeroconnection",
            options={
                "permissions": [
                    ("import_contacts_xeroconnection", "Can import contact changes from Xero now"),
                    ("disconnect_xeroconnection", "Can disconnect a CRM account from Xero"),
                ],
                "verbose_name": "Xero connection",
            },
        ),
        migrations.AlterField(
            model_name="synclog",
            name="connection",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="logs",
                to="xero_integration.xeroconnection",
            ),
        ),
        migrations.RunPython(
            disconnect_second_accounts_of_an_organisation, migrations.RunPython.noop
        ),
        migrations.AddConstraint(
            model_name="xeroconnection",
            constraint=models.UniqueConstraint(
                condition=models.Q(("status__in", ["connected", "needs_reconnect"]))
                & ~models.Q(("tenant_id", "")),
                fields=("tenant_id",),
                name="xero_connection_one_account_per_tenant",
            ),
        ),
    ]
