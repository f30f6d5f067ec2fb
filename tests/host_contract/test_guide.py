"""docs/integrating.md and the README's part for CRM developers: complete and linked."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django_q.models import Schedule

ROOT = Path(__file__).resolve().parents[2]
GUIDE = (ROOT / "docs" / "integrating.md").read_text(encoding="utf-8")
README = (ROOT / "README.md").read_text(encoding="utf-8")


def section(text: str, heading: str) -> str:
    return text.split(heading, 1)[1].split("\n## ", 1)[0]


def anchor(heading: str) -> str:
    """GitHub's anchor of a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.django_db
def test_every_periodic_task_is_listed_in_the_guide_and_the_readme() -> None:
    tasks = {
        name.removeprefix("xero_integration.")
        for name in Schedule.objects.filter(name__startswith="xero_integration.").values_list(
            "name", flat=True
        )
    }
    assert len(tasks) >= 8
    production_notes = section(GUIDE, "## Production")
    readme_production = section(README, "## Production set-up")
    for task in tasks:
        assert f"| `{task}` |" in production_notes, task
        assert f"`{task}`" in readme_production, task


def test_the_guides_links_and_the_readmes_lead_to_headings() -> None:
    prose = re.sub(r"^```.*?^```", "", GUIDE, flags=re.MULTILINE | re.DOTALL)
    anchors = [anchor(h) for h in re.findall(r"^#+ (.+)$", prose, re.MULTILINE)]
    # GitHub numbers repeated headings' anchors: a link to one would land on the first.
    headings = {a for a in anchors if anchors.count(a) == 1}
    linked = re.findall(r"\]\(#([\w-]+)\)", GUIDE)
    linked += re.findall(r"\]\(docs/integrating\.md#([\w-]+)\)", README)
    assert "the-adapter-reference" in linked
    assert set(linked) <= headings, set(linked) - headings
    assert "[`docs/integrating.md`](docs/integrating.md)" in section(
        README, "## Installing the app in your CRM"
    )


def test_the_settings_snippet_says_where_env_comes_from() -> None:
    installing = section(README, "## Installing the app in your CRM")
    assert "django-environ" in installing and 'env("XERO_CLIENT_ID"' in installing
    assert "pip install xero-integration django-environ" in GUIDE


def test_the_guide_covers_what_a_host_developer_needs() -> None:
    for heading in (
        "## From an empty project to an invoice in the sandbox",
        "## Testing your CRM",
        "## The adapter reference",
        "## Templates",
        "## Running the sandbox by hand",
        "## Production",
    ):
        assert f"\n{heading}\n" in GUIDE, heading
    templates = section(GUIDE, "## Templates")
    for needed in (
        "`content`",
        "`extra_head`",
        "messages",
        "{% xero_tile %}",
        "{% xero_invoice_status invoice %}",
    ):
        assert needed in templates, needed
    assert "python -m xero_integration.sandbox" in section(GUIDE, "## Running the sandbox by hand")
    assert '"transaction_mode": "IMMEDIATE"' in section(GUIDE, "## Production")
    assert "pytest_plugins = " not in section(README, "## Testing your CRM against the sandbox")
