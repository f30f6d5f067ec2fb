"""Write the adapter reference of docs/integrating.md from the code it describes.

The hooks of ``DefaultXeroAdapter`` (their signatures and docstrings) and the fields of the
plain data in ``xero_integration.data`` are the contract; this prints them between the two
markers in docs/integrating.md, so the reference cannot drift from the code.

    python docs/adapter_reference.py           # rewrite the section
    python docs/adapter_reference.py --check   # exit 1 when the section is out of date
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "integrating.md"
START = (
    "<!-- adapter reference: written by `python docs/adapter_reference.py` from the docstrings "
    "of DefaultXeroAdapter and xero_integration.data; edit those, then run it -->"
)
END = "<!-- end of the adapter reference -->"
#: The plain data an adapter builds or receives, in the order a reader meets them.
DATA_CLASSES = (
    "HostInvoice",
    "HostContact",
    "HostAddress",
    "HostLine",
    "HostTax",
    "HostTaxComponent",
    "HostPayment",
    "InvoiceStatus",
    "ImportedContact",
    "ContactLookup",
    "RecordedPayment",
)


def _markdown(docstring: str) -> str:
    """A docstring as Markdown: reStructuredText's ``code`` becomes `code`."""
    return re.sub(r"``(.+?)``", r"`\1`", inspect.cleandoc(docstring), flags=re.DOTALL)


def _first_sentence(docstring: str) -> str:
    text = " ".join(_markdown(docstring).split()).removeprefix("Required. ")
    return re.split(r"(?<=\.) ", text, maxsplit=1)[0]


def _signature(function: object) -> str:
    """``name(arg: type, ...) -> type`` as written in the source (annotations are strings)."""
    signature = inspect.signature(function)
    parameters = []
    for parameter in signature.parameters.values():
        if parameter.name == "self":
            continue
        text = parameter.name
        if parameter.annotation is not inspect.Parameter.empty:
            text += f": {parameter.annotation}"
        if parameter.default is not inspect.Parameter.empty:
            text += f" = {parameter.default!r}"
        parameters.append(text)
    returns = ""
    if signature.return_annotation is not inspect.Signature.empty:
        returns = f" -> {signature.return_annotation}"
    return f"{function.__name__}({', '.join(parameters)}){returns}"


def hooks() -> list[tuple[str, object]]:
    """Every public method of DefaultXeroAdapter, in the order the class defines them."""
    from xero_integration.adapters import DefaultXeroAdapter

    return [
        (name, member)
        for name, member in vars(DefaultXeroAdapter).items()
        if inspect.isfunction(member) and not name.startswith("_")
    ]


def _hooks_section() -> list[str]:
    from xero_integration.adapters import DefaultXeroAdapter

    required = set(DefaultXeroAdapter.required_hooks)
    lines = [
        "| hook | |",
        "|---|---|",
    ]
    for name, member in hooks():
        kind = "**required**" if name in required else "optional"
        lines.append(f"| [`{name}`](#{name}) | {kind}: {_first_sentence(member.__doc__ or '')} |")
    for name, member in hooks():
        lines += [
            "",
            f"#### {name}",
            "",
            f"`{_signature(member)}`",
            "",
            _markdown(member.__doc__ or "Undocumented."),
        ]
    return lines


def _type_name(annotation: object) -> str:
    # A pipe ends a table cell even inside backticks unless escaped.
    return str(annotation).replace("datetime.", "").replace("|", "\\|")


def _field_notes(cls: type) -> dict[str, str]:
    """The ``#:`` comments written above a dataclass's fields, by field name."""
    notes: dict[str, str] = {}
    pending: list[str] = []
    for line in inspect.getsource(cls).splitlines():
        stripped = line.strip()
        if stripped.startswith("#:"):
            pending.append(stripped[2:].strip())
            continue
        name = re.match(r"(\w+)\s*:", stripped)
        if name and pending:
            notes[name.group(1)] = " ".join(pending)
        pending = []
    return notes


def _data_section() -> list[str]:
    from xero_integration import data

    lines: list[str] = []
    for name in DATA_CLASSES:
        cls = getattr(data, name)
        lines += ["", f"#### {name}", "", _markdown(cls.__doc__ or "")]
        if isinstance(cls, type) and issubclass(cls, enum.Enum):
            lines += ["", ", ".join(f"`{member.name}` (`{member.value!r}`)" for member in cls)]
            continue
        lines += ["", "| field | type | default |", "|---|---|---|"]
        for field in dataclasses.fields(cls):
            if field.default is not dataclasses.MISSING:
                default = f"`{field.default!r}`"
            elif field.default_factory is not dataclasses.MISSING:
                default = f"`{field.default_factory.__name__}()`"
            else:
                default = "**required**"
            lines.append(f"| `{field.name}` | `{_type_name(field.type)}` | {default} |")
        notes = _field_notes(cls)
        if notes:
            lines.append("")
            lines += [f"- `{field}`: {_markdown(note)}" for field, note in notes.items()]
    return lines


def render() -> str:
    """The section between the markers, markers included."""
    lines = [
        START,
        "",
        "### Hooks",
        "",
        *_hooks_section(),
        "",
        "### Plain data (`xero_integration.data`)",
        "",
        "Frozen dataclasses; amounts and rates are `Decimal`s, ids are strings.",
        *_data_section(),
        "",
        END,
    ]
    return "\n".join(lines)


def rewritten(text: str) -> str:
    """``text`` with the section between the markers replaced by ``render()``."""
    if START not in text or END not in text:
        raise SystemExit(f"{GUIDE} lacks the adapter reference's markers:\n{START}\n{END}")
    before, rest = text.split(START, 1)
    _, after = rest.split(END, 1)
    return before + render() + after


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(ROOT))
    current = GUIDE.read_text(encoding="utf-8")
    wanted = rewritten(current)
    if "--check" in argv:
        if wanted != current:
            print(f"{GUIDE} is out of date: run `python docs/adapter_reference.py`.")
            return 1
        return 0
    GUIDE.write_text(wanted, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
