"""The code the documentation shows a host developer, and the example project it comes from.

A fenced block whose first line names a file (``# mycrm/models.py``, ``{# mycrm/templates/
base.html #}``) is either an excerpt of that file in tests/hostproject, checked to match it
line for line, or, for a test file the project lacks, a test run as written from the wheel.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HOST_PROJECT = ROOT / "tests" / "hostproject"
DOCS = (ROOT / "README.md", ROOT / "docs" / "integrating.md")

FENCE = re.compile(r"^```(?P<language>\w*)\n(?P<body>.*?)^```\n", re.MULTILINE | re.DOTALL)
NAMES_A_FILE = re.compile(r"^(?:#|\{#)\s*(?P<path>[\w./-]+\.(?:py|html|ini|toml))\b.*$")


@dataclass(frozen=True)
class Example:
    """A block of a document that names the example project's file it shows."""

    doc: Path
    line: int
    path: str
    text: str

    @property
    def where(self) -> str:
        return f"{self.doc.relative_to(ROOT)}:{self.line}"

    @property
    def is_new_test(self) -> bool:
        """A test file the project lacks: run as written from the wheel."""
        return self.path.startswith("tests/") and not (HOST_PROJECT / self.path).exists()


def examples(doc: Path) -> list[Example]:
    text = doc.read_text(encoding="utf-8")
    found = []
    for block in FENCE.finditer(text):
        first, _, rest = block["body"].partition("\n")
        named = NAMES_A_FILE.match(first)
        if named:
            line = text.count("\n", 0, block.start()) + 2
            found.append(Example(doc, line, named["path"], rest))
    return found


def all_examples() -> list[Example]:
    return [example for doc in DOCS for example in examples(doc)]


def is_excerpt(block: str, whole: str) -> bool:
    """Whether ``block``'s lines appear together, in order, in ``whole`` (trailing spaces
    aside)."""
    wanted = [line.rstrip() for line in block.rstrip("\n").splitlines()]
    lines = [line.rstrip() for line in whole.splitlines()]
    return any(lines[i : i + len(wanted)] == wanted for i in range(len(lines) - len(wanted) + 1))
