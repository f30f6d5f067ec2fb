"""The demo CRM: accounts, contacts, taxes, invoices and payments."""
