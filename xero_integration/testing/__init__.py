"""Test helpers for projects that install ``xero_integration``.

The pytest plugin (registered when the package is installed) provides ``xero_sandbox``, a
fresh Xero sandbox over HTTP for each test, and ``xero_connect``, a CRM account connected to
it through the consent screen with the app's tasks run inline. ``host`` holds the same steps
as plain functions for tests written without pytest.
"""

from .host import (
    TEST_ENCRYPTION_KEY,
    BackgroundTaskFailed,
    ConnectedOrganisation,
    ConnectFailed,
    InlineTasks,
    connect,
    sandbox_settings,
    tasks_run_inline,
)
from .sandbox_server import DEFAULT_SCOPE, SandboxError, SandboxServer

__all__ = [
    "DEFAULT_SCOPE",
    "TEST_ENCRYPTION_KEY",
    "BackgroundTaskFailed",
    "ConnectFailed",
    "ConnectedOrganisation",
    "InlineTasks",
    "SandboxError",
    "SandboxServer",
    "connect",
    "sandbox_settings",
    "tasks_run_inline",
]
