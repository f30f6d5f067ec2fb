"""The adapter reference a host developer reads is written from the adapter's own docstrings,
and names every hook with its contract."""

from __future__ import annotations

import importlib.util
import inspect
import re
from pathlib import Path

import pytest
from django.test import override_settings

from xero_integration.adapters import DefaultXeroAdapter
from xero_integration.checks import check_adapter

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "integrating.md"
README = ROOT / "README.md"


def load_writer():
    spec = importlib.util.spec_from_file_location(
        "adapter_reference", ROOT / "docs/adapter_reference.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


HOOKS = [
    name
    for name, member in vars(DefaultXeroAdapter).items()
    if inspect.isfunction(member) and not name.startswith("_")
]


def test_the_reference_in_the_guide_is_the_one_the_code_gives() -> None:
    writer = load_writer()
    text = GUIDE.read_text(encoding="utf-8")
    assert writer.rewritten(text) == text, (
        "docs/integrating.md's adapter reference is out of date: run "
        "`python docs/adapter_reference.py` and commit the result."
    )


def test_every_hook_has_its_section_with_signature_and_docstring() -> None:
    writer = load_writer()
    text = GUIDE.read_text(encoding="utf-8")
    assert [name for name, _ in writer.hooks()] == HOOKS
    for name in HOOKS:
        section = text.split(f"\n#### {name}\n", 1)[1].split("\n#### ", 1)[0]
        assert f"`{name}(" in section, name
        first_line = inspect.getdoc(getattr(DefaultXeroAdapter, name)).splitlines()[0]
        assert first_line.replace("``", "`") in section, name


@pytest.mark.parametrize(
    "hook",
    [
        "contact_model",
        "contact_candidates",
        "upsert_contacts",
        "line_models",
        "invoice_for_line",
        "backfill_invoices",
        "invoice_number",
        "load_invoice",
        "record_xero_payments",
        "remove_xero_payments",
        "payment_model_label",
        "to_invoice",
        "invoice_models",
        "payment_models",
        "get_account_key",
        "account_key_for_request",
        "can_manage_connection",
    ],
)
def test_the_hooks_hosts_trip_over_are_in_the_guide_and_the_readme(hook: str) -> None:
    assert f"\n#### {hook}\n" in GUIDE.read_text(encoding="utf-8")
    readme_section = README.read_text(encoding="utf-8").split("### The adapter", 1)[1]
    readme_section = readme_section.split("\n## ", 1)[0]
    assert f"`{hook}(" in readme_section


@pytest.mark.parametrize("hook", HOOKS)
def test_required_hooks_say_so_and_the_others_name_their_default(hook: str) -> None:
    doc = inspect.getdoc(getattr(DefaultXeroAdapter, hook))
    if hook in DefaultXeroAdapter.required_hooks:
        assert doc.startswith("Required. ")
    else:
        assert not doc.startswith("Required. ")
        assert "Default" in doc


def test_the_upsert_contacts_contract_is_spelled_out() -> None:
    doc = " ".join(inspect.getdoc(DefaultXeroAdapter.upsert_contacts).split())
    assert "archived and merged Xero contacts are left out before the call" in doc
    assert "A linked id may name a row deleted since" in doc
    assert "(both strings)" in doc and "primary key, as text" in doc
    assert "once per page of at most 1,000 contacts" in doc


def test_every_hook_in_the_readme_table_exists() -> None:
    section = README.read_text(encoding="utf-8").split("### The adapter", 1)[1]
    section = section.split("\n## ", 1)[0]
    named = set(re.findall(r"`(\w+)\(", section))
    assert named - set(HOOKS) == set()


@override_settings(XERO_ADAPTER="xero_integration.adapters.DefaultXeroAdapter")
def test_the_missing_hook_check_points_at_the_reference() -> None:
    (error,) = check_adapter()
    assert "docs/integrating.md" in error.hint
    for hook in DefaultXeroAdapter.required_hooks:
        assert hook in error.msg
