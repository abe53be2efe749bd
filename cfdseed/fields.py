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

Written in parallel (:func:`write_field_slabs`, ``cfdseed generate`` under ``mpiexec`` with the
distributed strategy), the velocity goes into one raw binary file ``ic.raw`` by MPI-IO (every
rank its own x range, collectively): u, v, w one after the other, each (nz, ny, nx) little-endian
C order; ``ic.h5`` then holds /x, /y, /z and the attributes plus ``storage = "raw"``,
``raw_file`` and ``raw_dtype``, and the XDMF sidecar points ParaView at the raw file
(``Format="Binary"``, ``Seek``). :func:`read_field` reads both forms alike.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from .grid import Grid

__all__ = ["write_field", "write_field_slabs", "read_field", "write_xdmf"]


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

    path = Path(path)
    nx, ny, nz = grid.shape
    if field.shape != (3, nx, ny, nz):
        raise ValueError(f"field must have shape {(3, nx, ny, nz)}, got {field.shape}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with h5py.File(tmp, "w") as h:
        for c, name in enumerate("uvw"):
            h.create_dataset(name, data=np.ascontiguousarray(field[c].transpose(2, 1, 0), dtype=dtype))
        _write_meta(h, grid, attrs)
    tmp.replace(path)
    return write_xdmf(path, grid, np.dtype(dtype))


def _write_meta(h5: Any, grid: Grid, attrs: dict[str, Any] | None) -> None:
    from . import __version__

    h5["x"], h5["y"], h5["z"] = grid.x, grid.y, grid.z
    h5.attrs["lengths"] = np.asarray(grid.lengths)
    h5.attrs["shape"] = np.asarray(grid.shape)
    h5.attrs["layout"] = "u[z, y, x] (C order), i.e. Fortran (x, y, z)"
    h5.attrs["cfdseed_version"] = __version__
    for k, v in (attrs or {}).items():
        h5.attrs[k] = v if isinstance(v, (int, float, str, np.ndarray)) else json.dumps(v)


def write_field_slabs(comm: Any, path: str | Path, slab: np.ndarray, x_range: slice, grid: Grid,
                      attrs: dict[str, Any] | None = None, dtype: Any = np.float64) -> Path:
    """Collective: write a field held as x slabs (this rank: ``slab`` ``(3, nx_local, ny, nz)`` at
    ``x_range``) as ``path`` (HDF5, metadata) + ``<stem>.raw`` (MPI-IO) + XDMF sidecar (module
    docstring). No rank gathers the field. Returns the XDMF path on every rank.

    Raises
    ------
    ValueError
        A slab of the wrong shape, x ranges that do not tile ``0:nx``, or a file that cannot be
        written: on every rank.
    """
    import h5py
    from mpi4py import MPI

    from ._collective import run_agreed
    from ._values import is_integer

    path = Path(path)
    dt = np.dtype(dtype).newbyteorder("<")
    nx, ny, nz = grid.shape
    raw = path.with_suffix(".raw")

    def check() -> tuple[int, int]:
        if not (isinstance(x_range, slice) and x_range.step in (None, 1) and is_integer(x_range.start)
                and is_integer(x_range.stop) and 0 <= x_range.start <= x_range.stop <= nx):
            raise ValueError(f"x_range must be a slice start:stop with 0 <= start <= stop <= nx = {nx}, "
                             f"got {x_range!r}")
        want = (3, x_range.stop - x_range.start, ny, nz)
        if np.shape(slab) != want:
            raise ValueError(f"slab must have shape {want} on rank {comm.Get_rank()}, got {np.shape(slab)}")
        return int(x_range.start), int(x_range.stop)

    ranges = comm.allgather(run_agreed(comm, check))
    filled = sorted(r for r in ranges if r[1] > r[0])
    if [r[0] for r in filled] != [0] + [r[1] for r in filled[:-1]] or (filled[-1][1] if filled else 0) != nx:
        raise ValueError(f"the ranks' x ranges {[f'{a}:{b}' for a, b in ranges]} do not tile 0:{nx} "
                         "(gaps or overlaps)")  # the same on every rank

    def meta() -> None:
        if comm.Get_rank() == 0:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp")
            with h5py.File(tmp, "w") as h:
                _write_meta(h, grid, attrs)
                h.attrs["storage"] = "raw"
                h.attrs["raw_file"] = raw.name
                h.attrs["raw_dtype"] = dt.str
            tmp.replace(path)
    run_agreed(comm, meta)
    mpitype = MPI.DOUBLE if dt.itemsize == 8 else MPI.FLOAT
    n = nx * ny * nz
    nxl = x_range.stop - x_range.start

    def write() -> None:  # every step between two collectives agreed: each rank leaves by Close
        # an open failing on some ranks only leaves the others' handles open (Close is collective)
        fh = run_agreed(comm, MPI.File.Open, comm, str(raw), MPI.MODE_WRONLY | MPI.MODE_CREATE)
        filetype = None
        try:
            run_agreed(comm, fh.Set_size, 3 * n * dt.itemsize)  # MPI-IO errors: some ranks only
            if nxl:
                filetype = mpitype.Create_subarray([nz, ny, nx], [nz, ny, nxl], [0, 0, x_range.start]).Commit()
            for c in range(3):
                disp = c * n * dt.itemsize
                # the file's order (x fastest): one component's copy, agreed (a rank out of memory)
                buf = run_agreed(comm, np.ascontiguousarray, slab[c].transpose(2, 1, 0) if nxl else
                                 np.zeros(0), dtype=dt)
                run_agreed(comm, fh.Set_view, disp, mpitype, filetype or mpitype)
                run_agreed(comm, fh.Write_all, buf)  # a rank's write error (disk full) raised on all
                del buf
        finally:
            if filetype is not None:
                filetype.Free()
            fh.Close()
    write()
    xmf = run_agreed(comm, lambda: write_xdmf(path, grid, dt, raw=raw.name) if comm.Get_rank() == 0 else None)
    return comm.bcast(xmf, root=0)


def read_field(path: str | Path) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float], dict[str, Any]]:
    """Read a file written by :func:`write_field`: field ``(3, nx, ny, nz)`` float64, y, lengths, attrs.

    Raises
    ------
    DatasetError
        Missing file (or a folder), not HDF5, or not in the layout of the module docstring.
    """
    import h5py

    from .errors import DatasetError

    p = Path(path)
    if p.is_dir():
        raise DatasetError(f"field file {str(p)!r} is a folder; name the file in it")
    if not p.is_file():
        raise DatasetError(f"field file {str(p)!r} does not exist")
    try:
        with h5py.File(p, "r") as h:
            raw = h.attrs.get("storage") == "raw"
            missing = [k for k in (("y",) if raw else ("u", "v", "w", "y")) if k not in h]
            if missing or "lengths" not in h.attrs:
                raise DatasetError(f"{p}: not a cfdseed field file (missing {', '.join(missing) or 'attribute lengths'}); "
                                   "expected /u, /v, /w (nz, ny, nx), /y and attribute lengths")
            y = np.asarray(h["y"][...], dtype=np.float64)
            lengths = tuple(float(v) for v in h.attrs["lengths"])
            attrs = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in h.attrs.items()}
            if raw:
                comps = _read_raw(p, attrs)
            else:
                comps = [np.asarray(h[k][...], dtype=np.float64).transpose(2, 1, 0) for k in "uvw"]
    except OSError as exc:
        raise DatasetError(f"{p}: cannot read as HDF5: {exc}") from None
    shapes = {c.shape for c in comps}
    if len(shapes) != 1 or comps[0].shape[1] != y.size or len(lengths) != 3:
        raise DatasetError(f"{p}: components {[c.shape for c in comps]}, y of {y.size} points and lengths "
                           f"{lengths} do not fit together")
    return np.stack(comps), y, lengths, attrs  # type: ignore[return-value]


