"""``GET/PUT/POST /TaxRates`` and ``GET /TaxRates/{TaxType}``: rates with components,
compound arithmetic, ``ReportTaxType`` by country, and system rates left alone."""

from __future__ import annotations

import re
from decimal import Decimal

from .. import query as q
from .. import seed
from ..messages import Response
from ..wire import PostDataInvalid, parse_bool, parse_decimal, validation_exception
from .core import Context, Invalid, enum_value, four, not_found

TAX_STATUSES = {"ACTIVE", "DELETED", "ARCHIVED", "PENDING"}


def handle(ctx: Context, rest: list[str]) -> Response:
    """Read tax rates, or create (PUT, one a request) and update (POST) them."""
    org = ctx.org
    if ctx.request.method == "GET":
        if rest:
            rate = org.tax_rate(rest[0].upper())
            if rate is None:
                raise not_found("Tax rate")
            return ctx.ok(TaxRates=[rate])
        records = [r for r in org.tax_rates if r["Status"] != "DELETED"]
        tax_type = ctx.query.get("taxtype")
        if tax_type:
            records = [r for r in records if r["TaxType"] == tax_type.upper()]
        return ctx.ok(TaxRates=q.order(ctx.filter(records), ctx.query.get("order")))
    ctx.only("PUT", "POST")
    items = ctx.items("TaxRates")
    if ctx.request.method == "PUT" and len(items) != 1:
        raise validation_exception(
            [{"ValidationErrors": [{"Message": "Only one tax rate can be created per request."}]}]
        )
    return ctx.batch(items, "TaxRates", lambda item, i: _save(ctx, item, i))


def _save(ctx: Context, item: dict, index: int) -> dict:
    org = ctx.org
    existing = None
    if ctx.request.method == "POST":
        if item.get("TaxType"):
            existing = org.tax_rate(str(item["TaxType"]).upper())
        elif item.get("Name"):
            existing = next(
                (
                    r
                    for r in org.tax_rates
                    if r["Name"] == item["Name"] and r["Status"] != "DELETED"
                ),
                None,
            )
    errors = Invalid()
    components = None
    if "TaxComponents" in item:
        raw_components = item["TaxComponents"]
        if not isinstance(raw_components, list):
            raise PostDataInvalid(f"Path 'TaxRates[{index}].TaxComponents' must be a list.")
        components = []
        for position, component in enumerate(raw_components):
            path = f"TaxRates[{index}].TaxComponents[{position}]"
            rate = parse_decimal(component.get("Rate", 0), f"{path}.Rate")
            if rate < 0 or rate > 100:
                errors.add("The tax component rate must be between 0 and 100.")
            if rate != four(rate):
                errors.add("Tax component rates can have at most 4 decimal places.")
            components.append(
                {
                    "Name": str(component.get("Name") or "").strip(),
                    "Rate": four(rate),
                    "IsCompound": parse_bool(
                        component.get("IsCompound", False), f"{path}.IsCompound"
                    ),
                    "IsNonRecoverable": parse_bool(
                        component.get("IsNonRecoverable", False), f"{path}.IsNonRecoverable"
                    ),
                }
            )
            if not components[-1]["Name"]:
                errors.add("A tax component name must be provided.")
    name = str(item.get("Name") or "").strip()
    report = item.get("ReportTaxType")
    status = item.get("Status")
    if status is not None:
        status = enum_value(status, TAX_STATUSES, f"TaxRates[{index}].Status", "TaxRateStatus")
    if existing is None:
        if not name:
            errors.add("The tax rate name must be provided.")
        if not components:
            errors.add("At least one tax component must be provided.")
    elif re.fullmatch(r"TAX\d{3}", existing["TaxType"]) is None and (
        components is not None or (name and name != existing["Name"])
    ):
        errors.add("System tax rates cannot be edited.")
    clash = name and any(
        r is not existing and r["Status"] != "DELETED" and r["Name"].lower() == name.lower()
        for r in org.tax_rates
    )
    if clash:
        errors.add(f"The tax rate name '{name}' is already in use. Tax rate names must be unique.")
    if org.country_code in seed.REPORT_TAX_TYPE_REFUSED and report:
        errors.add("ReportTaxType is not supported for organisations in the United States.")
    if org.country_code in seed.REPORT_TAX_TYPE_REQUIRED and existing is None and not report:
        errors.add("ReportTaxType is mandatory for tax rates in this organisation's country.")
    if errors:
        raise errors
    record = existing or {
        "Name": name,
        "TaxType": org.next_tax_type(),
        "ReportTaxType": None,
        "CanApplyToAssets": True,
        "CanApplyToEquity": True,
        "CanApplyToExpenses": True,
        "CanApplyToLiabilities": True,
        "CanApplyToRevenue": True,
        "Status": "ACTIVE",
        "TaxComponents": [],
    }
    if name:
        record["Name"] = name
    if report:
        record["ReportTaxType"] = str(report)
    if status:
        record["Status"] = status
    if components is not None:
        record["TaxComponents"] = components
        simple = sum((c["Rate"] for c in components if not c["IsCompound"]), Decimal(0))
        compound = sum(
            (c["Rate"] * (100 + simple) / 100 for c in components if c["IsCompound"]),
            Decimal(0),
        )
        record["DisplayTaxRate"] = four(sum((c["Rate"] for c in components), Decimal(0)))
        record["EffectiveRate"] = four(simple + compound)
    if existing is None:
        org.tax_rates.append(record)
    return record
