"""``python manage.py xero_backfill [--account KEY] [--since YYYY-MM-DD] [--dry-run]``"""

from __future__ import annotations

import datetime
import sys

from django.core.management.base import BaseCommand, CommandError

from xero_integration import backfill
from xero_integration.models import ConnectionStatus, XeroConnection


class Command(BaseCommand):
    help = (
        "Send the CRM's existing invoices to Xero in batches of 50, paced to the organisation's "
        "rate limits. Stop it any time (Ctrl-C) and run it again to continue."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--account", action="append", help="CRM account key (repeatable)")
        parser.add_argument("--since", help="only invoices issued on or after YYYY-MM-DD")
        parser.add_argument(
            "--dry-run", action="store_true", help="print what would be sent and the calls"
        )

    def handle(self, *args, **options) -> None:
        since = None
        if options["since"]:
            try:
                since = datetime.date.fromisoformat(options["since"])
            except ValueError:
                raise CommandError("--since must be a date, YYYY-MM-DD.") from None
        connections = XeroConnection.objects.filter(status=ConnectionStatus.CONNECTED)
        if options["account"]:
            connections = connections.filter(account_key__in=options["account"])
            missing = set(options["account"]) - set(
                connections.values_list("account_key", flat=True)
            )
            if missing:
                raise CommandError(
                    f"Not connected to Xero: {', '.join(sorted(missing))} (connect it first)."
                )
        if not connections.exists():
            raise CommandError("No CRM account is connected to Xero.")
        for connection in connections:
            try:
                self.backfill(connection, since, options["dry_run"])
            except KeyboardInterrupt:
                self.stdout.write("\nStopped. Run the command again to continue where it stopped.")
                sys.exit(130)

    def backfill(self, connection: XeroConnection, since, dry_run: bool) -> None:
        plan = backfill.plan(connection, since)
        self.stdout.write(
            f"{connection.tenant_name}: {len(plan.invoices):,} invoices to send "
            f"({plan.payments:,} payments, {len(plan.new_contacts):,} contacts not yet in Xero, "
            f"{len(plan.unmapped_taxes):,} taxes to map, currencies to add: "
            f"{', '.join(sorted(plan.currencies)) or 'none'}); about {plan.calls:,} calls to Xero."
        )
        if dry_run:
            for entry in plan.invoices:
                self.stdout.write(
                    f"  {entry['number']:<20} {entry['contact'][:30]:<30} "
                    f"{entry['currency']} {backfill.money(entry['total']):>14} {entry['status']}"
                    + (f" + {entry['payments']} payment(s)" if entry["payments"] else "")
                )
            self.stdout.write("Dry run: nothing was sent.")
            return
        queued = backfill.queue(connection, plan)
        backfill.log(connection, f"Backfill queued {queued:,} invoices.")
        backfill.drain(connection, self.progress)
        self.stdout.write("")
        left = backfill.remaining(connection)
        message = f"Backfill finished: {queued:,} invoices queued, {left:,} still waiting."
        backfill.log(connection, message)
        self.stdout.write(message)

    def progress(self, done: int, total: int, note: str) -> None:
        width = 30
        filled = int(width * done / total) if total else width
        bar = "#" * filled + "-" * (width - filled)
        self.stdout.write(f"\r[{bar}] {done:,}/{total:,} {note}".ljust(100), ending="")
        self.stdout.flush()
