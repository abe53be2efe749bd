"""The channel grid and its block decomposition (numpy; MPI only through the communicator passed).

Axis order is always (x, y, z) = (streamwise, wall-normal, spanwise). x and z are periodic and
uniform (``x_i = i lx / nx``); y is bounded by no-slip walls at ``y = 0`` and ``y = ly`` and may
be stretched. A :class:`Grid` carries the global description plus *this rank's* block
``local = (slice_x, slice_y, slice_z)``.

Per-rank mistakes must not leave the other ranks waiting, so the constructors that take a
communicator are collective and raise the same error on every rank: :meth:`Grid.block` (a
balanced decomposition) agrees on construction errors, :meth:`Grid.collective` (the solver's own
blocks) also checks with :func:`agree_grid` that every rank has the same global grid and that the
blocks tile it. ``Grid(...)`` itself is per-rank (it raises where the mistake is): use it alone
only on one process, or where every rank builds the same grid from the same arguments.
:func:`agree_grid` is the one grid agreement of the collective paths (``init_field``,
``check_field``, ``scatter``, ``gather``); its messages name what differs and on which ranks,
:func:`check_tiling` names the index ranges no rank holds. :func:`agree_global_grid` compares the
global grids alone (:class:`cfdseed.pencils.Slabs`, whose layouts ignore the blocks).
"""

from __future__ import annotations

import hashlib
import math
import pickle
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ._collective import agree, run_agreed
from .errors import DecompositionError, GridError, TransportError
from .operators import WALL_TOL, check_operators, column, wall_points

__all__ = [
    "Grid",
    "WALL_NORMAL_KINDS",
    "wall_normal",
    "parse_y_spec",
    "block_split",
    "balanced_dims",
    "check_tiling",
    "grid_disagreement",
    "agree_grid",
    "agree_global_grid",
]

#: Named wall-normal distributions; ``-cc`` variants are cell-centred (no point on a wall).
WALL_NORMAL_KINDS = ("uniform", "chebyshev", "tanh", "uniform-cc", "chebyshev-cc", "tanh-cc")
_DEFAULT_STRETCH = 2.0


def parse_y_spec(spec: str) -> tuple[str, float]:
    """Split ``"tanh:2.5"`` into ``("tanh", 2.5)``; the stretch defaults to 2.0.

    Raises
    ------
    GridError
        Unknown kind or a stretch that is not a positive number.
    """
    kind, _, arg = spec.partition(":")
    kind = kind.strip().lower()
    if kind not in WALL_NORMAL_KINDS:
        raise GridError(
            f"unknown wall-normal distribution {spec!r}; must be one of {', '.join(WALL_NORMAL_KINDS)}"
            " (tanh kinds take an optional ':stretch', e.g. 'tanh:2.0')"
        )
    stretch = _DEFAULT_STRETCH
    if arg:
        try:
            stretch = float(arg)
        except ValueError:
            raise GridError(f"stretch factor in {spec!r} is not a number") from None
        if not math.isfinite(stretch) or stretch <= 0:
            raise GridError(f"stretch factor in {spec!r} must be a positive finite number")
    return kind, stretch


def wall_normal(spec: str, ny: int, ly: float) -> np.ndarray:
    """Wall-normal coordinates ``(ny,)`` in ``[0, ly]`` for a named distribution.

    ``uniform``/``chebyshev`` (Gauss-Lobatto)/``tanh:s`` include both walls; the ``-cc``
    variants are the cell centres of the same distribution with ``ny + 1`` faces
    (``chebyshev-cc`` gives the Gauss points), so no point lies on a wall.
    """
    kind, stretch = parse_y_spec(spec)
    if ny < 2:
        raise GridError(f"ny must be at least 2, got {ny}")
    base, _, cc = kind.partition("-")
    if cc:
        if base == "chebyshev":
            return 0.5 * ly * (1.0 - np.cos(np.pi * (np.arange(ny) + 0.5) / ny))
        faces = wall_normal(f"{base}:{stretch}", ny + 1, ly)
        return 0.5 * (faces[1:] + faces[:-1])
    s = np.linspace(-1.0, 1.0, ny)
    if base == "uniform":
        eta = s
    elif base == "chebyshev":
        eta = -np.cos(np.pi * np.arange(ny) / (ny - 1))
    else:  # tanh
        eta = np.tanh(stretch * s) / np.tanh(stretch)
    y = 0.5 * ly * (1.0 + eta)
    y[0], y[-1] = 0.0, ly  # exact walls, no round-off
    return y


