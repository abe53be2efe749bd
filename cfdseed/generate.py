"""``cfdseed generate``: write an initial condition for a grid as HDF5 + XDMF sidecar + PNG quick-look.

Usage::

    cfdseed generate --model run/model.pt --shape 64 65 48 --lengths 12.566 2 4.189 \\
        --y tanh:2.0 --re-tau 180 --seed 1 --out ic.h5
    cfdseed generate --source streaks --shape 64 65 48 --lengths 12.566 2 4.189 --out streaks.h5

The field is built by a named source (default ``gan``; any of ``cfdseed.sources``) exactly as
``init_field`` builds it on its root, checked with :func:`cfdseed.constraints.check_field`, and
written by :func:`write_field`. HDF5 layout (``ic.h5``)::

    /u, /v, /w   float (nz, ny, nx)  C order (z, y, x), i.e. Fortran order (x, y, z)
    /x (nx,), /y (ny,), /z (nz,)     coordinates (walls at y = 0 and y = ly)
    attrs        lengths (lx, ly, lz), shape (nx, ny, nz), source, options (JSON), seed,
                 bulk_velocity, report (JSON of the constraint report), cfdseed_version;
                 re_tau, u_tau, nu when the units are known (gan; any source given --re-tau etc.)

:func:`read_field` is the one reader of this format (the ``snapshot`` source and
``cfdseed evaluate --fields`` use it).

``ic.xmf`` (ParaView: open it, pick the Xdmf3 reader) describes the rectilinear grid and the point
data u, v, w and the vector velocity; ``ic.png`` shows u' (u minus its plane average) on the y-z
plane x = 0 and on the x-z plane nearest y+ = 15 (or y = 0.1 h when Re_tau is unknown).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from .grid import Grid

__all__ = ["write_field", "read_field", "write_xdmf", "quicklook", "parse_options", "cli_run"]

log = logging.getLogger(__name__)


def write_field(path: str | Path, field: np.ndarray, grid: Grid, attrs: dict[str, Any] | None = None,
                dtype: Any = np.float64) -> Path:
    """Write a global field ``(3, nx, ny, nz)`` in the layout of the module docstring (+ XDMF sidecar).

    Returns the path of the XDMF sidecar.
    """
    import h5py

    from . import __version__

    path = Path(path)
    nx, ny, nz = grid.shape
    if field.shape != (3, nx, ny, nz):
        raise ValueError(f"field must have shape {(3, nx, ny, nz)}, got {field.shape}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with h5py.File(tmp, "w") as h:
        for c, name in enumerate("uvw"):
            h.create_dataset(name, data=np.ascontiguousarray(field[c].transpose(2, 1, 0), dtype=dtype))
        h["x"], h["y"], h["z"] = grid.x, grid.y, grid.z
        h.attrs["lengths"] = np.asarray(grid.lengths)
        h.attrs["shape"] = np.asarray(grid.shape)
        h.attrs["layout"] = "u[z, y, x] (C order), i.e. Fortran (x, y, z)"
        h.attrs["cfdseed_version"] = __version__
        for k, v in (attrs or {}).items():
            h.attrs[k] = v if isinstance(v, (int, float, str, np.ndarray)) else json.dumps(v)
    tmp.replace(path)
    return write_xdmf(path, grid, np.dtype(dtype))


def read_field(path: str | Path) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float], dict[str, Any]]:
    """Read a file written by :func:`write_field`: field ``(3, nx, ny, nz)`` float64, y, lengths, attrs.

    Raises
    ------
    DatasetError
        Missing file, not HDF5, or not in the layout of the module docstring.
    """
    import h5py

    from .errors import DatasetError

    p = Path(path)
    if not p.is_file():
        raise DatasetError(f"field file {str(p)!r} does not exist")
    try:
        with h5py.File(p, "r") as h:
            missing = [k for k in ("u", "v", "w", "y") if k not in h]
            if missing or "lengths" not in h.attrs:
                raise DatasetError(f"{p}: not a cfdseed field file (missing {', '.join(missing) or 'attribute lengths'}); "
                                   "expected /u, /v, /w (nz, ny, nx), /y and attribute lengths")
            comps = [np.asarray(h[k][...], dtype=np.float64).transpose(2, 1, 0) for k in "uvw"]
            y = np.asarray(h["y"][...], dtype=np.float64)
            lengths = tuple(float(v) for v in h.attrs["lengths"])
            attrs = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in h.attrs.items()}
    except OSError as exc:
        raise DatasetError(f"{p}: cannot read as HDF5: {exc}") from None
    shapes = {c.shape for c in comps}
    if len(shapes) != 1 or comps[0].shape[1] != y.size or len(lengths) != 3:
        raise DatasetError(f"{p}: components {[c.shape for c in comps]}, y of {y.size} points and lengths "
                           f"{lengths} do not fit together")
    return np.stack(comps), y, lengths, attrs  # type: ignore[return-value]


def write_xdmf(h5path: Path, grid: Grid, dtype: np.dtype) -> Path:
    """XDMF 3 sidecar ``<stem>.xmf`` for a file written by :func:`write_field`."""
    nx, ny, nz = grid.shape
    name = h5path.name
    prec = dtype.itemsize
    dims = f"{nz} {ny} {nx}"

    def item(path: str, n: str, p: int = 8) -> str:
        return (f'<DataItem Dimensions="{n}" NumberType="Float" Precision="{p}" Format="HDF">'
                f"{name}:/{path}</DataItem>")

    attrs = "\n".join(
        f'      <Attribute Name="{c}" AttributeType="Scalar" Center="Node">{item(c, dims, prec)}</Attribute>'
        for c in "uvw"
    )
    vec = (f'      <Attribute Name="velocity" AttributeType="Vector" Center="Node">\n'
           f'        <DataItem ItemType="Function" Function="JOIN($0, $1, $2)" Dimensions="{dims} 3">\n'
           + "\n".join(f"          {item(c, dims, prec)}" for c in "uvw")
           + "\n        </DataItem>\n      </Attribute>")
    text = f"""<?xml version="1.0" ?>
