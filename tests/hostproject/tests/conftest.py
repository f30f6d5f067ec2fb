import pytest
from django.contrib.auth import get_user_model

from mycrm.models import Organisation


@pytest.fixture
def organisation(transactional_db) -> Organisation:
    return Organisation.objects.create(name="Harbour Supplies Ltd")


@pytest.fixture
def owner(organisation: Organisation):
    user = get_user_model().objects.create_user("owner", password="not-used-in-tests")
    organisation.members.add(user)
    return user


@pytest.fixture
def owner_client(client, owner):
    """A test client signed in as a member of the organisation."""
    client.force_login(owner)
    return client