def block_split(n: int, parts: int, index: int) -> slice:
    """Balanced 1-D split: block ``index`` of ``n`` points in ``parts`` blocks (first ``r`` get one more)."""
    q, r = divmod(n, parts)
    start = index * q + min(index, r)
    return slice(start, start + q + (1 if index < r else 0))


def balanced_dims(size: int, ndims: int = 3, dims: Sequence[int] | None = None) -> tuple[int, ...]:
    """Process-grid dimensions in the style of ``MPI_Dims_create``.

    Entries of ``dims`` that are positive are kept, zeros are filled so that the product equals
    ``size`` and the free dimensions are as balanced as possible (largest first).
    """
    try:
        dims = [0] * ndims if dims is None else [int(d) for d in dims]
    except (TypeError, ValueError):
        raise DecompositionError(f"dims must be {ndims} non-negative integers, got {dims!r}") from None
    if len(dims) != ndims or any(d < 0 for d in dims):
        raise DecompositionError(f"dims must be {ndims} non-negative integers, got {dims}")
    fixed = math.prod(d for d in dims if d > 0)
    free = [i for i, d in enumerate(dims) if d == 0]
    if size % fixed or (not free and fixed != size):
        raise DecompositionError(f"Wrong number of processes ({size}) for dims {dims}")
    rest = size // fixed
    factors: list[int] = []
    p, m = 2, rest
    while p * p <= m:
        while m % p == 0:
            factors.append(p)
            m //= p
        p += 1
    if m > 1:
        factors.append(m)
    parts = [1] * len(free)
    for f in sorted(factors, reverse=True):  # greedy: give each factor to the smallest part
        parts[int(np.argmin(parts))] *= f
    for i, v in zip(free, sorted(parts, reverse=True)):
        dims[i] = v
    return tuple(dims)


def _as_slice(s: Any, n: int, axis: str) -> slice:
    if not isinstance(s, slice):
        raise DecompositionError(f"local[{axis}] must be a slice, got {type(s).__name__}")
    if s.step not in (None, 1):
        raise DecompositionError(f"local[{axis}] must have step 1, got {s}")
    for end in (s.start, s.stop):  # int() would truncate 0.5 silently
        if end is not None and not (isinstance(end, (int, np.integer)) and not isinstance(end, (bool, np.bool_))):
            raise DecompositionError(f"local[{axis}] must have integer bounds, got {s}")
    start = 0 if s.start is None else int(s.start)
    stop = n if s.stop is None else int(s.stop)
    if not 0 <= start <= stop <= n:
        raise DecompositionError(f"local[{axis}] = {start}:{stop} lies outside 0:{n}")
    return slice(start, stop)


def check_tiling(blocks: Sequence[Sequence[tuple[int, int]]], shape: Sequence[int]) -> None:
    """Raise :class:`DecompositionError` unless ``blocks`` tile ``shape`` exactly once.

    ``blocks[r]`` is ``((x0, x1), (y0, y1), (z0, z1))`` of rank ``r``; empty blocks are allowed.
    """
    b = np.asarray(blocks, dtype=np.int64).reshape(len(blocks), 3, 2)
    shp = np.asarray(shape, dtype=np.int64)
    bad = np.nonzero((b[:, :, 0] < 0).any(1) | (b[:, :, 1] > shp).any(1) | (b[:, :, 1] < b[:, :, 0]).any(1))[0]
    if bad.size:
        r = int(bad[0])
        raise DecompositionError(f"block of rank {r} {b[r].tolist()} lies outside the grid {tuple(shape)}")
    vol = np.prod(b[:, :, 1] - b[:, :, 0], axis=1)
    nonempty = np.nonzero(vol > 0)[0]
    lo, hi = b[nonempty, :, 0], b[nonempty, :, 1]
    for i in range(len(nonempty) - 1):  # pairwise overlap, vectorised per row
        ov = (np.maximum(lo[i], lo[i + 1 :]) < np.minimum(hi[i], hi[i + 1 :])).all(axis=1)
        if ov.any():
            j = int(nonempty[i + 1 + int(np.argmax(ov))])
            raise DecompositionError(
                f"blocks of ranks {int(nonempty[i])} and {j} overlap: "
                f"{b[nonempty[i]].tolist()} and {b[j].tolist()}"
            )
    total = int(vol.sum())
    if total != math.prod(shape):
        raise DecompositionError(
            f"blocks cover {total} of {math.prod(shape)} grid points of {tuple(shape)}: the decomposition has gaps"
            f"{_holes(b[nonempty], shp)}"
        )


