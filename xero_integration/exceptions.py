"""Exceptions of xero_integration outside the wire layer."""

from django.core.exceptions import ImproperlyConfigured


class XeroIntegrationError(Exception):
    """Base of the app's runtime errors."""


class ConnectionNotReady(XeroIntegrationError):
    """The CRM account has no usable Xero connection (never connected, or needs reconnecting)."""


class ConfigurationError(ImproperlyConfigured):
    """A setting is missing or wrong. Kept outside XeroIntegrationError so nothing swallows it."""
