"""The sync rules: what Xero must receive and what its answers mean. Pure functions where
possible; the functions that call Xero take a client and plain data."""

from xero_integration.rules import contacts, invoices, plan, preflight

__all__ = ["contacts", "invoices", "plan", "preflight"]