def _holes(b: np.ndarray, shape: np.ndarray, show: int = 4) -> str:
    """``"; no rank holds x 0:2, y 0:9, z 0:4 and ... (and 1 more box)"``: the points no block covers.

    The blocks' faces cut the grid into at most (2R + 1)^3 boxes, each covered or not as a whole.
    """
    cuts = [np.unique(np.r_[0, n, b[:, d].ravel()]) for d, n in enumerate(shape.tolist())]
    if math.prod(c.size - 1 for c in cuts) > 10**7:
        return ""  # too many boxes to list
    cover = np.zeros([c.size - 1 for c in cuts], dtype=bool)
    for blk in b:
        cover[tuple(slice(*np.searchsorted(c, blk[d])) for d, c in enumerate(cuts))] = True
    holes = np.argwhere(~cover)
    boxes = [", ".join(f"{a} {int(cuts[d][i])}:{int(cuts[d][i + 1])}" for d, (a, i) in enumerate(zip("xyz", h)))
             for h in holes[:show]]
    more = f" (and {len(holes) - show} more box{'es' if len(holes) - show > 1 else ''})" if len(holes) > show else ""
    return f"; no rank holds {' and '.join(boxes)}{more}"


def grid_disagreement(grids: Sequence[Grid]) -> str | None:
    """What differs between the global descriptions of ``grids[r]`` (rank ``r``), or None.

    The first differing attribute (shape, lengths, y, operators) is named with rank 0's value and the first
    other rank's (for y: the first differing point and what each built y from), then the other
    ranks that differ from rank 0 in it.
    """
    ref = grids[0]
    for attr in ("shape", "lengths", "y", "operators"):
        if attr == "y":
            bad = [r for r, g in enumerate(grids) if not np.array_equal(g.y, ref.y)]
        else:
            bad = [r for r, g in enumerate(grids) if getattr(g, attr) != getattr(ref, attr)]
        if not bad:
            continue
        r, g = bad[0], grids[bad[0]]
        if attr == "y":
            k = int(np.argmax(g.y != ref.y))
            what = (f"rank 0 has y[{k}] = {float(ref.y[k])!r}, rank {r} has y[{k}] = {float(g.y[k])!r} "
                    f"(y given as {_y_origin(ref)} on rank 0, {_y_origin(g)} on rank {r})")
        else:
            what = f"rank 0 has {getattr(ref, attr)}, rank {r} has {getattr(g, attr)}"
        more = (f"; rank{'s' if len(bad) > 2 else ''} {', '.join(map(str, bad[1:]))} differ{'' if len(bad) > 2 else 's'}"
                f" from rank 0 too" if len(bad) > 1 else "")
        return f"ranks disagree on the grid ({attr}): {what}{more}"
    return None


def _y_origin(grid: Grid) -> str:
    return repr(grid.y_spec) if grid.y_spec is not None else "an array"


