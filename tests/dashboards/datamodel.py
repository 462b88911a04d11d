"""docs/DATA_MODEL.md read as data: measurement -> databases, fields, tags.

The dashboard tests check every identifier a query names against this, so a dashboard
cannot drift from the documented model (and the model's tables stay parseable).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from cityhealth.settings import REPO_ROOT

DATA_MODEL = REPO_ROOT / "docs" / "DATA_MODEL.md"
_TICKED = re.compile(r"`([^`]+)`")
_HEADING_NAME = re.compile(r"`(\w+)`\s*(?:\(([^)]*)\))?")
_CHANNEL = re.compile(r"^[a-z]+/[a-z]+$")


@dataclass
class Measurement:
    name: str
    databases: set[str] = field(default_factory=set)
    fields: set[str] = field(default_factory=set)
    tags: set[str] = field(default_factory=set)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _ticked(cell: str) -> list[str]:
    return _TICKED.findall(cell)


def _tags(paragraph: str) -> list[str]:
    """Tag names of a "Tags `a`, `b` (values...), `c`. Time: ..." sentence."""
    at = paragraph.find("Tags ")
    if at < 0:
        return []
    text = re.sub(r"\([^)]*\)", "", paragraph[at:])  # parentheses hold tag *values*
    return _ticked(text.split(". ")[0])


def parse(path: Path = DATA_MODEL) -> dict[str, Measurement]:
    """Measurements of the *Raw readings* and *Derived measurements* sections."""
    model: dict[str, Measurement] = {}

    def get(name: str) -> Measurement:
        return model.setdefault(name, Measurement(name))

    current: list[str] = []
    header: list[str] = []
    paragraph = ""
    in_model = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith(("|", "#")):
            for name in current:  # a paragraph ended: its "Tags ..." sentence, if any
                get(name).tags.update(_tags(paragraph))
            paragraph = ""
            if not line.strip():
                header = []
                continue
        if line.startswith("## "):
            in_model = line.startswith(("## Raw readings", "## Derived measurements"))
            current = []
            continue
        if not in_model:
            continue
        if line.startswith("### "):
            current = []
            # "### `a` (sensitive ...) and `b` (public) — ...": each name's parenthesis
            for name, note in _HEADING_NAME.findall(line[4:].split("—")[0]):
                current.append(name)
                get(name).databases |= {db for db in ("sensitive", "public") if db in note}
            header = []
            continue
        if not line.startswith("|"):
            header = []
            paragraph += " " + line
            continue
        cells = _cells(line)
        if not header:
            header = [c.lower() for c in cells]
            continue
        if set(line) <= set("|-: "):
            continue
        ticked = [_ticked(c) for c in cells]
        if header[0] == "channel" and ticked[0] and _CHANNEL.match(ticked[0][0]):
            m = get(ticked[1][0])
            m.databases.add(cells[2].strip("*"))
            m.tags.update(ticked[3])
            m.fields.update(ticked[4])
        elif header[0] == "measurement":
            m = get(ticked[0][0])
            m.fields.update(ticked[1])
            if len(cells) > 4:
                m.tags.update(ticked[4])
        elif header[0] == "field":
            for name in current:
                get(name).fields.update(ticked[0])
    return model
