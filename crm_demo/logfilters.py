"""Log filters of the demo CRM."""

from __future__ import annotations

import logging

#: The path of the CRM's Xero webhook endpoint (crm_demo/urls.py mounts the app here).
WEBHOOK_PATH = "/integrations/xero/webhooks/"


class HideIntentToReceive(logging.Filter):
    """Leaves out the 401 lines of the Xero webhook endpoint.

    When webhooks are registered, Xero's "Intent to Receive" check posts deliberately
    mis-signed events, and the CRM must refuse each with 401. Django logs every refusal as
    "Unauthorized: /integrations/xero/webhooks/", which reads like a failure of the demo; the
    demo's start explains the check instead.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            getattr(record, "status_code", None) == 401 and WEBHOOK_PATH in record.getMessage()
        )
