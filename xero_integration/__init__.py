"""Connect a Django CRM to Xero: contacts in; invoices, taxes, currencies and payments out."""

__version__ = "0.1.0"
