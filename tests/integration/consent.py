"""The consent-page driver now ships with the package, for host CRMs' tests too."""

from xero_integration.testing.consent import ConsentPage, Field, Form, consent, fetch, parse_forms

__all__ = ["ConsentPage", "Field", "Form", "consent", "fetch", "parse_forms"]
