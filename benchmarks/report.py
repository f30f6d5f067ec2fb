"""Printing benchmark results and keeping them in docs/benchmarks.md, one section per run."""

from __future__ import annotations

import platform
import re
from datetime import UTC, datetime
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
HEADER = (
    "# Benchmarks\n\n"
    "Measured against the sandbox on this repository's CI machine (2 cores). Each section is "
    "rewritten by the benchmark that produced it; run them with `make bench`.\n"
)


def print_table(title: str, results: dict[str, object]) -> None:
    width = max(len(key) for key in results)
    print(f"\n{title}\n" + "-" * len(title))
    for key, value in results.items():
        print(f"{key:<{width}}  {value}")


def write_section(title: str, results: dict[str, object], description: str | None) -> None:
    rows = "\n".join(f"| {key} | {value} |" for key, value in results.items())
    intro = (description or "").strip().split("\n\n")[-1].replace("\n", " ")
    stamp = datetime.now(UTC).strftime("%Y-%m-%d")
    section = (
        f"## {title}\n\n{intro}\n\nRun on {stamp}, Python {platform.python_version()}.\n\n"
        f"| measure | value |\n|---|---|\n{rows}\n"
    )
    text = DOC.read_text() if DOC.exists() else HEADER
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(section + "\n", text)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text(text.rstrip("\n") + "\n")
