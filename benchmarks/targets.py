"""The Targets table at the top of docs/benchmarks.md: every measure with its target, the
figure measured, met or missed, how it was measured and (when missed) why.

Each benchmark records its rows with ``record``; the table is rewritten after each one from
the rows recorded since ``make bench`` started (``python -m benchmarks.targets --reset``), so
a row never mixes figures of two runs and a measure not run says so.

python -m benchmarks.targets [--reset]
"""

from __future__ import annotations

import argparse
import json
import platform
import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from benchmarks import report

RESULTS = report.DOC.parent.parent / "var" / "bench-targets.json"

#: The measures, in the table's order: key → (measure, target).
MEASURES: dict[str, tuple[str, str]] = {
    "quiet": (
        "save → visible in Xero, quiet organisation, p50 / max",
        "keep ≈ 0.11 s / 0.15 s (met up to 0.15 s / 0.25 s)",
    ),
    "burst": (
        "same, while another organisation bursts 150 saves at 4/s",
        "≤ 1 s / ≤ 2 s",
    ),
    "save_one_row": (
        "committed one-row host save, time with ÷ without the app",
        "≤ 1.3×",
    ),
    "save_form": ("form save (invoice + 3 lines + totals), committed", "≤ 1.15×"),
    "save_statements": (
        "outbox statements per save; broker round trips per committed save",
        "1 statement; no round trip of its own",
    ),
    "backlog": ("backlog drain, calls per invoice on the lifecycle mix", "≤ 0.09"),
    "realtime": ("realtime, calls per invoice on the lifecycle mix", "≤ 4.35"),
    "void_reads": ("realtime: reads of an invoice before its void", "0"),
    "admin_lists": (
        "admin: sync jobs / invoice links / contact links list, queries per page",
        "≤ 10, constant",
    ),
    "admin_log": ("admin: sync log with 50,000 rows, page size and time", "< 300 KB, < 0.3 s"),
    "payment_plans": ("payment push with 50,000 payment links: query plans", "index scan"),
    "reimport": (
        "second full contact import, 20,000 unchanged contacts, time ÷ the first",
        "≤ 1.2×",
    ),
    "unreachable_log": (
        "log rows written while an organisation is unreachable (300 invoices)",
        "one per job state change (≈ 2 per invoice)",
    ),
}


@dataclass
class Row:
    measured: str
    met: bool
    how: str
    why: str = ""
    on: str = ""


def _load() -> dict[str, dict]:
    try:
        return json.loads(RESULTS.read_text())
    except (OSError, ValueError):
        return {}


def reset() -> None:
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text("{}")
    render()


def record(**rows: Row) -> None:
    """Keep these rows (by measure key) and rewrite the table."""
    unknown = set(rows) - set(MEASURES)
    if unknown:
        raise KeyError(f"unknown measures: {sorted(unknown)}")
    stamp = f"{datetime.now(UTC):%Y-%m-%d}, Python {platform.python_version()}"
    saved = _load()
    for key, row in rows.items():
        row.on = row.on or stamp
        saved[key] = asdict(row)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(saved, indent=1))
    render()


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table() -> str:
    saved = _load()
    lines = [
        "## Targets",
        "",
        "Every measure of the fairness and leanness work, from one `make bench` run on "
        "PostgreSQL and Redis against the sandbox at Xero's real limits (60 calls a minute and "
        "5 at once per organisation, 5,000 a day, 10,000 a minute per app). The sections below "
        "hold each benchmark's full figures.",
        "",
        "| measure | target | measured | | how it was measured | why missed |",
        "|---|---|---|---|---|---|",
    ]
    for key, (measure, target) in MEASURES.items():
        row = saved.get(key)
        if row is None:
            lines.append(f"| {measure} | {target} | not measured in this run | | | |")
            continue
        verdict = "**met**" if row["met"] else "**missed**"
        lines.append(
            "| "
            + " | ".join(
                _cell(part)
                for part in (
                    measure,
                    target,
                    row["measured"],
                    verdict,
                    f"{row['how']} ({row['on']})",
                    row["why"] if not row["met"] else "",
                )
            )
            + " |"
        )
    return "\n".join(lines) + "\n"


def render() -> None:
    """Put the Targets table right after the document's introduction."""
    text = report.DOC.read_text() if report.DOC.exists() else report.HEADER
    pattern = re.compile(r"^## Targets.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    section = table() + "\n"
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text, count=1)
    else:
        first = re.search(r"^## ", text, re.MULTILINE)
        at = first.start() if first else len(text)
        text = text[:at].rstrip("\n") + "\n\n" + section + text[at:]
    report.DOC.write_text(text.rstrip("\n") + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reset", action="store_true", help="forget the rows of earlier runs")
    args = parser.parse_args()
    if args.reset:
        reset()
    else:
        render()


if __name__ == "__main__":
    main()