class Grid:
    """Global channel grid plus this rank's block.

    Parameters
    ----------
    shape : (nx, ny, nz)
        Global number of points, streamwise / wall-normal / spanwise.
    lengths : (lx, ly, lz)
        Box size; walls at ``y = 0`` and ``y = ly``; x and z periodic.
    y : str or array_like, default "uniform"
        Wall-normal coordinates ``(ny,)``, strictly increasing inside ``[0, ly]``, or a name from
        :data:`WALL_NORMAL_KINDS` (``"tanh:2.5"`` sets the stretch).
    local : tuple of 3 slices, optional
        This rank's block; the whole grid by default.
    operators : {"central", "spectral"}, default "central"
        The solver's discrete operators, which enforcement and checks use
        (:mod:`cfdseed.operators`): 2nd-order central differences (finite-volume and
        finite-difference codes) or Fourier in x, z and the y-interpolant's derivative (spectral
        codes, e.g. Dedalus; y must then be fit for polynomial interpolation).

    Raises
    ------
    GridError
        Bad shape, lengths, y or operators.
    DecompositionError
        ``local`` not a tuple of three unit-step slices inside the grid.
    """

    def __init__(
        self,
        shape: Sequence[int],
        lengths: Sequence[float],
        y: str | Sequence[float] | np.ndarray = "uniform",
        local: Sequence[slice] | None = None,
        operators: str = "central",
    ) -> None:
        try:
            self.operators: str = check_operators(operators)
        except ValueError as exc:
            raise GridError(str(exc)) from None
        try:
            shp = tuple(int(n) for n in shape)
            if any(int(n) != n for n in shape):
                raise ValueError
        except (TypeError, ValueError):
            raise GridError(f"shape must be three integers (nx, ny, nz), got {shape!r}") from None
        if len(shp) != 3 or min(shp) < 1:
            raise GridError(f"shape must be three positive integers (nx, ny, nz), got {shape!r}")
        if shp[1] < 2:
            raise GridError(f"ny must be at least 2 (two walls), got shape {shp}")
        try:
            lens = tuple(float(v) for v in lengths)
        except (TypeError, ValueError):
            raise GridError(f"lengths must be three numbers (lx, ly, lz), got {lengths!r}") from None
        if len(lens) != 3 or not all(math.isfinite(v) and v > 0 for v in lens):
            raise GridError(f"lengths must be three positive finite numbers (lx, ly, lz), got {lengths!r}")
        self.shape: tuple[int, int, int] = shp  # type: ignore[assignment]
        self.lengths: tuple[float, float, float] = lens  # type: ignore[assignment]
        if isinstance(y, str):
            self.y_spec: str | None = y
            yy = wall_normal(y, shp[1], lens[1])
            if np.any(np.diff(yy) <= 0):  # a strong stretch rounds neighbouring points together
                k = int(np.argmax(np.diff(yy) <= 0))
                raise GridError(f"y={y!r} with ny={shp[1]} gives repeated points in float64 (y[{k}] = {yy[k]:.3g} "
                                f">= y[{k + 1}] = {yy[k + 1]:.3g}): use a smaller stretch or fewer points")
        else:
            self.y_spec = None
            try:
                yy = np.array(y, dtype=np.float64).reshape(-1) if np.ndim(y) == 1 else np.asarray(y)
            except (TypeError, ValueError):
                raise GridError(f"y must be a distribution name or an array of numbers, got {y!r}") from None
            if yy.ndim != 1 or yy.size != shp[1]:
                raise GridError(f"y must have shape ({shp[1]},) to match ny, got {np.shape(y)}")
            if not np.all(np.isfinite(yy)):
                raise GridError("y contains non-finite values")
            if np.any(np.diff(yy) <= 0):
                k = int(np.argmax(np.diff(yy) <= 0))
                raise GridError(f"y must be strictly increasing; y[{k}] = {yy[k]} >= y[{k + 1}] = {yy[k + 1]}")
            tol = WALL_TOL * lens[1]
            if yy[0] < -tol or yy[-1] > lens[1] + tol:
                raise GridError(f"y must lie inside the walls [0, {lens[1]}], got [{yy[0]}, {yy[-1]}]")
            yy = np.clip(yy, 0.0, lens[1])
        self.y: np.ndarray = yy
        self.y.setflags(write=False)
        if operators != "central":
            column(self)  # raises GridError for y points unfit for these operators
        #: Process-grid dimensions when built by :meth:`block`, else None.
        self.dims: tuple[int, int, int] | None = None
        if local is None:
            local = (slice(None),) * 3
        if not isinstance(local, (tuple, list)) or len(local) != 3:
            raise DecompositionError(f"local must be a tuple of three slices (x, y, z), got {local!r}")
        self.local: tuple[slice, slice, slice] = tuple(  # type: ignore[assignment]
            _as_slice(s, n, a) for s, n, a in zip(local, shp, "xyz")
        )

    # -- global description -------------------------------------------------------------
    @property
    def x(self) -> np.ndarray:
        """Streamwise coordinates ``i lx / nx`` (periodic, uniform)."""
        return np.arange(self.shape[0]) * (self.lengths[0] / self.shape[0])

    @property
    def z(self) -> np.ndarray:
        """Spanwise coordinates ``k lz / nz`` (periodic, uniform)."""
        return np.arange(self.shape[2]) * (self.lengths[2] / self.shape[2])

    @property
    def size(self) -> int:
        """Global number of grid points."""
        return math.prod(self.shape)

    @property
    def walls(self) -> tuple[bool, bool]:
        """(lower, upper): whether the first / last y point lies on that wall.

        Within :data:`~cfdseed.operators.WALL_TOL` ``* ly``: the one decision of every operator
        and check (:func:`cfdseed.operators.wall_points`); a grid may have one wall point only.
        """
        return wall_points(self.y, self.lengths[1])

    @property
    def has_walls(self) -> bool:
        """True when the first and last y points lie on the walls."""
        return all(self.walls)

    @property
    def cell_centred(self) -> bool:
        """True when no point lies on either wall (finite-volume cell centres)."""
        return not any(self.walls)

    # -- this rank's block ---------------------------------------------------------------
    @property
    def local_shape(self) -> tuple[int, int, int]:
        """Shape of this rank's block."""
        return tuple(s.stop - s.start for s in self.local)  # type: ignore[return-value]

    @property
    def local_start(self) -> tuple[int, int, int]:
        """Global index of this rank's first point along each axis."""
        return tuple(s.start for s in self.local)  # type: ignore[return-value]

    @property
    def local_size(self) -> int:
        """Number of points in this rank's block."""
        return math.prod(self.local_shape)

    def local_slice(self) -> tuple[slice, slice, slice]:
        """This rank's block as a tuple of slices into the global ``(nx, ny, nz)`` array."""
        return self.local

    def with_local(self, local: Sequence[slice]) -> Grid:
        """The same global grid with another block."""
        g = Grid(self.shape, self.lengths, self.y, local, self.operators)
        g.y_spec, g.dims = self.y_spec, self.dims
        return g

    def global_grid(self) -> Grid:
        """The same global grid with the whole domain as the block (what the root's source sees);
        not decomposed (``dims`` None)."""
        g = self.with_local((slice(None),) * 3)
        g.dims = None
        return g

    def describe(self) -> dict[str, Any]:
        """Plain-data description (shape, lengths, y) that rebuilds the global grid."""
        return {"shape": list(self.shape), "lengths": list(self.lengths), "y": self.y.tolist(),
                "operators": self.operators}

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Grid)
            and self.shape == other.shape
            and self.lengths == other.lengths
            and np.array_equal(self.y, other.y)
            and self.local == other.local
            and self.operators == other.operators
        )

    def __repr__(self) -> str:
        y = self.y_spec if self.y_spec is not None else f"array[{self.shape[1]}]"
        loc = ", ".join(f"{s.start}:{s.stop}" for s in self.local)
        ops = "" if self.operators == "central" else f", operators={self.operators!r}"
        return f"Grid(shape={self.shape}, lengths={self.lengths}, y={y!r}, local=({loc}){ops})"

    # -- decomposition -------------------------------------------------------------------
    @classmethod
    def block(
        cls,
        comm: Any,
        shape: Sequence[int],
        lengths: Sequence[float],
        dims: Sequence[int] | None = None,
        y: str | Sequence[float] | np.ndarray = "uniform",
        operators: str = "central",
    ) -> Grid:
        """Collective: balanced block decomposition over ``comm``; errors raised on every rank.

        Parameters
        ----------
        comm : mpi4py.MPI.Intracomm
            Every rank calls (``Get_rank``, ``Get_size`` and, to agree on errors, ``allreduce``).
        dims : (px, py, pz), optional
            Process grid; zeros are filled as ``MPI_Dims_create`` does. ``(size, 1, 1)`` gives
            x-slabs, ``(0, 1, 0)`` x-z pencils, ``None`` balanced 3-D blocks. Rank ``r`` gets
            process coordinates in C order (x slowest), as ``MPI_Cart_create`` without reorder.
        y, operators
            As for :class:`Grid`.

        Raises
        ------
        GridError
            Bad shape, lengths or y on any rank.
        DecompositionError
            ``dims`` incompatible with the number of ranks.
        """
        size, rank = int(comm.Get_size()), int(comm.Get_rank())

        def build() -> Grid:
            grid = cls(shape, lengths, y, operators=operators)
            pdims = balanced_dims(size, 3, dims)
            coords = np.unravel_index(rank, pdims)
            local = tuple(block_split(n, p, int(c)) for n, p, c in zip(grid.shape, pdims, coords))
            g = grid.with_local(local)
            g.dims = pdims  # type: ignore[assignment]
            return g

        return run_agreed(comm, build)

    @classmethod
    def collective(
        cls,
        comm: Any,
        shape: Sequence[int],
        lengths: Sequence[float],
        y: str | Sequence[float] | np.ndarray = "uniform",
        local: Sequence[slice] | None = None,
        operators: str = "central",
    ) -> Grid:
        """Collective constructor: ``Grid(shape, lengths, y, local, operators)`` on every rank, checked together.

        For a solver that brings its own decomposition (``local`` on each rank). A mistake on any
        rank (a bad argument, a ``local`` out of range, another global grid, blocks that leave gaps
        or overlap) raises the same exception on every rank, so no rank is left waiting in a later
        collective call.

        Parameters
        ----------
        comm : mpi4py.MPI.Intracomm
            Every rank of the decomposition calls.
        shape, lengths, y, local, operators
            As for :class:`Grid`; all but ``local`` the same on every rank.

        Raises
        ------
        GridError
            Bad shape, lengths or y on some rank, or ranks disagreeing on them (named).
        DecompositionError
            Bad ``local`` on some rank, or blocks that do not tile the grid (missing ranges named).
        """
        grid = run_agreed(comm, cls, shape, lengths, y, local, operators)
        agree_grid(comm, grid)
        return grid


