"""The soak's moving parts: a broker (redis-server) of its own that can be stopped and started
again, and worker clusters (``manage.py qcluster``) whose processes can be killed."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import redis

BASE_DIR = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivateRedis:
    """A redis-server on a free loopback port, nothing saved to disk: the broker the soak stops
    and starts again (the shared Redis keeps the rate limiter)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url, socket_timeout=1)
        for _ in range(100):
            try:
                if client.ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.1)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        """The broker dies (kill -9): its queue and markers go with it."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return sorted(int(child) for child in text.split())


def _waiting_on_pipe(pid: int) -> bool:
    """True when the process sleeps reading a pipe: an idle worker in the task queue's get(),
    holding the queue's reader lock."""
    try:
        return "pipe" in Path(f"/proc/{pid}/wchan").read_text()
    except OSError:
        return False


# django-q2's log lines: which worker process runs which task.
_READY = re.compile(r"(Process-\w+) ready for work at (\d+)")
_PROCESSING = re.compile(r"(Process-\w+) processing ([\w-]+) '([\w.]+)'")
_FINISHED = re.compile(r"(?:Processed|Failed) '[\w.]+' \(([\w-]+)\)")


class Cluster:
    """One ``manage.py qcluster`` (a sentinel with its workers, monitor and pusher) in a
    process group of its own, its log in ``log_path``."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", "qcluster"],
                cwd=BASE_DIR,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """kill -9 of the whole cluster: the main process, its sentinel and every worker."""
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def busy_workers(self, task: str = "") -> list[int]:
        """The pids of this cluster's live workers that run a task (``task``, if given), as
        its log tells."""
        assert self.process is not None
        text = self.log()
        pids = {name: int(pid) for name, pid in _READY.findall(text)}
        finished = set(_FINISHED.findall(text))
        running: dict[str, str] = {}  # worker -> the task it started last, unfinished
        for name, task_name, func in _PROCESSING.findall(text):
            running[name] = func if task_name not in finished else ""
        for name, func in list(running.items()):
            if not func or (task and func != task):
                del running[name]
        live = {child for sentinel in _children(self.process.pid) for child in _children(sentinel)}
        return [pids[name] for name in running if pids.get(name) in live]

    def kill_worker_running(self, task: str) -> int | None:
        """kill -9 of a worker in the middle of ``task``; its sentinel starts another. Never an
        idle one: that one holds the task queue's reader lock, and multiprocessing would never
        release it (the cluster's other workers would wait for ever). Returns its pid."""
        for pid in self.busy_workers(task):
            if _waiting_on_pipe(pid):
                continue
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
            return pid
        return None

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):  # whatever the cluster left behind
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")
