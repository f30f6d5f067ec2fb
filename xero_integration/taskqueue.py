"""Queueing the app's background tasks: after the caller's transaction commits, through one
broker connection per process, and never as an error of the caller's.

It imports nothing of the app, so any module may queue its own functions without an import
cycle. A task is a module-level function; it is queued by its dotted path.
"""

from __future__ import annotations

import heapq
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from django.db import transaction
from django_q.conf import Conf
from django_q.tasks import async_task

logger = logging.getLogger(__name__)

Task = Callable[..., Any] | str

#: True while the broker refuses tasks: its failure is logged once, not once per save.
_broker_down = False
_broker_lock = threading.Lock()
_broker: Any = None


def task_path(task: Task) -> str:
    """The dotted path django-q2 runs a task by."""
    if isinstance(task, str):
        return task
    return f"{task.__module__}.{task.__qualname__}"


def dispatch(task: Task, *args: object) -> None:
    """Queue ``task(*args)`` once the current transaction commits (at once outside one).

    The caller's data is committed by then, so a broker that cannot take the task must not
    turn the caller's save into an error: the work stays recorded in the database (a sync job,
    an import) and the schedules queue it again (``sweep_sync_jobs``...). Run inline (django-q2's
    sync mode, as in tests), the task's own errors surface.
    """
    path = task_path(task)
    transaction.on_commit(lambda: send(path, *args), robust=not Conf.SYNC)


def dispatch_unique(task: Task, *args: object) -> None:
    """Queue ``task(*args)`` once the current transaction commits (at once outside one), once
    per transaction however often asked, and not at all while the same task with the same
    arguments still waits in the broker's queue: a busy account has one run queued, not one
    per save, so the other accounts' runs are not stuck behind its pile. The task calls
    ``started`` first, so a change made while it runs queues the next run.

    Tracked on a Redis broker (a marker set and the task pushed in one round trip); any other
    broker queues every request."""
    key = (task_path(task), args)
    connection = transaction.get_connection()
    if not connection.in_atomic_block:
        send(key[0], *args, unique=True)
        return
    for _savepoints, hook, _robust in connection.run_on_commit:
        if isinstance(hook, _Once) and hook.key == key:
            return
    transaction.on_commit(_Once(key, unique=True), robust=not Conf.SYNC)


def started(task: Task, *args: object) -> None:
    """Called by a task queued with ``dispatch_unique`` when it starts: the next request
    queues it again."""
    if Conf.SYNC:
        return
    queue = broker()
    redis = _redis_of(queue)
    if redis is None:
        return
    try:
        redis.delete(_marker(queue.list_key, task_path(task), args))
    except Exception:  # the marker expires by itself; the sweeper queues what is due
        logger.warning("Could not clear the queued marker of %s", task_path(task))


def dispatch_later(task: Task, *args: object, seconds: float) -> None:
    """Queue ``task(*args)`` (as ``dispatch_unique``) in ``seconds``, from a timer in this
    process: a worker hands work back for when Xero's budget returns instead of sleeping.
    Should the process stop first, the sweeper queues the work (it runs every minute)."""
    if Conf.SYNC:
        return  # run inline, nothing runs in the background: the caller's sweep does it
    _waker().add(time.monotonic() + max(0.0, seconds), task_path(task), args)


class _Once:
    """An on-commit hook that knows what it queues, so a second request can find it (a hook
    registered in a savepoint that rolls back goes with it, and the next request adds one)."""

    def __init__(self, key: tuple[str, tuple[object, ...]], unique: bool = False) -> None:
        self.key = key
        self.unique = unique

    def __call__(self) -> None:
        path, args = self.key
        send(path, *args, unique=self.unique)


#: Tasks queued by a task that runs inline (sync mode): run after it, in order, rather than
#: inside it, as a worker would (and without one nested call per chained run).
_inline = threading.local()


