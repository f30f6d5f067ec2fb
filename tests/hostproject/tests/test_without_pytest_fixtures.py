"""The test kit without pytest's fixtures: a Django TransactionTestCase."""

from django.contrib.auth import get_user_model
from django.test import TransactionTestCase, override_settings
from xero_integration.testing import (
    TEST_ENCRYPTION_KEY,
    SandboxServer,
    connect,
    sandbox_settings,
    tasks_run_inline,
)

from mycrm.models import Organisation


class ConnectingTests(TransactionTestCase):
    def test_an_owner_connects_and_the_contacts_become_customers(self):
        user = get_user_model().objects.create_user("owner")
        organisation = Organisation.objects.create(name="Harbour Supplies Ltd")
        organisation.members.add(user)
        self.client.force_login(user)
        with (
            SandboxServer() as sandbox,
            override_settings(
                XERO_ENCRYPTION_KEYS=[TEST_ENCRYPTION_KEY], **sandbox_settings(sandbox)
            ),
            tasks_run_inline() as tasks,
        ):
            xero = connect(self.client, sandbox, contacts=2)
            # Inside the block: the connection's tokens need the test key to be read.
            self.assertEqual(xero.connection.status, "connected")
        tasks.raise_failures()
        self.assertEqual(organisation.customers.count(), 2)
