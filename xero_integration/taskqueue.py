"""Queueing the app's background tasks: after the caller's transaction commits, through one
broker connection per process, and never as an error of the caller's.

It imports nothing of the app, so any module may queue its own functions without an import
cycle. A task is a module-level function; it is queued by its dotted path.
"""

from __future__ import annotations

import logging
import threading
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


def dispatch_once(task: Task, *args: object) -> None:
    """As ``dispatch``, but once per transaction for the same task and arguments: many saves
    of one account in one transaction queue one run."""
    connection = transaction.get_connection()
    if not connection.in_atomic_block:
        send(task_path(task), *args)
        return
    key = (task_path(task), args)
    for _savepoints, hook, _robust in connection.run_on_commit:
        if isinstance(hook, _Once) and hook.key == key:
            return
    transaction.on_commit(_Once(key), robust=not Conf.SYNC)


class _Once:
    """An on-commit hook that knows what it queues, so a second request can find it (a hook
    registered in a savepoint that rolls back goes with it, and the next request adds one)."""

    def __init__(self, key: tuple[str, tuple[object, ...]]) -> None:
        self.key = key

    def __call__(self) -> None:
        path, args = self.key
        send(path, *args)


def send(path: str, *args: object) -> None:
    """Hand the task to the broker now (or run it, in sync mode)."""
    global _broker_down
    if Conf.SYNC:
        async_task(path, *args)
        return
    try:
        async_task(path, *args, broker=broker())
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
