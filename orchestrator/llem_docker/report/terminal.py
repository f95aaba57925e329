"""The report in a terminal, fitted to its width (`Console.width`; tests pass one).

A figure's cell (`736 [36, 7846]`) is never wrapped, and a text cell (point, validity,
flags) wraps only between words. When the columns do not fit side by side even so, they are
split over several tables, each repeating the point's identity columns (study, point); when
not even the identity and one column fit, or the tables would hold fewer than two columns
each, each point is printed as a block of `column: value` lines.
"""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from llem_docker.report import serving
from llem_docker.report.capacity import TITLE as CAPACITY
from llem_docker.report.capacity import capacity_parts
from llem_docker.report.points import Report
from llem_docker.report.table import (
    METHOD,
    Column,
    heading,
    main_parts,
    rows,
    serving_parts,
    studies,
)

TEXT_MIN = 12  # a wrapped text column is not made narrower than this (or its longest word)
PER_COLUMN, EDGE = 3, 1  # a column's padding and rule in rich's default box, and the last rule


def _natural(c: Column) -> int:
    """The width at which no cell wraps (a header may wrap between its words)."""
    words = max((len(w) for w in c.head.split()), default=0)
    return max([words, *(len(x) for x in c.cells)])


def _least(c: Column) -> int:
    """The narrowest the column may get: a figure's whole cell, else its longest word."""
    if c.numeric:
        return _natural(c)
    words = max((len(w) for x in (c.head, *c.cells) for w in x.split()), default=0)
    return max(words, min(TEXT_MIN, _natural(c)))


def widths(cols: list[Column], width: int) -> list[int] | None:
    """Column widths that fit `width` (rich's box included), or None when none do: each
    column at its natural width, then the widest one that may narrow narrowed, one
    character at a time, until they fit."""
    room = width - PER_COLUMN * len(cols) - EDGE
    out = [_natural(c) for c in cols]
    least = [_least(c) for c in cols]
    if sum(least) > room:
        return None
    while sum(out) > room:
        i = max((k for k in range(len(out)) if out[k] > least[k]), key=lambda k: out[k])
        out[i] -= 1
    return out


def groups(cols: list[Column], width: int) -> list[list[Column]] | None:
    """The columns split into tables that fit, each led by the identity columns; None when
    not even the identity columns and one other fit, or when the tables would hold fewer
    than two other columns each on average (blocks read better then)."""
    ident = [c for c in cols if c.identity]
    others = [c for c in cols if not c.identity]
    out: list[list[Column]] = []
    for c in others:
        if out and widths([*out[-1], c], width) is not None:
            out[-1].append(c)
        elif widths([*ident, c], width) is not None:
            out.append([*ident, c])
        else:
            return None
    if len(out) > 1 and len(others) < 2 * len(out):
        return None
    return out or [ident]


def _table(cols: list[Column], sizes: list[int], styles: list[str | None]) -> Table:
    table = Table()
    for c, w in zip(cols, sizes, strict=True):
        table.add_column(escape(c.head), width=w, overflow="fold")
    for cells, style in zip(rows(cols), styles, strict=True):
        table.add_row(*[escape(x) for x in cells], style=style)
    return table


def print_columns(
    console: Console, title: str, cols: list[Column], styles: list[str | None]
) -> None:
    """One table, several side by side in turn, or one block per row: whatever fits."""
    parts = groups(cols, console.width)
    if parts is None:
        console.print(escape(title), highlight=False)
        for cells, style in zip(rows(cols), styles, strict=True):
            name = " ".join(x for c, x in zip(cols, cells, strict=True) if c.identity)
            console.print(f"[bold]{escape(name)}[/bold]", style=style, highlight=False)
            for c, x in zip(cols, cells, strict=True):
                if not c.identity:
                    console.print(f"  {escape(c.head)}: {escape(x)}", highlight=False)
        return
    for k, part in enumerate(parts):
        sizes = widths(part, console.width)
        assert sizes is not None
        label = title if len(parts) == 1 else f"{title} ({k + 1}/{len(parts)})"
        # the title on its own line wraps at the terminal's width, not the table's
        console.print(escape(label), style="italic", highlight=False)
        console.print(_table(part, sizes, styles))


def print_table(console: Console, r: Report) -> None:
    cols, lines = main_parts(r, full=False)
    print_columns(console, heading(r), cols, ["yellow" if p.flags else None for p in r.points])
    served = [p for p in r.points if serving.is_serving(p)]
    if served:
        scols, slines = serving_parts(served, full=False)
        title = "Serving (the steady window and the whole run)"
        print_columns(console, title, scols, [None] * len(served))
        for line in slines:
            console.print(escape(line), highlight=False)
    ccols, clines = capacity_parts(r, full=False)
    if ccols:
        print_columns(console, CAPACITY, ccols, [None] * len(ccols[0].cells))
        for line in clines:
            console.print(escape(line), highlight=False)
    for line in studies(r):
        console.print(f"study {escape(line)}", highlight=False)
    console.print(f"[dim]{escape(METHOD)} (--format md or html adds sd and n.)[/dim]")
    for line in lines:
        console.print(escape(line), highlight=False)
