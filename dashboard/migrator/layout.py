"""Lay a revision graph out like ``git log --graph`` (no Django here).

Contract: :func:`layout_graph` takes revisions in Alembic's walk order (newest
first) and returns one :class:`Row` per revision (row ``i`` is the ``i``-th
revision, so no two revisions share a row), the lane of each, and one
:class:`Edge` per (revision, down revision) pair. :func:`svg_paths` turns a
layout into SVG path data, one ``d`` string per lane colour, and
:func:`text_lines` draws it for a terminal.

Algorithm (one pass, top to bottom, O(rows x lanes)):

* ``slots`` is a list of lanes; each slot holds the id of the revision it is
  waiting for (a down revision of something already drawn) or ``None``.
* For each revision ``r``: its lane is the leftmost slot waiting for ``r``;
  if none waits (``r`` is a head), the leftmost free slot (or a new one).
  Every other slot waiting for ``r`` is freed -- those lines join ``r`` here
  (``r`` is a branch point seen from above), which is how lanes are reused.
* ``r``'s first down revision continues in ``r``'s own slot unless another
  slot already waits for it; each further down revision (``r`` is a merge)
  goes to the slot already waiting for it, else to the leftmost free slot.
* An edge runs from ``r``'s row and lane diagonally into its slot on the next
  row, straight down that slot, and diagonally into the parent's lane on the
  parent's row. Slots never move while occupied, so straight parts never
  overlap; a linear history uses one lane.

Why hand-written: the layout is the product itself; no maintained Python
library lays out DAG rows the way ``git log --graph`` does.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

ROW_HEIGHT = 28
LANE_WIDTH = 16
MARGIN = 12
PALETTE_SIZE = 8


class _Rev(Protocol):
    id: str
    down_revisions: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Edge:
    """A line from ``child`` (row, lane) to ``parent`` (row, lane) via ``slot``."""

    child: str
    parent: str
    child_row: int
    child_lane: int
    parent_row: int
    parent_lane: int
    slot: int


@dataclass(frozen=True, slots=True)
class Row:
    """Where one revision is drawn."""

    revision: str
    row: int
    lane: int


@dataclass(frozen=True, slots=True)
class Layout:
    """Rows in walk order, edges, and the number of lanes used (width)."""

    rows: tuple[Row, ...]
    edges: tuple[Edge, ...]
    lanes: int

    def position(self) -> dict[str, Row]:
        """Row of every revision by id."""
        return {row.revision: row for row in self.rows}


def _take_slot(slots: list[str | None], value: str) -> int:
    for i, held in enumerate(slots):
        if held is None:
            slots[i] = value
            return i
    slots.append(value)
    return len(slots) - 1


def layout_graph(revisions: Sequence[_Rev]) -> Layout:
    """Assign rows and lanes; edges to revisions not in ``revisions`` are dropped."""
    known = {rev.id for rev in revisions}
    slots: list[str | None] = []
    rows: list[Row] = []
    pending: list[tuple[str, str, int, int, int]] = []  # child, parent, row, lane, slot
    for index, rev in enumerate(revisions):
        waiting = [i for i, held in enumerate(slots) if held == rev.id]
        if waiting:
            lane = waiting[0]
            for i in waiting[1:]:
                slots[i] = None
        else:
            lane = _take_slot(slots, rev.id)
        rows.append(Row(rev.id, index, lane))
        slots[lane] = None
        for n, parent in enumerate(p for p in rev.down_revisions if p in known):
            if parent in slots:
                slot = slots.index(parent)
            elif n == 0:
                slot, slots[lane] = lane, parent
            else:
                slot = _take_slot(slots, parent)
            pending.append((rev.id, parent, index, lane, slot))
        while slots and slots[-1] is None:
            slots.pop()
    where = {row.revision: row for row in rows}
    edges = tuple(
        Edge(child, parent, row, lane, where[parent].row, where[parent].lane, slot)
        for child, parent, row, lane, slot in pending
    )
    width = max((*(r.lane for r in rows), *(e.slot for e in edges)), default=-1) + 1
    return Layout(rows=tuple(rows), edges=edges, lanes=width)


def lane_x(lane: int) -> int:
    """Centre x of a lane in the SVG, in pixels."""
    return MARGIN + lane * LANE_WIDTH


def row_y(row: int) -> int:
    """Centre y of a row in the SVG, in pixels."""
    return row * ROW_HEIGHT + ROW_HEIGHT // 2


def _edge_path(edge: Edge) -> str:
    x1, y1 = lane_x(edge.child_lane), row_y(edge.child_row)
    x2, y2 = lane_x(edge.parent_lane), row_y(edge.parent_row)
    xs = lane_x(edge.slot)
    if edge.parent_row - edge.child_row <= 1:
        return f"M{x1} {y1}L{x2} {y2}"
    top, bottom = row_y(edge.child_row + 1), row_y(edge.parent_row - 1)
    d = f"M{x1} {y1}L{xs} {top}"
    if bottom > top:
        d += f"V{bottom}"
    return d + f"L{x2} {y2}"


def svg_paths(layout: Layout) -> list[tuple[int, str]]:
    """``(colour index, path data)`` pairs: all edges of one colour in one path."""
    by_colour: dict[int, list[str]] = {}
    for edge in layout.edges:
        by_colour.setdefault(edge.slot % PALETTE_SIZE, []).append(_edge_path(edge))
    return [(colour, "".join(parts)) for colour, parts in sorted(by_colour.items())]


def svg_size(layout: Layout) -> tuple[int, int]:
    """(width, height) of the SVG in pixels."""
    return lane_x(max(layout.lanes, 1)), len(layout.rows) * ROW_HEIGHT


def text_lines(layout: Layout, labels: Iterable[str]) -> list[str]:
    """The graph as terminal lines: ``*`` marks a revision, ``|`` a running lane.

    Lanes are two characters wide; ``labels`` (one per row) follow the lanes.
    """
    active: dict[int, set[int]] = {}
    for edge in layout.edges:
        for row in range(edge.child_row + 1, edge.parent_row):
            active.setdefault(row, set()).add(edge.slot)
    out = []
    for row, label in zip(layout.rows, labels, strict=True):
        cells = [" "] * max(layout.lanes, 1)
        for lane in active.get(row.row, ()):
            cells[lane] = "|"
        cells[row.lane] = "*"
        out.append((" ".join(cells)).rstrip().ljust(2 * layout.lanes) + " " + label)
    return out
