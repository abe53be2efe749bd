"""The 3-D field file format: one velocity field on a channel grid as HDF5 + an XDMF sidecar.

Written by ``cfdseed generate`` (:mod:`cfdseed.generate`) and by the benchmarks; read by the
``snapshot`` source and ``cfdseed evaluate --fields``. :func:`read_field` is the one reader.
HDF5 layout (``ic.h5``)::

    /u, /v, /w   float (nz, ny, nx)  C order (z, y, x), i.e. Fortran order (x, y, z)
    /x (nx,), /y (ny,), /z (nz,)     coordinates (walls at y = 0 and y = ly)
    attrs        lengths (lx, ly, lz), shape (nx, ny, nz), layout, cfdseed_version; whatever the
                 writer adds (``cfdseed generate``: source, options (JSON), seed, bulk_velocity,
                 report (JSON of the constraint report), model; re_tau, u_tau, nu when known)

``ic.xmf`` (ParaView: open it, pick the Xdmf3 reader) describes the rectilinear grid and the point
data u, v, w and the vector velocity.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from .grid import Grid

__all__ = ["write_field", "read_field", "write_xdmf"]


def write_field(path: str | Path, field: np.ndarray, grid: Grid, attrs: dict[str, Any] | None = None,
                dtype: Any = np.float64) -> Path:
    """Write a global field ``(3, nx, ny, nz)`` in the layout of the module docstring + XDMF sidecar.

    Non-array attribute values are stored as JSON. Returns the path of the XDMF sidecar.

    Raises
    ------
    ValueError
        ``field`` does not have the shape ``(3, *grid.shape)``.
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