def agree_grid(comm: Any, grid: Grid, extras: Mapping[str, Any] | None = None) -> np.ndarray:
    """Collective: check that the ranks' grids are one grid tiled by their blocks; return the blocks.

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm
        Every rank calls with a valid :class:`Grid`.
    grid : Grid
        This rank's grid.
    extras : mapping, optional
        Further values every rank must pass alike (e.g. ``root``, ``dtype``), compared by ``==``;
        they must pickle.

    Returns
    -------
    ndarray (size, 3, 2)
        ``[start, stop)`` of every rank's block along x, y, z.

    Raises
    ------
    GridError
        The global grids differ (:func:`grid_disagreement` says where).
    TransportError
        An ``extras`` value differs between ranks, or does not pickle on some rank.
    DecompositionError
        The blocks do not tile the grid (:func:`check_tiling`).

    All raised on every rank.
    """
    err = None
    mine = None
    try:  # pickled here, not by allgather: a value that does not pickle must fail in the agreement
        mine = _pickled(grid, extras)
    except Exception as exc:  # noqa: BLE001 - re-raised on every rank by agree
        err = exc
    packed = comm.allgather(mine)  # None from the ranks that failed
    blocks = np.zeros((len(packed), 3, 2), dtype=np.int64)
    if err is None and None not in packed:
        try:
            every = [pickle.loads(b) for b in packed]
            msg = grid_disagreement([g for g, _ in every])
            if msg:
                raise GridError(msg)
            for name, value in every[comm.Get_rank()][1].items():
                bad = [r for r, (_, e) in enumerate(every) if e[name] != value]
                if bad:
                    raise TransportError(f"ranks disagree on {name}: rank 0 has {every[0][1][name]}, "
                                         f"rank {bad[0]} has {every[bad[0]][1][name]}")
            blocks = np.array([[(s.start, s.stop) for s in g.local] for g, _ in every], dtype=np.int64)
            check_tiling(blocks, grid.shape)
        except Exception as exc:  # noqa: BLE001 - the same data on every rank; agree keeps it safe
            err = exc
    agree(comm, err)
    return blocks


