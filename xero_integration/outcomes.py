"""What an answer from Xero, or a failure to get one, means for the work that asked.

One classifier for every module that calls Xero (a sync job's run, the contact import, the
webhook events, reading the organisation): ``classify`` turns an exception into an
``Outcome``, and Xero's refusals are recognised from one closed table of its messages,
``messages.XERO_REFUSALS``, which also carries what users and staff read about each. A row's
``effect`` says what the refusal asks of the sync besides failing: read a piece of reference
data again (``refresh:tax_rates``…), or nothing (``done``: what was asked is so already).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from xero_integration.exceptions import ConnectionNotReady
from xero_integration.messages import XERO_REFUSALS
from xero_integration.models import SyncJob
from xero_integration.xero.errors import (
    DeadlineReached,
    FieldError,
    Forbidden,
    RateLimited,
    ThrottledLocally,
    ValidationError,
    XeroError,
    XeroTransportError,
)

Reason = SyncJob.Reason


class Kind(StrEnum):
    """What the work does next."""

    #: Try again after ``seconds``: Xero is busy, limited, or did not answer.
    RETRY = "retry"
    #: Wait until the account is connected again.
    RECONNECT = "reconnect"
    #: Xero refused access: ask Xero whether the organisation is still connected.
    CHECK_CONNECTION = "check_connection"
    #: Xero refused the data: keep its message until the CRM changes or staff act (or, with
    #: ``refresh``, read that reference data again first).
    REFUSED = "refused"
    #: The run's time is up: hand the work back.
    OUT_OF_TIME = "out_of_time"


@dataclass(frozen=True)
class Outcome:
    kind: Kind
    message: str
    reason: str = ""
    #: Seconds to wait before trying again (RETRY); None: until told.
    seconds: float | None = None
    #: Codes of the known refusals in Xero's answer (see messages.XERO_REFUSALS).
    refusals: frozenset[str] = field(default_factory=frozenset)
    #: Reference data Xero's answer says is out of date here.
    refresh: frozenset[str] = field(default_factory=frozenset)
    #: False when a write certainly made nothing in Xero (refused, never sent, or refused
    #: unread for the rate limit); True when it may have been applied and went unanswered.
    maybe_applied: bool = False

    @property
    def passing(self) -> bool:
        """Trouble that passes by itself (a wait, an outage), not Xero refusing the data."""
        return self.kind in (Kind.RETRY, Kind.RECONNECT, Kind.CHECK_CONNECTION, Kind.OUT_OF_TIME)


def refusal_codes(messages: Iterable[str]) -> frozenset[str]:
    """The known refusals (codes of ``messages.XERO_REFUSALS``) among Xero's messages."""
    texts = list(messages)
    return frozenset(
        row.code
        for row in XERO_REFUSALS
        if row.pattern is not None and any(row.pattern.search(text) for text in texts)
    )


def refused_with(errors: Iterable[FieldError] | ValidationError, code: str) -> bool:
    """Whether Xero's refusal is the known one ``code`` (``number_taken``...)."""
    found = errors.errors if isinstance(errors, ValidationError) else errors
    return code in refusal_codes(error.message for error in found)


def effects(codes: Iterable[str]) -> frozenset[str]:
    by_code = {row.code: row.effect for row in XERO_REFUSALS if row.effect}
    return frozenset(by_code[code] for code in codes if code in by_code)


def to_refresh(codes: Iterable[str]) -> frozenset[str]:
    """The reference data (tax_rates, currencies, accounts, contacts) the refusals say is
    out of date."""
    return frozenset(
        effect.split(":", 1)[1] for effect in effects(codes) if effect.startswith("refresh:")
    )


def _throttle_seconds(exc: ThrottledLocally | RateLimited) -> float:
    if exc.retry_after:
        return exc.retry_after
    # Every concurrent slot was taken: one frees as soon as a call ends.
    return 1.0 if getattr(exc, "problem", "") == "concurrent" else 60.0


def classify(exc: BaseException, backoff: float = 60.0) -> Outcome:
    """What ``exc``, raised while talking to Xero, means. ``backoff`` is the wait the caller
    gives passing trouble. Anything that is not about Xero is re-raised."""
    if isinstance(exc, DeadlineReached):
        return Outcome(Kind.OUT_OF_TIME, str(exc))
    if isinstance(exc, ConnectionNotReady):
        return Outcome(Kind.RECONNECT, str(exc), Reason.RECONNECT)
    if isinstance(exc, ThrottledLocally | RateLimited):
        return Outcome(
            Kind.RETRY,
            f"Waiting for Xero's rate limit: {exc}",
            Reason.RATE_LIMIT,
            seconds=_throttle_seconds(exc),
        )
    if isinstance(exc, Forbidden):
        return Outcome(Kind.CHECK_CONNECTION, str(exc), Reason.UNAVAILABLE, seconds=backoff)
    if isinstance(exc, ValidationError):
        codes = refusal_codes(error.message for error in exc.errors)
        message = "; ".join(str(error) for error in exc.errors) or str(exc)
        return Outcome(
            Kind.REFUSED, message, Reason.REFUSED, refusals=codes, refresh=to_refresh(codes)
        )
    if isinstance(exc, XeroError) and exc.retryable:
        # A write Xero may have acted on is unanswered (checked before it is sent again); a
        # read, or a request that never left, only found Xero unavailable.
        if isinstance(exc, XeroTransportError):
            maybe_applied = exc.request_sent
        else:
            maybe_applied = getattr(exc, "method", None) != "GET"
        reason = Reason.UNANSWERED if maybe_applied else Reason.UNAVAILABLE
        return Outcome(Kind.RETRY, str(exc), reason, seconds=backoff, maybe_applied=maybe_applied)
    if isinstance(exc, XeroError):
        return Outcome(Kind.REFUSED, str(exc), Reason.REFUSED)
    raise exc


def classify_elements(errors: list[FieldError]) -> Outcome:
    """What the errors Xero gave one element of a batch (summarizeErrors=false) mean."""
    codes = refusal_codes(error.message for error in errors)
    return Outcome(
        Kind.REFUSED,
        "; ".join(str(error) for error in errors),
        Reason.REFUSED,
        refusals=codes,
        refresh=to_refresh(codes),
    )
