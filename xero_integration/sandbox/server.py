"""The sandbox on HTTP: a threaded stdlib server on loopback."""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

from .core import Sandbox
from .messages import Headers, Request

log = logging.getLogger(__name__)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: SandboxHTTPServer
    error_content_type = "text/plain"

    def _dispatch(self) -> None:
        sandbox = self.server.sandbox
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path, _, query = self.path.partition("?")
        request = Request(
            method=self.command,
            path=unquote(path),
            query_string=query,
            headers=Headers(self.headers.items()),
            body=body,
        )
        response = sandbox.handle(request)
        if response.hold_seconds:
            sandbox.stopping.wait(response.hold_seconds)
        if response.drop_connection:
            # Apply-then-drop (lost response) or a timeout: close without answering.
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for key, value in response.headers.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _dispatch

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        log.debug("%s - %s", self.address_string(), format % args)


class SandboxHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        super().__init__(address, _Handler)
        host, port = self.server_address[:2]
        sandbox.base_url = f"http://{host}:{port}"


def serve(
    host: str = "127.0.0.1", port: int = 8765, state_file: str | Path | None = None, announce=print
) -> None:
    """Run the sandbox until interrupted (``python -m xero_integration.sandbox``)."""
    sandbox = Sandbox(state_file=state_file)
    server = SandboxHTTPServer((host, port), sandbox)
    announce(f"Xero sandbox on {sandbox.base_url}  (organisations: {sandbox.base_url}/_sandbox/)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.stopping.set()
        sandbox.save()
        server.server_close()


class BackgroundSandbox:
    """A sandbox served from a background thread on a free loopback port."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int | None = None,
        state_file: str | Path | None = None,
    ) -> None:
        self.sandbox = Sandbox(state_file=state_file, seed=seed)
        self.server = SandboxHTTPServer((host, port), self.sandbox)
        self.url = self.sandbox.base_url
        self._thread = threading.Thread(
            target=self.server.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
            name="xero-sandbox",
        )
        self._thread.start()

    def stop(self) -> None:
        self.sandbox.stopping.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)