def _pickled(grid: Grid, extras: Mapping[str, Any] | None) -> bytes:
    """``(grid, extras)`` pickled; a TransportError naming the extra that does not pickle."""
    extras = dict(extras or {})
    try:
        return pickle.dumps((grid, extras), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # noqa: BLE001 - find the culprit for the message
        for name, value in extras.items():
            try:
                pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception as exc:  # noqa: BLE001
                raise TransportError(f"{name} must be a picklable value to be compared between ranks, got "
                                     f"{type(value).__name__} ({type(exc).__name__}: {exc})") from None
        raise


def agree_global_grid(comm: Any, grid: Grid) -> None:
    """Collective: check that every rank passes a :class:`Grid` with the same global description
    (shape, lengths, y, operators); the blocks are not compared.

    One small allgather (a digest of y); the grids themselves are gathered only to name a difference.

    Raises
    ------
    GridError
        ``grid`` not a Grid on some rank, or the ranks' global grids differ
        (:func:`grid_disagreement` says where). Raised on every rank.
    """
    err, key = None, None
    try:
        if not isinstance(grid, Grid):
            raise GridError(f"grid must be a cfdseed.Grid, got {type(grid).__name__}")
        y = hashlib.sha256(np.ascontiguousarray(grid.y).tobytes()).digest()
        key = (grid.shape, grid.lengths, grid.operators, y)
    except Exception as exc:  # noqa: BLE001 - re-raised on every rank by agree
        err = exc
    keys = comm.allgather(key)  # None from the ranks that failed
    if None in keys:
        agree(comm, err)
    if any(k != keys[0] for k in keys):  # the same keys everywhere: every rank takes this branch
        msg = grid_disagreement(comm.allgather(grid))  # None where y differs only in the sign of a zero
        if msg:
            agree(comm, GridError(msg))