def _read_raw(p: Path, attrs: dict[str, Any]) -> list[np.ndarray]:
    """The three components ``(nx, ny, nz)`` float64 of a field stored raw (:func:`write_field_slabs`)."""
    from .errors import DatasetError

    nx, ny, nz = (int(v) for v in attrs["shape"])
    raw = p.with_name(str(attrs.get("raw_file", "")))
    dt = np.dtype(str(attrs.get("raw_dtype", "<f8")))
    if not raw.is_file() or raw.stat().st_size != 3 * nx * ny * nz * dt.itemsize:
        raise DatasetError(f"{p}: its raw data {raw.name} is missing or not {3 * nx * ny * nz * dt.itemsize} bytes")
    data = np.memmap(raw, dtype=dt, mode="r", shape=(3, nz, ny, nx))
    return [np.asarray(data[c], dtype=np.float64).transpose(2, 1, 0) for c in range(3)]


def write_xdmf(h5path: Path, grid: Grid, dtype: np.dtype, raw: str | None = None) -> Path:
    """XDMF 3 sidecar ``<stem>.xmf`` for a file written by :func:`write_field` (or, with ``raw``, by
    :func:`write_field_slabs`: the velocity read from that raw file)."""
    nx, ny, nz = grid.shape
    name = h5path.name
    prec = dtype.itemsize
    dims = f"{nz} {ny} {nx}"

    def item(path: str, n: str, p: int = 8) -> str:
        if raw is not None and path in "uvw":
            seek = "uvw".index(path) * nx * ny * nz * p
            return (f'<DataItem Dimensions="{n}" NumberType="Float" Precision="{p}" Format="Binary" '
                    f'Endian="Little" Seek="{seek}">{raw}</DataItem>')
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
