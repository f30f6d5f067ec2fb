"""Signals this app sends, for the host CRM and for the app's own receivers (receivers.py).

Receivers get the keyword arguments listed beside each signal. The signals about sync work are
sent once the database transaction that recorded the outcome has committed, so a receiver
reads what it is told about.
"""

from django.dispatch import Signal

#: A CRM account connected (or reconnected) to a Xero organisation. Arguments: ``connection``.
connected = Signal()

#: A CRM account disconnected from Xero in the CRM. Arguments: ``connection``.
disconnected = Signal()

#: A connection's status changed: connected, needs reconnecting, disconnected. Arguments:
#: ``connection`` (its ``status`` is the new one) and ``previous`` (the status before).
connection_changed = Signal()

#: A host invoice is in Xero as the CRM has it (a run finished its job). Arguments:
#: ``account_key``, ``host_model``, ``host_id``, ``xero_invoice_id`` (empty when the invoice
#: does not go to Xero, or was deleted in the CRM and is voided there).
invoice_synced = Signal()

#: A host invoice's sync failed and waits for someone (Xero refused it, or the CRM must fix
#: it). Arguments: ``account_key``, ``host_model``, ``host_id``, ``reason`` (a
#: ``SyncJob.Reason``), ``message`` (Xero's message or the app's).
invoice_sync_failed = Signal()

#: A contact import finished. Arguments: ``connection``, ``imported`` (contacts read from
#: Xero), ``linked`` (linked to contacts the CRM had), ``created`` (new in the CRM),
#: ``archived`` (archived or merged in Xero).
contacts_imported = Signal()

#: Sync jobs of an account became due outside a save (a contact's merge learnt, say): the
#: app's receiver queues their run. Arguments: ``account_key``, ``jobs`` (how many).
sync_jobs_due = Signal()
