"""An emulator of Xero's OAuth 2.0 service and Accounting API for the demo and for tests.

It is written from Xero's documented behaviour, shares no code with the client in
``xero_integration.xero`` and needs no Django settings. See ``docs/sandbox.md``.
"""

from .core import Sandbox
from .server import BackgroundSandbox, SandboxHTTPServer, serve

__all__ = ["BackgroundSandbox", "Sandbox", "SandboxHTTPServer", "serve"]
