"""Deterministic block tilings for the MPI tests: every rank computes the same list of blocks."""

from __future__ import annotations

import numpy as np

from cfdseed import Grid

KINDS = ("block", "xslab", "yslab", "zslab", "pencil", "bisect0", "bisect1", "bisect2")


def bisect_blocks(shape, parts, seed):
    """A non-Cartesian tiling: split the largest box at a random place until there are ``parts``."""
    rng = np.random.default_rng(seed)
    boxes = [[[0, n] for n in shape]]
    while len(boxes) < parts:
        sizes = [np.prod([b[1] - b[0] for b in box]) for box in boxes]
        box = boxes[int(np.argmax(sizes))]
        axes = [d for d in range(3) if box[d][1] - box[d][0] > 1]
        if not axes:  # nothing left to split: the remaining ranks get empty blocks
            boxes.append([[0, 0], [0, 0], [0, 0]])
            continue
        d = int(rng.choice(axes))
        cut = int(rng.integers(box[d][0] + 1, box[d][1]))
        other = [list(b) for b in box]
        box[d][1], other[d][0] = cut, cut
        boxes.append(other)
    rng.shuffle(boxes)
    return boxes


def decompose(comm, kind, shape, lengths, y, operators="central"):
    """This rank's Grid for a named decomposition kind (see KINDS)."""
    size, rank = comm.Get_size(), comm.Get_rank()
    dims = {"block": None, "xslab": (size, 1, 1), "yslab": (1, size, 1), "zslab": (1, 1, size),
            "pencil": (0, 1, 0)}
    if kind in dims:
        return Grid.block(comm, shape, lengths, dims=dims[kind], y=y, operators=operators)
    box = bisect_blocks(shape, size, int(kind[-1]))[rank]
    return Grid(shape, lengths, y=y, local=tuple(slice(a, b) for a, b in box), operators=operators)
