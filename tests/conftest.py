"""Fixtures shared by the whole suite."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from crm_demo.crm.models import Membership
from tests.factories import PASSWORD, MembershipFactory

pytest_plugins = ["xero_integration.testing.pytest_plugin"]
# The example host CRM has settings of its own: its suite runs from the built wheel, in a
# virtualenv of its own (tests/packaging/test_host_project.py).
collect_ignore = ["hostproject"]

TEST_ENCRYPTION_KEY = Fernet.generate_key().decode()


@pytest.fixture(autouse=True)
def _encryption_key(settings) -> None:
    """Tokens in tests are encrypted with a real key, as in production."""
    settings.XERO_ENCRYPTION_KEYS = [TEST_ENCRYPTION_KEY]


@pytest.fixture(autouse=True)
def _fresh_rate_limiter() -> None:
    """Each test starts with Xero budgets untouched by the tests before it."""
    from xero_integration import services

    services.reset_limiter()


@pytest.fixture
def owner(db) -> Membership:
    """The owner of a CRM account."""
    return MembershipFactory(role=Membership.Role.OWNER)


@pytest.fixture
def owner_account_key(owner: Membership) -> str:
    return str(owner.account_id)


@pytest.fixture
def owner_credentials(owner: Membership) -> tuple[str, str]:
    """Email and password of the owner, for signing in through the login form."""
    return owner.user.email, PASSWORD


@pytest.fixture
def owner_client(client, owner: Membership):
    """A test client signed in as the account's owner."""
    client.force_login(owner.user)
    return client


@pytest.fixture
def member_client(owner: Membership, client_factory):
    """Signed in as a plain member (not an admin) of the owner's account."""
    membership = MembershipFactory(account=owner.account, role=Membership.Role.MEMBER)
    return client_factory(membership.user)


@pytest.fixture
def other_account_client(owner: Membership, client_factory):
    """Signed in as the owner of another CRM account."""
    return client_factory(MembershipFactory(role=Membership.Role.OWNER).user)


@pytest.fixture
def client_factory():
    """Make independent signed-in test clients."""
    from django.test import Client

    def make(user) -> Client:
        new_client = Client()
        new_client.force_login(user)
        return new_client

    return make