def send(path: str, *args: object, unique: bool = False) -> None:
    """Hand the task to the broker now (or run it, in sync mode). ``unique``: skip it while
    the same task waits in a Redis broker's queue (see ``dispatch_unique``)."""
    global _broker_down
    if Conf.SYNC:
        _run_inline(path, args)
        return
    try:
        queue = broker()
        redis = _redis_of(queue) if unique else None
        if redis is not None:
            _UniqueEnqueue(queue, redis, _marker(queue.list_key, path, args)).send(path, *args)
        else:
            async_task(path, *args, broker=queue)
    except Exception:
        forget_broker()
        if not _broker_down:
            _broker_down = True
            logger.exception(
                "The task broker refused %s; the work stays queued in the database and the "
                "sweeper sends it once the broker is back.",
                path,
            )
        return
    if _broker_down:
        _broker_down = False
        logger.warning("The task broker takes tasks again.")


def broker() -> Any:
    """The process's broker connection, made once: a new one per task costs a connection
    (to Redis, say) on every save."""
    global _broker
    with _broker_lock:
        if _broker is None:
            from django_q.brokers import get_broker

            _broker = get_broker()
        return _broker


def forget_broker() -> None:
    """Drop the broker connection (it failed, or a test changes the broker)."""
    global _broker
    with _broker_lock:
        _broker = None


def _run_inline(path: str, args: tuple[object, ...]) -> None:
    pending = getattr(_inline, "pending", None)
    if pending is not None:
        pending.append((path, args))
        return
    _inline.pending = [(path, args)]
    try:
        while _inline.pending:
            queued_path, queued_args = _inline.pending.pop(0)
            async_task(queued_path, *queued_args)
    finally:
        _inline.pending = None


#: How long a "queued" marker lives: should the broker lose the task (a worker killed after
#: taking it), a new request or the sweeper queues it again after this, as soon as the
#: sweeper's own grace for a pending job (two minutes) would.
MARKER_SECONDS = 120

# Set the marker and push the task in one round trip; push nothing while the marker is set.
_PUSH_UNLESS_QUEUED = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[2]) then
    return redis.call('RPUSH', KEYS[2], ARGV[1])
end
return 0
"""


def _marker(list_key: str, path: str, args: tuple[object, ...]) -> str:
    """The key saying the task waits in the queue ``list_key`` (each cluster has its own)."""
    return f"xero_integration:queued:{list_key}:{path}:" + ":".join(str(arg) for arg in args)


def _redis_of(queue: Any) -> Any:
    """The Redis client of a django-q2 Redis broker, else None."""
    from django_q.brokers.redis_broker import Redis

    return queue.connection if isinstance(queue, Redis) else None


class _UniqueEnqueue:
    """A broker for one ``async_task`` call that pushes the task only if it is not queued."""

    def __init__(self, queue: Any, redis: Any, marker: str) -> None:
        self.list_key = queue.list_key
        self.redis = redis
        self.marker = marker

    def send(self, path: str, *args: object) -> None:
        async_task(path, *args, broker=self)

    def enqueue(self, pack: str) -> Any:
        return self.redis.eval(
            _PUSH_UNLESS_QUEUED, 2, self.marker, self.list_key, pack, MARKER_SECONDS
        )


class _Waker:
    """One daemon thread per process that queues tasks at their time."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self._due: list[tuple[float, str, tuple[object, ...]]] = []
        self._condition = threading.Condition()
        threading.Thread(target=self._loop, name="xero-integration-waker", daemon=True).start()

    def add(self, at: float, path: str, args: tuple[object, ...]) -> None:
        with self._condition:
            for due_at, due_path, due_args in self._due:
                if due_path == path and due_args == args and due_at <= at:
                    return  # already queued for no later
            heapq.heappush(self._due, (at, path, args))
            self._condition.notify()

    def _loop(self) -> None:
        while True:
            with self._condition:
                while not self._due or self._due[0][0] > time.monotonic():
                    timeout = self._due[0][0] - time.monotonic() if self._due else None
                    self._condition.wait(timeout)
                _at, path, args = heapq.heappop(self._due)
            send(path, *args, unique=True)


_waker_instance: _Waker | None = None


def _waker() -> _Waker:
    global _waker_instance
    with _broker_lock:
        # A forked worker inherits the object but not its thread.
        if _waker_instance is None or _waker_instance.pid != os.getpid():
            _waker_instance = _Waker()
        return _waker_instance
