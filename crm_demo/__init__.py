"""A small but real CRM that installs xero_integration: the demo and the test host."""
