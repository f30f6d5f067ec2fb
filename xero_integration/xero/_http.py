"""Sending one HTTP request to Xero: timeouts, transport errors and a log line without secrets."""

from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import urlsplit

import requests

from xero_integration import __version__
from xero_integration.xero.errors import XeroTransportError
from xero_integration.xero.wire import header

logger = logging.getLogger("xero_integration.xero")

#: Seconds to open a connection, and to wait for each read of the reply.
DEFAULT_TIMEOUT: tuple[float, float] = (5.0, 30.0)

#: The User-Agent sent unless the caller names another.
DEFAULT_USER_AGENT = f"xero-integration/{__version__}"

Timeout = float | tuple[float, float]


def send(
    session: requests.Session,
    method: str,
    url: str,
    *,
    timeout: Timeout,
    **kwargs: Any,
) -> requests.Response:
    """Send a request and read the whole reply; transport failures become XeroTransportError.

    The log line names the method, path, status, correlation id and duration only: never
    headers, bodies or query strings, which may carry tokens or customer data.
    """
    path = urlsplit(url).path
    started = time.monotonic()
    try:
        response = session.request(method, url, timeout=timeout, **kwargs)
    except requests.exceptions.ConnectTimeout as exc:
        raise _transport_error(method, path, "timed out connecting", exc, sent=False) from exc
    except requests.exceptions.Timeout as exc:
        raise _transport_error(method, path, "timed out waiting for the reply", exc) from exc
    except requests.exceptions.ConnectionError as exc:
        raise _transport_error(method, path, "connection failed or dropped", exc) from exc
    except requests.exceptions.RequestException as exc:
        raise _transport_error(method, path, "request failed", exc) from exc
    elapsed_ms = (time.monotonic() - started) * 1000
    logger.debug(
        "Xero %s %s -> %s in %.0f ms (correlation id %s)",
        method,
        path,
        response.status_code,
        elapsed_ms,
        header(response.headers, "Xero-Correlation-Id") or "-",
    )
    return response


def _transport_error(
    method: str, path: str, what: str, exc: Exception, *, sent: bool = True
) -> XeroTransportError:
    logger.debug("Xero %s %s -> %s (%s)", method, path, what, type(exc).__name__)
    return XeroTransportError(
        f"Xero {method} {path}: {what} ({type(exc).__name__})", request_sent=sent
    )
