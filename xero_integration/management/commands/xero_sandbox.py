"""``python manage.py xero_sandbox``: the same as ``python -m xero_integration.sandbox``."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from xero_integration.sandbox import serve


class Command(BaseCommand):
    help = "Run the Xero sandbox (an emulator of Xero's OAuth and Accounting API) on loopback."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8765)
        parser.add_argument("--state", default=None, help="file that keeps state across restarts")

    def handle(self, *args, **options) -> None:
        serve(options["host"], options["port"], options["state"], announce=self.stdout.write)
