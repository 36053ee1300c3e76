"""Results laid out like the paper's tables: markdown tables and a JSON-serialisable :class:`Report`.

A report is a list of named rows (the model under test, ablations, and the baselines the paper always
shows beside them: ground truth, random shuffle, no video) plus notes that say which backends produced
the numbers and on how many items. Only formatting lives here; the ``evaluate`` command fills it.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from v2meow.errors import UserError
from v2meow.io.atomic import publish
from v2meow.io.jsonable import jsonable


@dataclass(frozen=True)
class Column:
    """One table column: ``key`` in the row dicts, header ``title``, values × ``scale`` to ``digits`` decimals;
    ``better`` (``"lower"``/``"higher"``) adds ↓/↑ to the header."""

    key: str
    title: str | None = None
    scale: float = 1.0
    digits: int = 3
    better: str | None = None

    def header(self) -> str:
        arrow = {"lower": " ↓", "higher": " ↑"}.get(self.better or "", "")
        return f"{self.title or self.key}{arrow}"

    def cell(self, value: Any) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "–"
        if isinstance(value, (bool, np.bool_)):
            return str(bool(value))
        if isinstance(value, (int, np.integer)) and self.scale == 1.0:
            return str(int(value))
        if isinstance(value, (int, float, np.integer, np.floating)):
            return f"{float(value) * self.scale:.{self.digits}f}"
        return str(value)


# The metric columns of the paper's tables (Tables 1–2); BCS/BHS/F1 in percent as printed there.
PAPER_COLUMNS: tuple[Column, ...] = (
    Column("fad_vggish", "FAD VGGish", digits=2, better="lower"),
    Column("fad_trill", "FAD TRILL", digits=3, better="lower"),
    Column("kld", "KLD", digits=2, better="lower"),
    Column("mcc", "MCC", digits=3, better="higher"),
    Column("bcs", "BCS", scale=100.0, digits=1, better="higher"),
    Column("bhs", "BHS", scale=100.0, digits=1, better="higher"),
    Column("f1", "F1", scale=100.0, digits=1, better="higher"),
)

# Baseline rows every report shows beside the model: name → display title.
BASELINES: dict[str, str] = {
    "ground_truth": "Ground truth",
    "random_shuffle": "Random shuffle",
    "no_video": "No video",
}

# Values the paper reports for the random-shuffle baseline on MV100K (context, not a measurement here).
PAPER_RANDOM_SHUFFLE_MV100K: dict[str, float] = {"kld": 0.67, "mcc": 0.268}


def _as_column(c: str | Column) -> Column:
    return c if isinstance(c, Column) else Column(c)


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[str | Column], name_key: str = "name") -> str:
    """A markdown table: one line per row, the ``name_key`` entry first, then ``columns``.

    Missing and NaN values print as "–". Numbers are scaled and rounded per column (:class:`Column`);
    a plain string column prints values as they are (3 decimals for floats).
    """
    cols = [_as_column(c) for c in columns]
    header = "| " + " | ".join([name_key.capitalize()] + [_escape(c.header()) for c in cols]) + " |"
    rule = "|" + "|".join(["---"] + ["---:" for _ in cols]) + "|"
    lines = [header, rule]
    for row in rows:
        cells = [_escape(str(row.get(name_key, "")))] + [_escape(c.cell(row.get(c.key))) for c in cols]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _jsonable(value: Any) -> Any:
    """``value`` with numpy scalars/arrays turned into Python values and NaN/inf into None (JSON has neither)."""
    return jsonable(value, finite=True)


@dataclass
class Report:
    """Evaluation results: named rows of metrics, and notes on how they were measured.

    Attributes:
        title: e.g. ``"MV100K test, 10 s"``.
        rows: one dict per system; ``"name"`` identifies it and ``"kind"`` is ``"model"`` or ``"baseline"``.
        notes: backends and settings (``{"fad_vggish": {"backend": "vggish", "n_reference": ...}, ...}``).
    """

    title: str = ""
    rows: list[dict[str, Any]] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)

    def add_row(self, name: str, metrics: dict[str, Any], kind: str = "model") -> dict[str, Any]:
        """Add (or replace) the row ``name`` with ``metrics``; returns it."""
        row = {"name": name, "kind": kind, **{k: v for k, v in metrics.items() if k not in ("name", "kind")}}
        self.rows = [r for r in self.rows if r.get("name") != name] + [row]
        return row

    def add_baseline(self, name: str, metrics: dict[str, Any]) -> dict[str, Any]:
        """Add a baseline row; ``name`` is one of :data:`BASELINES`: ground_truth, random_shuffle, no_video."""
        if name not in BASELINES:
            raise UserError(f"Unknown baseline {name!r}; expected one of {sorted(BASELINES)}.")
        return self.add_row(name, metrics, kind="baseline")

    def row(self, name: str) -> dict[str, Any] | None:
        """The row called ``name``, if any."""
        return next((r for r in self.rows if r.get("name") == name), None)

    def missing_baselines(self) -> list[str]:
        """Baselines not measured yet."""
        return [b for b in BASELINES if self.row(b) is None]

    def to_markdown(self, columns: Sequence[str | Column] = PAPER_COLUMNS) -> str:
        """The table: models first, then every baseline (a "–" row for one not measured), then the notes."""
        models = [r for r in self.rows if r.get("kind") != "baseline"]
        baselines = [{**(self.row(b) or {}), "name": title} for b, title in BASELINES.items()]
        # Custom baselines beyond the standard three keep their own names.
        extra = [r for r in self.rows if r.get("kind") == "baseline" and r.get("name") not in BASELINES]
        parts = []
        if self.title:
            parts.append(f"### {self.title}\n")
        parts.append(format_table(models + baselines + extra, columns))
        if self.notes:
            parts.append("")
            for key, value in self.notes.items():
                parts.append(f"- {key}: {json.dumps(_jsonable(value), ensure_ascii=False)}")
        return "\n".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return _jsonable({"title": self.title, "rows": self.rows, "notes": self.notes})

    def to_json(self, indent: int | None = 2) -> str:
        """JSON text (NaN and infinities become null)."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False, allow_nan=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        if not isinstance(data, dict) or not isinstance(data.get("rows", []), list):
            raise UserError("A report must be a JSON object with a list of rows.")
        return cls(title=str(data.get("title", "")), rows=list(data.get("rows", [])), notes=dict(data.get("notes", {})))

    @classmethod
    def from_json(cls, text: str) -> Report:
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as e:
            raise UserError(f"The report is not valid JSON ({e}).") from e

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the JSON atomically (a reader never sees a half-written report)."""
        path = os.fspath(path)
        directory = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(prefix=".report-", suffix=".json", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(self.to_json())
                f.write("\n")
            publish(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Report:
        try:
            with open(path, encoding="utf-8") as f:
                return cls.from_json(f.read())
        except OSError as e:
            raise UserError(f"Cannot read report {os.fspath(path)} ({e.strerror}).") from e
