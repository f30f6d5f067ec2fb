"""``GET /Accounts`` and ``GET/POST /Accounts/{AccountID}``: the chart of accounts, with
archiving, payments enabled and unique names (Xero's API documentation)."""

from __future__ import annotations

from .. import query as q
from ..messages import Response
from ..wire import parse_bool, validation_exception
from .core import Context, enum_value, not_found


def handle(ctx: Context, rest: list[str]) -> Response:
    """The chart of accounts, one account, or a change to one."""
    org = ctx.org
    if rest:
        account = org.account_by(account_id=rest[0])
        if account is None:
            raise not_found("Account")
        if ctx.request.method == "POST":
            _update(ctx, account)
        else:
            ctx.only("GET")
        return ctx.ok(Accounts=[account])
    ctx.only("GET")
    records = ctx.filter(org.accounts, modified_field="UpdatedDateUTC")
    return ctx.ok(Accounts=q.order(records, ctx.query.get("order")))


def _update(ctx: Context, account: dict) -> None:
    body = ctx.body()
    item = (
        body["Accounts"][0] if isinstance(body.get("Accounts"), list) and body["Accounts"] else body
    )
    if "Status" in item:
        account["Status"] = enum_value(
            item["Status"], {"ACTIVE", "ARCHIVED"}, "Status", "AccountStatus"
        )
    if "EnablePaymentsToAccount" in item:
        account["EnablePaymentsToAccount"] = parse_bool(
            item["EnablePaymentsToAccount"], "EnablePaymentsToAccount"
        )
    if item.get("Name"):
        name = str(item["Name"])
        if any(a is not account and a["Name"].lower() == name.lower() for a in ctx.org.accounts):
            raise validation_exception(
                [{**item, "ValidationErrors": [{"Message": "Please enter a unique Name."}]}]
            )
        account["Name"] = name
    account["UpdatedDateUTC"] = ctx.now
