"""``GET /Organisation`` and ``GET /Organisation/Actions`` (Xero's API documentation)."""

from __future__ import annotations

from ..messages import Response
from .core import Context, not_found


def handle(ctx: Context, rest: list[str]) -> Response:
    """The organisation, or the actions its plan allows."""
    ctx.only("GET")
    if rest and rest[0].lower() == "actions":
        return ctx.ok(Actions=ctx.org.actions())
    if rest:
        raise not_found("Endpoint")
    return ctx.ok(Organisations=[ctx.org.organisation_record()])
