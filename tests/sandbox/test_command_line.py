"""The sandbox runs on its own, and through manage.py, without the test fixture."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-m", "xero_integration.sandbox"],
        [sys.executable, "manage.py", "xero_sandbox"],
    ],
    ids=["python-m", "manage.py"],
)
def test_the_sandbox_serves_from_the_command_line(command, tmp_path):
    port = free_port()
    state = tmp_path / "state.json"
    process = subprocess.Popen(
        [*command, "--host", "127.0.0.1", "--port", str(port), "--state", str(state)],
        cwd=BASE_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        page = b""
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_sandbox/", timeout=1) as r:
                    page = r.read()
                break
            except OSError:
                time.sleep(0.2)
        assert b"Organisations" in page
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/_sandbox/organisations",
            data=b'{"name": "CLI Ltd", "country_code": "NZ", "base_currency": "NZD"}',
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as created:
            assert created.status == 201
    finally:
        process.terminate()
        output = process.communicate(timeout=10)[0].decode()
    assert f"http://127.0.0.1:{port}" in output
    assert state.exists()  # organisations are kept for the next start
