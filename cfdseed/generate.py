"""The ``cfdseed generate`` job: an initial condition for a grid, written as a 3-D field file
(HDF5 + XDMF, :mod:`cfdseed.fields`) with a PNG quick-look.

Python::

    from cfdseed.generate import generate
    result = generate(Grid((64, 65, 48), (12.566, 2, 4.189), y="tanh:2.0"), "ic.h5",
                      source="gan", options={"re_tau": 180}, seed=1)
    result.report.passed

Command line (:mod:`cfdseed.cli`)::

    cfdseed generate --shape 64 65 48 --lengths 12.566 2 4.189 --y tanh:2.0 --re-tau 180 --seed 1 --out ic.h5

The field is built by a named source (default ``gan``; any of ``cfdseed.sources``) exactly as
``init_field`` builds it on its root, checked with :func:`cfdseed.constraints.check_field`, and
written by :func:`cfdseed.fields.write_field` with the attributes source, options (JSON), seed,
bulk_velocity, report (JSON of the constraint report), model (gan) and re_tau, u_tau, nu when the
units are known (the source's resolved :class:`cfdseed.units.Units`: every built-in source except
a snapshot of a file without units). ``ic.png`` (:func:`quicklook`) shows u' (u minus its plane
average) on the y-z plane x = 0 and on the x-z plane nearest y+ = 15 (or y = 0.1 h when Re_tau is
unknown).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._values import json_plain
from .fields import write_field
from .grid import Grid

__all__ = ["Generated", "generate", "generate_slabs", "quicklook"]

log = logging.getLogger(__name__)


@dataclass
class Generated:
    """What :func:`generate` wrote and found."""

    path: Path  # the HDF5 field file
    xdmf: Path  # its XDMF sidecar
    picture: Path | None  # the PNG quick-look (None when not drawn)
    report: Any  # ConstraintReport of the field as stored
    enforcement: Any | None  # the source's enforcement report (gan), else None
    raw: Path | None = None  # the velocity by MPI-IO (generate_slabs); None: it is in ``path``


def _replayable(options: Mapping[str, Any]) -> dict[str, Any]:
    """The options as recorded in a field file: JSON values as they are (``calibrate`` None stays
    null, so the record can be passed back), numpy numbers and arrays as JSON numbers and lists,
    anything else (a path object, a model) as text."""
    out = {}
    for k, v in options.items():
        try:
            out[str(k)] = json.loads(json.dumps(v, allow_nan=False, default=json_plain))
        except (TypeError, ValueError):
            out[str(k)] = str(v)
    return out


def generate(grid: Grid, out: str | Path, *, source: str = "gan", options: Mapping[str, Any] | None = None,
             seed: int | None = None, dtype: str = "float64", picture: bool = True) -> Generated:
    """Build a field with a named source, check it and write it (+ XDMF sidecar and PNG).

    Parameters
    ----------
    grid
        The global grid (its ``local`` block is ignored).
    out
        HDF5 file to write; ``<stem>.xmf`` and ``<stem>.png`` go next to it.
    source, options
        A registered source name and its options (:func:`cfdseed.sources.resolve`).
    seed
        Seed of ``np.random.default_rng`` (None: a fresh one, :func:`fresh_seed`); stored in the file,
        so the field can be made again.
    dtype
        Stored precision, ``"float32"`` or ``"float64"``; the check runs on the stored values.
    picture
        Draw the PNG quick-look.

    Returns
    -------
    Generated
        Paths written and the constraint report; ``report.passed`` says whether the checks pass.

    Raises
    ------
    SourceError, GridError, ConfigError
        Unknown source or options, or a source that fails on this grid; ConfigError also for an
        ``out`` that cannot be written or a ``seed`` that is not a non-negative integer below 2**64
        (checked before the field is built).
    """
    from mpi4py import MPI

    from .constraints import check_field
    from .sources import build, resolve

    out = Path(out)
    _check_writable(out)
    options = dict(options or {})
    seed = fresh_seed() if seed is None else _check_seed(seed)
    built = build(resolve(source, options), grid, np.random.default_rng(seed))
    field = np.asarray(built.field)
    report = check_field(MPI.COMM_SELF, grid, field.astype(dtype))
    syn = built.info.synthesis  # None except for gan
    units = built.info.units  # every built-in source but a snapshot of a file without units
    re_tau = units.re_tau if units else options.get("re_tau")
    attrs: dict[str, Any] = {
        "source": source, "options": _replayable(options),
        "seed": seed, "report": report.to_dict(),
        "bulk_velocity": float(report.bulk_velocity),
    }
    attrs.update(_synthesis_attrs(syn))
    if units is not None:
        attrs.update(re_tau=units.re_tau, u_tau=units.u_tau, nu=units.nu)
    else:  # no resolved units: record whatever units the user stated, so evaluate can work in wall units
        attrs.update({k: float(options[k]) for k in ("re_tau", "u_tau", "nu") if options.get(k) is not None})
    xmf = write_field(out, field, grid, attrs, dtype=dtype)
    png = None
    if picture:
        png = quicklook(out.with_suffix(".png"), field, grid, re_tau, title=f"cfdseed generate --source {source}")
    log.info("wrote %s (%s): checks %s", out, source, "passed" if report.passed else "FAILED")
    return Generated(out, xmf, png, report, built.info.enforcement)


def generate_slabs(comm: Any, grid: Grid, out: str | Path, *, source: str = "gan",
                   options: Mapping[str, Any] | None = None, seed: int | None = None, dtype: str = "float64",
                   picture: bool = True) -> Generated:
    """Collective: :func:`generate` with every rank building and writing its own x slab.

    The source's distributed path (:meth:`cfdseed.sources.Source.build_slabs`), the checks on the
    slabs (:func:`cfdseed.constraints.check_field`), MPI-IO output
    (:func:`cfdseed.fields.write_field_slabs`) and the quick-look from two gathered planes: no rank
    holds the global field. ``seed`` None: the root's fresh seed (:func:`fresh_seed`), broadcast and stored.
    Returns the same :class:`Generated` on every rank.

    Raises
    ------
    SourceError, GridError, ConfigError
        As :func:`generate`, on every rank; a source without a distributed path.
    """
    from ._collective import run_agreed
    from .constraints import check_field
    from .fields import write_field_slabs
    from .pencils import Slabs
    from .sources import resolve

    out = Path(out)
    run_agreed(comm, lambda: _check_writable(out) if comm.Get_rank() == 0 else None)  # the root writes OUT.h5
    options = dict(options or {})
    seed = run_agreed(comm, _check_seed, seed) if seed is not None else comm.bcast(
        fresh_seed() if comm.Get_rank() == 0 else None, root=0)
    fn = run_agreed(comm, resolve, source, options)
    built = run_agreed(comm, lambda: fn.build_slabs(comm, grid.global_grid(), np.random.default_rng(seed))
                       if getattr(fn, "distributable", False) else _no_slabs(source))
    slab, info = built.field, built.info
    del built
    slabs = Slabs(comm, grid)
    local = Grid(grid.shape, grid.lengths, y=grid.y, local=(slabs.x, slice(None), slice(None)), operators=grid.operators)
    stored = run_agreed(comm, slab.astype, dtype, copy=False)  # float64: the slab itself (agreed: a float32 copy)
    del slab
    report = check_field(comm, local, stored)
    units = info.units
    attrs: dict[str, Any] = {
        "source": source, "options": _replayable(options),
        "seed": seed, "report": report.to_dict(),
        "bulk_velocity": float(report.bulk_velocity), "strategy": "distributed",
    }
    attrs.update(_synthesis_attrs(info.synthesis))
    if units is not None:
        attrs.update(re_tau=units.re_tau, u_tau=units.u_tau, nu=units.nu)
    xmf = write_field_slabs(comm, out, stored, slabs.x, grid, attrs, dtype=dtype)
    png = None
    if picture:
        from .pencils import _plane_mean

        j = _near_wall_row(grid, units.re_tau if units else options.get("re_tau"))
        mean = _plane_mean(comm, stored[:1], grid)[0]  # (ny,), summed in float64
        rows = comm.gather(stored[0, :, j] - mean[j], root=0)

        def draw() -> Path | None:  # rank 0 holds x = 0; a drawing error is raised on every rank
            if comm.Get_rank() != 0:
                return None
            return quicklook_planes(out.with_suffix(".png"), stored[0, 0] - mean[:, None], np.concatenate(rows), grid,
                                    j, title=f"cfdseed generate --source {source} (distributed)")
        png = comm.bcast(run_agreed(comm, draw), root=0)
    log.info("wrote %s (%s, distributed over %d ranks): checks %s", out, source, comm.Get_size(),
             "passed" if report.passed else "FAILED")
    return Generated(out, xmf, png, report, info.enforcement, raw=out.with_suffix(".raw"))


def fresh_seed() -> int:
    """A seed from fresh OS entropy that an HDF5 attribute holds (63 bits, non-negative)."""
    return int(np.random.SeedSequence().generate_state(1, np.uint64)[0] >> np.uint64(1))


def _check_seed(seed: Any) -> int:
    """``seed`` as an int: a non-negative integer that the field file can record (below 2**64)."""
    from ._values import is_integer
    from .errors import ConfigError

    if not (is_integer(seed) and 0 <= seed < 2**64):
        raise ConfigError(f"seed must be a non-negative integer below 2**64 (or None: a fresh one), got {seed!r}")
    return int(seed)


def _check_writable(out: Path) -> None:
    """ConfigError unless a file can be created where ``out`` goes (its folder made if missing):
    checked before the field is built, not after."""
    from .errors import ConfigError

    probe = out.with_name(f".{out.name}.tmp")  # the temporary file write_field writes first
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        probe.open("wb").close()
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"cannot write {out}: creating a file in {out.parent} failed "
                          f"({exc.strerror or exc})") from None


def _synthesis_attrs(syn: Any) -> dict[str, Any]:
    """The field file's record of a ``gan`` synthesis (None for other sources): the model and, when
    the first field was out of the calibration's reach, the redraws."""
    out: dict[str, Any] = {}
    if syn is not None and syn.model:
        out["model"] = syn.model
    if syn is not None and syn.redraws:
        out["redraws"] = int(syn.redraws)
    return out


