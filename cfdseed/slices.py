"""The HDF5 slice dataset format (version 1): writer, validated reader, attribute checks.

Imports only numpy and h5py (the Dedalus environment writes datasets without torch). The training
pipeline over these files (normalisation, augmentation, split, batches) is :mod:`cfdseed.data`.

Format
------
One file holds ``N`` wall-normal/spanwise (y–z) slices of the velocity of a channel flow::

    /fields   float32 (N, 3, ny, nz)  u (streamwise), v (wall-normal), w (spanwise), physical units;
                                      chunked one sample per chunk (1, 3, ny, nz), resizable in N
    /y        float64 (ny,)           wall-normal coordinates, strictly increasing, in [0, ly]
                                      (walls at 0 and ly; may be stretched, e.g. Chebyshev)
    /z        float64 (nz,)           spanwise coordinates, uniform and periodic (z_k = k lz / nz)
    /t        float64 (N,)            optional: simulation time of each sample
    /x        float64 (N,)            optional: streamwise position of each sample

    attributes (root): re_tau, nu, u_tau, ly, lz   positive finite numbers
                       source                      string: which solver / run made the data
                       format = "cfdseed-slices", format_version = 1  (written by DatasetWriter)

Write with :class:`DatasetWriter` (appends in batches), read with :func:`open_dataset`, which checks
rank and shape, coordinates, attributes and (streaming, chunk by chunk) that every sample is finite;
:func:`read_slices` reads samples in one call.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import h5py
import numpy as np

from .errors import DatasetError

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "REQUIRED_ATTRS",
    "DatasetWriter",
    "Dataset",
    "open_dataset",
    "read_slices",
]

FORMAT = "cfdseed-slices"
FORMAT_VERSION = 1
#: Attributes every dataset must carry; all but ``source`` are positive finite numbers.
REQUIRED_ATTRS = ("re_tau", "nu", "u_tau", "ly", "lz", "source")
_NUMERIC_ATTRS = ("re_tau", "nu", "u_tau", "ly", "lz")
_T = TypeVar("_T", bound="_OpenFile")


def _check_attrs(attrs: Mapping[str, Any], where: str) -> dict[str, Any]:
    missing = [k for k in REQUIRED_ATTRS if k not in attrs]
    if missing:
        raise DatasetError(
            f"{where}: missing attribute(s) {', '.join(missing)}; required: {', '.join(REQUIRED_ATTRS)}"
        )
    out: dict[str, Any] = {}
    for k in _NUMERIC_ATTRS:
        v = attrs[k]
        try:
            f = float(np.asarray(v).reshape(()))
        except (TypeError, ValueError):
            raise DatasetError(f"{where}: attribute {k}={v!r} is not a number") from None
        if not math.isfinite(f) or f <= 0:
            raise DatasetError(f"{where}: attribute {k}={f!r} must be a positive finite number")
        out[k] = f
    src = attrs["source"]
    if isinstance(src, bytes):
        src = src.decode()
    if not isinstance(src, str):
        raise DatasetError(f"{where}: attribute source={src!r} must be a string")
    out["source"] = src
    for k, v in attrs.items():
        if k not in out:
            out[k] = v.decode() if isinstance(v, bytes) else v
    return out


def _check_coords(y: np.ndarray, z: np.ndarray, ly: float, lz: float, where: str) -> None:
    if y.ndim != 1 or y.size < 3:
        raise DatasetError(f"{where}: y must be 1-D with at least 3 points, got shape {y.shape}")
    if z.ndim != 1 or z.size < 2:
        raise DatasetError(f"{where}: z must be 1-D with at least 2 points, got shape {z.shape}")
    if not (np.all(np.isfinite(y)) and np.all(np.isfinite(z))):
        raise DatasetError(f"{where}: y or z holds non-finite values")
    if np.any(np.diff(y) <= 0):
        raise DatasetError(f"{where}: y must be strictly increasing")
    tol = 1e-9 * ly
    if y[0] < -tol or y[-1] > ly + tol:
        raise DatasetError(f"{where}: y spans [{y[0]}, {y[-1]}], outside the channel [0, ly={ly}]")
    dz = np.diff(z)
    if np.any(dz <= 0) or not np.allclose(dz, lz / z.size, rtol=1e-6, atol=1e-12 * lz):
        raise DatasetError(
            f"{where}: z must be uniform and periodic with spacing lz/nz = {lz / z.size}"
        )


class _OpenFile:
    """Context manager over ``self._file``, an open :class:`h5py.File` (None once closed)."""

    _file: h5py.File | None

    def close(self) -> None:
        """Flush and close the file (idempotent)."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self: _T) -> _T:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class DatasetWriter(_OpenFile):
    """Create an HDF5 slice dataset and append samples to it in batches.

    Parameters
    ----------
    path
        File to create (an existing file is replaced).
    y, z
        Wall-normal ``(ny,)`` and spanwise ``(nz,)`` coordinates.
    attrs
        Root attributes; must include ``re_tau, nu, u_tau, ly, lz, source``; extra keys (numbers,
        strings) are stored as well.
    compression
        Optional h5py compression filter name (e.g. ``"gzip"``); None (default) for speed.

    Raises
    ------
    DatasetError
        Missing or invalid attributes or coordinates; later, a batch of wrong shape or with
        non-finite values, or inconsistent use of ``t``/``x``.

    Examples
    --------
    >>> with DatasetWriter("slices.h5", y, z, attrs=dict(re_tau=180.0, nu=1/180, u_tau=1.0,
    ...                    ly=2.0, lz=3.14, source="dedalus")) as w:   # doctest: +SKIP
    ...     w.append(fields, t=times)   # fields (n, 3, ny, nz)
    """

    def __init__(
        self,
        path: str | os.PathLike,
        y: Sequence[float] | np.ndarray,
        z: Sequence[float] | np.ndarray,
        *,
        attrs: Mapping[str, Any],
        compression: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.attrs = _check_attrs(attrs, f"DatasetWriter({self.path})")
        self.y = np.asarray(y, dtype=np.float64)
        self.z = np.asarray(z, dtype=np.float64)
        _check_coords(self.y, self.z, self.attrs["ly"], self.attrs["lz"], f"DatasetWriter({self.path})")
        self.ny, self.nz = self.y.size, self.z.size
        self.n = 0
        self._has_t: bool | None = None
        self._has_x: bool | None = None
        self._file = h5py.File(self.path, "w")
        f = self._file
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        for k, v in self.attrs.items():
            f.attrs[k] = v
        f.create_dataset("y", data=self.y)
        f.create_dataset("z", data=self.z)
        f.create_dataset(
            "fields",
            shape=(0, 3, self.ny, self.nz),
            maxshape=(None, 3, self.ny, self.nz),
            dtype=np.float32,
            chunks=(1, 3, self.ny, self.nz),
            compression=compression,
        )

    def _extend(self, name: str, values: np.ndarray | None, n: int, flag: str) -> None:
        present = values is not None
        if getattr(self, flag) is None:
            setattr(self, flag, present)
            if present:
                self._file.create_dataset(name, shape=(0,), maxshape=(None,), dtype=np.float64)
        elif getattr(self, flag) != present:
            raise DatasetError(
                f"{name!r} must be given with every append or with none (first append "
                f"{'had' if getattr(self, flag) else 'had no'} {name})"
            )
        if present:
            arr = np.asarray(values, dtype=np.float64).reshape(-1)
            if arr.shape != (n,) or not np.all(np.isfinite(arr)):
                raise DatasetError(f"{name} must be {n} finite values, got shape {np.shape(values)}")
            ds = self._file[name]
            ds.resize((self.n + n,))
            ds[self.n :] = arr

    def append(
        self,
        fields: np.ndarray,
        t: Sequence[float] | np.ndarray | None = None,
        x: Sequence[float] | np.ndarray | None = None,
    ) -> None:
        """Append ``fields`` ``(n, 3, ny, nz)`` (or one sample ``(3, ny, nz)``) with optional
        per-sample times ``t`` and streamwise positions ``x`` ``(n,)``."""
        if self._file is None:
            raise DatasetError(f"DatasetWriter({self.path}) is closed")
        arr = np.asarray(fields)
        if arr.ndim == 3:
            arr = arr[None]
        if arr.ndim != 4 or arr.shape[1:] != (3, self.ny, self.nz):
            raise DatasetError(
                f"fields must have shape (n, 3, {self.ny}, {self.nz}), got {np.shape(fields)}"
            )
        if not np.all(np.isfinite(arr)):
            bad = np.unique(np.nonzero(~np.isfinite(arr))[0])
            raise DatasetError(f"fields hold NaN/Inf in batch sample(s) {bad[:10].tolist()}")
        n = arr.shape[0]
        self._extend("t", t, n, "_has_t")
        self._extend("x", x, n, "_has_x")
        ds = self._file["fields"]
        ds.resize((self.n + n, 3, self.ny, self.nz))
        ds[self.n :] = arr.astype(np.float32, copy=False)
        self.n += n



class Dataset(_OpenFile):
    """A validated, open slice dataset (see the module docstring for the format).

    Attributes: ``path, n, ny, nz, y, z, t, x`` (``t``/``x`` None when absent), ``attrs`` (dict),
    ``re_tau, nu, u_tau, ly, lz, source``. Samples are read on demand with :meth:`read`.
    """

    def __init__(self, path: Path, f: h5py.File, attrs: dict[str, Any]) -> None:
        self.path = path
        self._file = f
        self.attrs = attrs
        self.fields = f["fields"]
        self.n, _, self.ny, self.nz = self.fields.shape
        self.y = np.asarray(f["y"][...], dtype=np.float64)
        self.z = np.asarray(f["z"][...], dtype=np.float64)
        self.t = np.asarray(f["t"][...], dtype=np.float64) if "t" in f else None
        self.x = np.asarray(f["x"][...], dtype=np.float64) if "x" in f else None
        self.re_tau: float = attrs["re_tau"]
        self.nu: float = attrs["nu"]
        self.u_tau: float = attrs["u_tau"]
        self.ly: float = attrs["ly"]
        self.lz: float = attrs["lz"]
        self.source: str = attrs["source"]

    def __len__(self) -> int:
        return self.n

    def read(self, index: int | slice | Sequence[int] | np.ndarray) -> np.ndarray:
        """Samples as float32: an int gives ``(3, ny, nz)``, a slice or index list ``(k, 3, ny, nz)``
        (in the order given; duplicates allowed)."""
        if isinstance(index, (int, np.integer)):
            i = int(index)
            if not -self.n <= i < self.n:
                raise DatasetError(f"sample index {i} out of range for {self.n} samples")
            return np.asarray(self.fields[i % self.n], dtype=np.float32)
        if isinstance(index, slice):
            return np.asarray(self.fields[index], dtype=np.float32)
        idx = np.asarray(index, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= self.n):
            raise DatasetError(f"sample indices must lie in [0, {self.n}), got {idx.min()}..{idx.max()}")
        # h5py fancy indexing wants increasing unique indices: read sorted, then reorder.
        uniq, inverse = np.unique(idx, return_inverse=True)
        block = np.asarray(self.fields[uniq], dtype=np.float32) if uniq.size else np.empty(
            (0, 3, self.ny, self.nz), np.float32
        )
        return block[inverse]

    def iter_chunks(self, chunk: int = 64, indices: np.ndarray | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(indices, fields)`` blocks of at most ``chunk`` samples (streaming)."""
        idx = np.arange(self.n) if indices is None else np.sort(np.asarray(indices, dtype=np.int64))
        for s in range(0, idx.size, chunk):
            part = idx[s : s + chunk]
            if part.size and part[-1] - part[0] == part.size - 1:  # contiguous: one hyperslab read
                yield part, np.asarray(self.fields[part[0] : part[-1] + 1], dtype=np.float32)
            else:
                yield part, self.read(part)

    def identity(self) -> str:
        """A short digest of what the file holds, independent of where it lies: the sample shape and
        count, the coordinates (y, z, and t, x where present), the attributes and the first and last
        samples. Two files with one identity hold the same data for every practical purpose (a
        moved or copied dataset); regenerated data (another trajectory) gets another."""
        h = hashlib.sha256(repr((self.fields.shape, sorted((k, str(v)) for k, v in self.attrs.items()))).encode())
        for a in (self.y, self.z, self.t, self.x):
            h.update(b"-" if a is None else np.ascontiguousarray(a, dtype=np.float64).tobytes())
        if self.n:
            h.update(self.read(0).tobytes() + self.read(self.n - 1).tobytes())
        return h.hexdigest()[:16]

    def check_finite(self, chunk: int = 64) -> None:
        """Stream through every sample; DatasetError naming the first non-finite samples."""
        for part, block in self.iter_chunks(chunk):
            bad = ~np.isfinite(block).reshape(block.shape[0], -1).all(axis=1)
            if bad.any():
                raise DatasetError(
                    f"{self.path}: sample(s) {part[bad][:10].tolist()} hold NaN/Inf values"
                )

    def __repr__(self) -> str:
        return (
            f"Dataset({str(self.path)!r}, n={self.n}, ny={self.ny}, nz={self.nz}, "
            f"re_tau={self.re_tau}, source={self.source!r})"
        )


def open_dataset(
    path: str | os.PathLike, *, check_finite: bool = True, min_samples: int = 1
) -> Dataset:
    """Open and validate a slice dataset.

    Parameters
    ----------
    path
        HDF5 file in the format of the module docstring.
    check_finite
        Stream through all samples and reject NaN/Inf (one pass over the file). Training skips it
        because :func:`compute_stats` makes the same check in its own pass.
    min_samples
        Fewest samples accepted (e.g. the batch size).

    Raises
    ------
    DatasetError
        Missing or unreadable file, missing datasets or attributes, wrong rank/shape/dtype,
        bad coordinates, too few samples, non-finite samples.
    """
    p = Path(path)
    if p.is_dir():
        raise DatasetError(f"dataset file {str(p)!r} is a folder; name the file in it")
    if not p.is_file():
        raise DatasetError(f"dataset file {str(p)!r} does not exist")
    try:
        f = h5py.File(p, "r")
    except OSError as exc:
        raise DatasetError(f"{p}: not a readable HDF5 file ({exc})") from None
    try:
        for name in ("fields", "y", "z"):
            if name not in f or not isinstance(f[name], h5py.Dataset):
                raise DatasetError(f"{p}: missing dataset /{name}; required: /fields, /y, /z")
        fields = f["fields"]
        if fields.ndim != 4 or fields.shape[1] != 3:
            raise DatasetError(f"{p}: /fields must have shape (N, 3, ny, nz), got {fields.shape}")
        if fields.dtype.kind != "f":
            raise DatasetError(f"{p}: /fields must be floating point, got {fields.dtype}")
        attrs = _check_attrs(dict(f.attrs), str(p))
        version = attrs.get("format_version", FORMAT_VERSION)
        if int(version) != FORMAT_VERSION:
            raise DatasetError(f"{p}: format_version {version} unsupported; this reader reads {FORMAT_VERSION}")
        n, _, ny, nz = fields.shape
        y, z = np.asarray(f["y"][...], np.float64), np.asarray(f["z"][...], np.float64)
        if y.shape != (ny,) or z.shape != (nz,):
            raise DatasetError(
                f"{p}: /y {y.shape} and /z {z.shape} must match /fields (N, 3, {ny}, {nz})"
            )
        _check_coords(y, z, attrs["ly"], attrs["lz"], str(p))
        for name in ("t", "x"):
            if name in f and f[name].shape != (n,):
                raise DatasetError(f"{p}: /{name} must have shape ({n},), got {f[name].shape}")
        if n < min_samples:
            raise DatasetError(f"{p}: {n} sample(s), at least {min_samples} needed")
        ds = Dataset(p, f, attrs)
        if check_finite:
            ds.check_finite()
    except BaseException:
        f.close()
        raise
    return ds


def read_slices(path: str | os.PathLike, index: int | slice | Sequence[int] | None = None) -> np.ndarray:
    """Read slices ``(k, 3, ny, nz)`` (all when ``index`` is None) from a validated dataset as float32.

    Raises
    ------
    DatasetError
        See :func:`open_dataset`; also requested samples holding NaN/Inf.
    """
    with open_dataset(path, check_finite=False) as ds:
        out = ds.read(slice(None) if index is None else index)
    if not np.all(np.isfinite(out)):
        raise DatasetError(f"{path}: requested samples hold NaN/Inf values")
    return out
