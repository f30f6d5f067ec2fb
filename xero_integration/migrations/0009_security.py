"""Permissions for the admin actions."""

from django.db import migrations


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
                ],
                "verbose_name": "Xero connection",
            },
        ),
    ]