def _no_slabs(source: str) -> Any:
    from .errors import SourceError

    raise SourceError(f"source {source!r} has no distributed path; run cfdseed generate with --strategy root")


def _near_wall_row(grid: Grid, re_tau: float | None) -> int:
    """The row of the quick-look's x-z plane: nearest y+ = 15 (else y = 0.1 h)."""
    h = 0.5 * grid.lengths[1]
    y_near = 15.0 * h / re_tau if re_tau else 0.1 * h
    return int(np.argmin(np.abs(grid.y - y_near)))


def quicklook(path: str | Path, field: np.ndarray, grid: Grid, re_tau: float | None = None, title: str = "") -> Path:
    """PNG: u' on the y-z plane x = 0 and on the x-z plane nearest y+ = 15 (else y = 0.1 h)."""
    j = _near_wall_row(grid, re_tau)
    up = field[0] - field[0].mean(axis=(0, 2), keepdims=True)  # (nx, ny, nz)
    return quicklook_planes(path, up[0], up[:, j], grid, j, title)


def quicklook_planes(path: str | Path, yz: np.ndarray, xz: np.ndarray, grid: Grid, j: int, title: str = "") -> Path:
    """The quick-look from its two planes of u': ``yz`` (ny, nz) at x = 0, ``xz`` (nx, nz) at row ``j``."""
    from .report import figure

    fig = figure(12, 3.8)
    a, b = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.6]})
    for ax, (h1, h2, data, xl, yl, ttl) in zip((a, b), (
        (grid.z, grid.y, yz, "z", "y", "u' at x = 0 (y-z plane)"),
        (grid.x, grid.z, xz.T, "x", "z", f"u' at y = {grid.y[j]:.4g} (x-z plane)"),
    )):
        lim = float(np.abs(data).max()) or 1.0  # each panel its own symmetric scale
        m = ax.pcolormesh(h1, h2, data, cmap="RdBu_r", vmin=-lim, vmax=lim, shading="nearest")
        ax.set(xlabel=xl, ylabel=yl, title=ttl, aspect="equal")
        fig.colorbar(m, ax=ax, shrink=0.8, label="u'")
    if title:
        fig.suptitle(title)
    path = Path(path)
    fig.savefig(path, dpi=110)
    return path
