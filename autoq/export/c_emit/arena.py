"""The static activation arena of the emitted model: one offset per op output."""
from __future__ import annotations

import numpy as np

from autoq.export.graph import ExportGraph

IN_PLACE = ("act", "affine", "identity")   # element-wise: y[i] depends on x[i] only


def numel(shape) -> int:
    return int(np.prod(shape)) if len(shape) else 1


def _last_readers(graph: ExportGraph, order: list) -> dict[str, int]:
    """{tensor: index in ``order`` of its last reader}; the graph output lives to the end."""
    last = {}
    for i, op in enumerate(order):
        for t in op.inputs:
            last[t] = i
    last[graph.output] = len(order)
    return last


def plan_arena(graph: ExportGraph) -> tuple[dict[str, int], int]:
    """First-fit offsets (in floats) of every op output in one arena; returns (offsets, size).

    A tensor lives from its producer to its last reader (the graph output to the end); an
    op's output never overlaps its own inputs, except that the element-wise ops (act, affine,
    identity) write in place over an input they are the last reader of.
    """
    order = [op for op in graph.ops if op.kind != "input"]
    last = _last_readers(graph, order)
    live: list[tuple[int, int, str]] = []
    offsets, size = {}, 0
    for i, op in enumerate(order):
        need = numel(op.shape)
        src = op.inputs[0] if op.inputs else None
        if op.kind in IN_PLACE and src in offsets and last.get(src) == i:
            offsets[op.output] = offsets[src]          # take over the input's block
            live = [(off, n, op.output if t == src else t) for off, n, t in live]
            live = [blk for blk in live if last.get(blk[2], -1) > i]
            continue
        start = 0
        for off, n, _ in sorted(live):
            if off - start >= need:
                break
            start = max(start, off + n)
        offsets[op.output] = start
        live.append((start, need, op.output))
        size = max(size, start + need)
        live = [blk for blk in live if last.get(blk[2], -1) > i]
    return offsets, size
