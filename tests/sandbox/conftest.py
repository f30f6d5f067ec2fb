"""Fixtures of the sandbox's Accounting API tests: organisations connected to one app."""

from __future__ import annotations

import pytest

from tests.sandbox.test_accounting_rules import CLIENT_ID, CLIENT_SECRET, Org


@pytest.fixture
def make_org(xero_sandbox):
    """Create organisations on the fresh sandbox, all connected to one app."""
    xero_sandbox.register_app(CLIENT_ID, client_secret=CLIENT_SECRET)

    def make(**options) -> Org:
        created = xero_sandbox.create_organisation(**options)
        tokens = xero_sandbox.issue_tokens(CLIENT_ID, [created["tenant_id"]])
        return Org(
            xero_sandbox,
            created["tenant_id"],
            created.get("short_code", ""),
            tokens["access_token"],
        )

    return make


@pytest.fixture
def org(make_org) -> Org:
    """A multi-currency NZ organisation (the fixture's default)."""
    return make_org()
