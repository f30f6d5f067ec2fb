"""Permissions for the admin actions, and a sync log that outlives its connection."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("xero_integration", "0008_job_claims"),
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
    ]