<Xdmf Version="3.0">
  <Domain>
    <Grid Name="cfdseed" GridType="Uniform">
      <Topology TopologyType="3DRectMesh" Dimensions="{dims}"/>
      <Geometry GeometryType="VXVYVZ">
        {item("x", str(nx))}
        {item("y", str(ny))}
        {item("z", str(nz))}
      </Geometry>
{attrs}
{vec}
    </Grid>
  </Domain>
</Xdmf>
"""
    out = h5path.with_suffix(".xmf")
    out.write_text(text)
    return out


def quicklook(path: str | Path, field: np.ndarray, grid: Grid, re_tau: float | None = None, title: str = "") -> Path:
    """PNG: u' on the y-z plane x = 0 and on the x-z plane nearest y+ = 15 (else y = 0.1 h)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h = 0.5 * grid.lengths[1]
    y_near = 15.0 * h / re_tau if re_tau else 0.1 * h
    j = int(np.argmin(np.abs(grid.y - y_near)))
    up = field[0] - field[0].mean(axis=(0, 2), keepdims=True)  # (nx, ny, nz)
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 3.8), gridspec_kw={"width_ratios": [1, 1.6]}, layout="constrained")
    for ax, (h1, h2, data, xl, yl, ttl) in zip((a, b), (
        (grid.z, grid.y, up[0], "z", "y", "u' at x = 0 (y-z plane)"),
        (grid.x, grid.z, up[:, j].T, "x", "z", f"u' at y = {grid.y[j]:.4g} (x-z plane)"),
    )):
        lim = float(np.abs(data).max()) or 1.0  # each panel its own symmetric scale
        m = ax.pcolormesh(h1, h2, data, cmap="RdBu_r", vmin=-lim, vmax=lim, shading="nearest")
        ax.set(xlabel=xl, ylabel=yl, title=ttl, aspect="equal")
        fig.colorbar(m, ax=ax, shrink=0.8, label="u'")
    if title:
        fig.suptitle(title)
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def parse_options(items: list[str] | None) -> dict[str, Any]:
    """``["key=value", ...]`` -> dict; values parsed as JSON where possible (numbers, lists, null)."""
    from .errors import ConfigError

    out: dict[str, Any] = {}
    for it in items or []:
        key, sep, val = it.partition("=")
        if not sep or not key:
            raise ConfigError(f"source option {it!r} must look like key=value")
        try:
            out[key.strip()] = json.loads(val)
        except json.JSONDecodeError:
            out[key.strip()] = val
    return out


def cli_run(args: Any) -> int:
    """Run ``cfdseed generate`` from parsed arguments (see ``cfdseed generate --help``).

    Under ``mpiexec`` only rank 0 works and writes; every rank returns its exit status.
    """
    from mpi4py import MPI

    from ._collective import agree

    world = MPI.COMM_WORLD
    rc, err = None, None
    if world.Get_rank() == 0:
        try:
            rc = _generate(args)
        except Exception as exc:  # noqa: BLE001 - re-raised on every rank by agree
            err = exc
    agree(world, err)
    return int(world.bcast(rc, root=0))


def _generate(args: Any) -> int:
    from mpi4py import MPI

    from .constraints import check_field
    from .errors import ConfigError
    from .sources import resolve

    grid = Grid(args.shape, args.lengths, y=args.y)
    options = parse_options(args.option)
    for key, val in (("re_tau", args.re_tau), ("u_tau", args.u_tau), ("nu", args.nu), ("bulk", args.bulk),
                     ("model", args.model), ("device", args.device), ("corr_length", args.corr_length)):
        if val is not None:
            if key in options:
                raise ConfigError(f"{key} given both as --{key.replace('_', '-')} and as --option")
            options[key] = val
    src = resolve(args.source, options)
    field = src(grid, np.random.default_rng(args.seed))
    field = np.asarray(field)
    report = check_field(MPI.COMM_SELF, grid, field.astype(args.dtype))
    info = getattr(src, "last_info", None)
    units = getattr(info, "units", None)
    re_tau = getattr(units, "re_tau", None) or options.get("re_tau")
    attrs: dict[str, Any] = {
        "source": args.source, "options": {k: str(v) for k, v in options.items()},
        "seed": -1 if args.seed is None else int(args.seed), "report": report.to_dict(),
        "bulk_velocity": float(report.bulk_velocity),
    }
    if getattr(info, "model", ""):
        attrs["model"] = info.model
    if units is not None:
        attrs.update(re_tau=units.re_tau, u_tau=units.u_tau, nu=units.nu)
    else:  # baselines: record whatever units the user stated, so evaluate can work in wall units
        attrs.update({k: float(options[k]) for k in ("re_tau", "u_tau", "nu") if options.get(k) is not None})
    out = Path(args.out)
    xmf = write_field(out, field, grid, attrs, dtype=args.dtype)
    png = None
    if not args.no_png:
        png = quicklook(out.with_suffix(".png"), field, grid, re_tau, title=f"cfdseed generate --source {args.source}")
    if info is not None and getattr(info, "enforcement", None) is not None:
        print(info.enforcement)
    print(report)
    print(f"wrote {out}, {xmf}" + (f", {png}" if png else ""))
    return 0 if report.passed else 1
