"""``GET/PUT /Currencies``: a single-object body adds ("subscribes") a currency, which needs
multi-currency on the organisation's plan (Xero's API documentation)."""

from __future__ import annotations

import re

from .. import seed
from ..messages import Response
from ..wire import validation_exception
from .core import Context


def handle(ctx: Context, rest: list[str]) -> Response:
    """The organisation's currencies, or one added."""
    org = ctx.org
    if ctx.request.method == "GET":
        return ctx.ok(Currencies=ctx.filter(org.currencies))
    ctx.only("PUT", "POST")
    body = ctx.body()
    code = body.get("Code") if isinstance(body, dict) else None
    if not code:
        # Xero reads a single object; a wrapped {"Currencies": [...]} has no Code.
        raise validation_exception(
            [{"ValidationErrors": [{"Message": "A currency code must be provided."}]}]
        )
    code = str(code).upper()
    if not re.fullmatch(r"[A-Z]{3}", code):
        raise validation_exception(
            [{**body, "ValidationErrors": [{"Message": f"Currency code {code} is not valid."}]}]
        )
    if code not in org.currency_codes():
        if not org.multicurrency:
            message = (
                f"Unable to add currency {code}: this organisation's Xero plan does not "
                "include multi-currency."
            )
            raise validation_exception([{**body, "ValidationErrors": [{"Message": message}]}])
        org.currencies.append({"Code": code, "Description": seed.CURRENCY_NAMES.get(code, code)})
    currency = next(c for c in org.currencies if c["Code"] == code)
    return ctx.ok(Currencies=[currency])
