"""Test helpers for projects that install ``xero_integration``: a pytest plugin whose
``xero_sandbox`` fixture serves a fresh Xero sandbox over HTTP for each test."""

from .sandbox_server import DEFAULT_SCOPE, SandboxError, SandboxServer

__all__ = ["DEFAULT_SCOPE", "SandboxError", "SandboxServer"]
