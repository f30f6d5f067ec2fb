"""Signals this app sends. Receivers get the arguments listed beside each signal."""

from django.dispatch import Signal

#: A CRM account connected (or reconnected) to a Xero organisation. Arguments: connection.
connected = Signal()

#: A CRM account disconnected from Xero in the CRM. Arguments: connection.
disconnected = Signal()
