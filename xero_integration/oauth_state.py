"""OAuth ``state`` values kept in the user's session, each with its PKCE verifier.

At most ten pending states per session; a state is removed when it is used, so a replayed or
tampered callback finds nothing.
"""

from __future__ import annotations

import time
from typing import Any

from django.http import HttpRequest

SESSION_KEY = "xero_integration_oauth_states"
MAX_PENDING = 10
#: A consent screen left open longer than this must be started again.
MAX_AGE_SECONDS = 30 * 60


def stash(request: HttpRequest, state: str, *, code_verifier: str, account_key: str) -> None:
    """Remember a state for this session's next callback."""
    states: dict[str, dict[str, Any]] = request.session.get(SESSION_KEY, {})
    states[state] = {
        "code_verifier": code_verifier,
        "account_key": account_key,
        "created": time.time(),
    }
    newest = sorted(states.items(), key=lambda item: item[1]["created"])[-MAX_PENDING:]
    request.session[SESSION_KEY] = dict(newest)


def pop(request: HttpRequest, state: str | None) -> dict[str, Any] | None:
    """The data stashed with ``state``, removed from the session; None when unknown or stale."""
    if not state:
        return None
    states: dict[str, dict[str, Any]] = request.session.get(SESSION_KEY, {})
    data = states.pop(state, None)
    request.session[SESSION_KEY] = states
    if data is None or time.time() - data["created"] > MAX_AGE_SECONDS:
        return None
    return data
