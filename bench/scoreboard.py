"""The scoreboard: each figure with its baseline, ratio and target, written to bench/results.json, drawn in
bench/results.png and printed as a table."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any


class Bound(StrEnum):
    RATIO_AT_MOST = "ratio_at_most"
    RATIO_AT_LEAST = "ratio_at_least"
    VALUE_AT_MOST = "value_at_most"


@dataclass(frozen=True)
class Target:
    """What a figure must meet: its ratio to the baseline at most (or at least) `limit`, or its own value at
    most `limit` (a count: IAM calls, wrong decisions)."""

    bound: Bound
    limit: float

    def met_by(self, value: float, ratio: float | None) -> bool:
        if self.bound is Bound.VALUE_AT_MOST:
            return value <= self.limit
        if ratio is None:
            return False
        return ratio <= self.limit if self.bound is Bound.RATIO_AT_MOST else ratio >= self.limit

    def text(self) -> str:
        if self.bound is Bound.VALUE_AT_MOST:
            return f"<= {self.limit:g}"
        return f"{'<=' if self.bound is Bound.RATIO_AT_MOST else '>='} {self.limit:.2f}x"


def at_most(limit: float) -> Target:
    return Target(Bound.RATIO_AT_MOST, limit)


def at_least(limit: float) -> Target:
    return Target(Bound.RATIO_AT_LEAST, limit)


def count_at_most(limit: float) -> Target:
    return Target(Bound.VALUE_AT_MOST, limit)


@dataclass(frozen=True)
class Figure:
    """One measured figure. `value` and `baseline` are in `unit`; `details` carries what produced them (p50
    and p99 of both sides, sample counts, calls counted); `note` says what explains a miss."""

    section: str
    name: str
    value: float
    unit: str
    baseline_name: str | None = None
    baseline: float | None = None
    target: Target | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or self.baseline == 0:
            return None
        return self.value / self.baseline

    @property
    def met(self) -> bool | None:
        return None if self.target is None else self.target.met_by(self.value, self.ratio)

    def as_json(self) -> dict[str, Any]:
        return {
            "section": self.section,
            "name": self.name,
            "value": round(self.value, 6),
            "unit": self.unit,
            "baseline_name": self.baseline_name,
            "baseline": None if self.baseline is None else round(self.baseline, 6),
            "ratio": None if self.ratio is None else round(self.ratio, 4),
            "target": None
            if self.target is None
            else {"bound": self.target.bound.value, "limit": self.target.limit, "text": self.target.text()},
            "met": self.met,
            "details": dict(self.details),
            "note": self.note,
        }


def write_results(path: Path, figures: Sequence[Figure], context: Mapping[str, Any]) -> dict[str, Any]:
    """results.json: every figure, and the table as README shows it (a unit test holds README to it)."""
    targeted = [figure for figure in figures if figure.target is not None]
    document = {
        **context,
        "all_targets_met": all(figure.met for figure in targeted),
        "targets": {"met": sum(bool(figure.met) for figure in targeted), "of": len(targeted)},
        "figures": [figure.as_json() for figure in figures],
        "readme_table": markdown_table(figures),
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    return document


def _number(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}" if abs(value) >= 0.1 else f"{value:.3g}"


def _ratio(ratio: float | None) -> str:
    if ratio is None:
        return ""
    return f"{ratio:.2f}x" if ratio >= 0.01 else f"1/{1 / ratio:,.0f}"


def table_rows(figures: Sequence[Figure]) -> list[tuple[str, ...]]:
    rows = []
    for figure in figures:
        baseline = "" if figure.baseline is None else f"{_number(figure.baseline)} {figure.unit}"
        verdict = {True: "met", False: "MISSED", None: ""}[figure.met]
        rows.append(
            (
                figure.section,
                figure.name,
                f"{_number(figure.value)} {figure.unit}",
                f"{figure.baseline_name or ''}{': ' + baseline if baseline else ''}",
                _ratio(figure.ratio),
                figure.target.text() if figure.target else "",
                verdict,
            )
        )
    return rows


HEADER = ("section", "figure", "measured", "baseline", "ratio", "target", "")


def print_table(figures: Sequence[Figure]) -> None:
    rows = [HEADER, *table_rows(figures)]
    widths = [max(len(row[column]) for row in rows) for column in range(len(HEADER))]
    for index, row in enumerate(rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
        if index == 0:
            print("  ".join("-" * width for width in widths))
    for figure in figures:
        if figure.note:
            print(f"  note, {figure.section} / {figure.name}: {figure.note}")


def markdown_table(figures: Sequence[Figure]) -> str:
    """The table as README shows it."""
    lines = ["| " + " | ".join(HEADER[:-1]) + " | |", "|" + "---|" * len(HEADER)]
    lines += [
        "| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in table_rows(figures)
    ]
    return "\n".join(lines) + "\n"


def draw_chart(path: Path, figures: Sequence[Figure], title: str) -> None:
    """Each targeted figure against its target, on one scale: its share of what the target allows (1 = at
    the target; a ratio kept at least at its target is drawn inverted, so that left is always better)."""
    import matplotlib  # a dev dependency, imported only to draw

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    drawn = [figure for figure in figures if figure.target is not None]
    labels, shares, colours, texts = [], [], [], []
    for figure in drawn:
        assert figure.target is not None
        if figure.target.bound is Bound.VALUE_AT_MOST:
            share = (
                figure.value / figure.target.limit
                if figure.target.limit
                else (0.0 if figure.value == 0 else 2.0)
            )
            text = f"{_number(figure.value)} (limit {figure.target.limit:g})"
        elif figure.target.bound is Bound.RATIO_AT_MOST:
            share = (figure.ratio or math.inf) / figure.target.limit
            text = f"{_ratio(figure.ratio)} (target {figure.target.text()})"
        else:
            share = figure.target.limit / (figure.ratio or 1e-9)
            text = f"{_ratio(figure.ratio)} (target {figure.target.text()})"
        labels.append(f"{figure.section}: {figure.name}")
        shares.append(min(share, 3.0))
        colours.append("#2e7d32" if figure.met else "#c62828")
        texts.append(text)

    figure_height = 1.2 + 0.42 * len(drawn)
    fig, axis = plt.subplots(figsize=(11, figure_height))
    positions = range(len(drawn))[::-1]
    axis.barh(list(positions), shares, color=colours, height=0.6)
    axis.axvline(1.0, color="black", linewidth=1, linestyle="--")
    axis.set_yticks(list(positions), labels, fontsize=8)
    axis.set_xlim(0, max(1.6, max(shares, default=1) * 1.35))
    for position, share, text in zip(positions, shares, texts, strict=True):
        axis.text(share + 0.02, position, text, va="center", fontsize=7)
    axis.set_xlabel("share of the target (1 = exactly at the target; left of the line = met)")
    axis.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
