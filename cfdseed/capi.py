"""The Python side of the C and Fortran API (``capi/``: ``cfdseed.h``, ``libcfdseed``, module ``cfdseed``).

``libcfdseed`` embeds Python and calls :func:`init_field` here with plain values: the communicator
as a Fortran handle, the grid, the block, and each of the solver's arrays as (address, shape,
element strides). This module only converts those arguments, calls :func:`cfdseed.init_field` and
maps the outcome to a status code and one message, identical on every rank. It is also where the
CMake package is written (:func:`cmake_dir`, the ``cfdseed cmakedir`` command).

libcfdseed calls :func:`embedded` first: ``mpi4py.rc.initialize`` and ``rc.finalize`` become False
before anything imports ``mpi4py.MPI``, since the solver owns MPI (it has initialised it and will
finalise it). Importing this module changes nothing.
"""

from __future__ import annotations

import ctypes
import json
import math
import site
import sys
from pathlib import Path
from typing import Any

import mpi4py

from . import __version__
from . import errors as _errors

__all__ = ["STATUS", "capi_dir", "check_mpi", "cmake_dir", "embedded", "init_field", "status_of"]

#: Status codes of ``cfdseed.h`` (``CFDSEED_OK`` ...), by name; the header and the Fortran module
#: carry the same numbers (tests/test_capi.py compares them).
STATUS = {
    "OK": 0,
    "ERROR_ARGUMENT": 1,       # a bad argument of the call itself: options JSON, a null pointer
    "ERROR_GRID": 2,           # GridError: shape, lengths, y, operators, or ranks disagreeing on them
    "ERROR_DECOMPOSITION": 3,  # DecompositionError: blocks outside the grid, gaps, overlaps
    "ERROR_TRANSPORT": 4,      # TransportError: the arrays (extents, axes, element type, shared memory)
    "ERROR_SOURCE": 5,         # SourceError: unknown source, bad options, the source failed
    "ERROR_CONSTRAINT": 6,     # ConstraintError: delivered, but a check failed (report filled)
    "ERROR_MPI": 7,            # the solver's MPI is not mpi4py's; MPI not initialised
    "ERROR_PYTHON": 8,         # the embedded Python could not start or import cfdseed (set in C++)
    "ERROR_INTERNAL": 9,       # anything else: a bug; the message names the exception
}

# most specific first: isinstance decides
_BY_TYPE = (
    (_errors.MPIMismatchError, "ERROR_MPI"),
    (_errors.ConstraintError, "ERROR_CONSTRAINT"),
    (_errors.SourceError, "ERROR_SOURCE"),
    (_errors.TransportError, "ERROR_TRANSPORT"),
    (_errors.DecompositionError, "ERROR_DECOMPOSITION"),
    (_errors.GridError, "ERROR_GRID"),
    (_errors.ConfigError, "ERROR_ARGUMENT"),
)

_DTYPES = {"float32": ctypes.c_float, "float64": ctypes.c_double}


def embedded() -> None:
    """Called by libcfdseed before anything else: the solver, not mpi4py, initialises and finalises MPI."""
    if "mpi4py.MPI" not in sys.modules:  # a Python host that loaded it already owns those settings
        mpi4py.rc.initialize = False
        mpi4py.rc.finalize = False


def status_of(exc: BaseException) -> int:
    """The ``cfdseed.h`` status code of an exception raised by the call."""
    for cls, name in _BY_TYPE:
        if isinstance(exc, cls):
            return STATUS[name]
    return STATUS["ERROR_INTERNAL"]


def _first_line(text: str) -> str:
    return next((" ".join(line.split()) for line in text.splitlines() if line.strip()), "(empty)")


#: ABI family of an MPI vendor name (``mpi4py.MPI.get_vendor()``; libcfdseed's from mpi.h macros)
_ABI = {"MPICH": "mpich", "Intel MPI": "mpich", "MVAPICH": "mpich", "MVAPICH2": "mpich", "Open MPI": "openmpi"}


def _extension_abi(path: str | None) -> str:
    """ABI family an MPI extension file was linked for, read from its bytes (not loaded): Open MPI
    code references ``ompi_mpi_*`` handles and ``libmpi.so.40``, the MPICH family ``libmpi.so.12``."""
    if not path:
        return ""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return ""
    if b"ompi_mpi_comm_world" in data or b"libmpi.so.40" in data:
        return "openmpi"
    return "mpich" if b"libmpi.so.12" in data else ""


def _extension_path() -> str | None:
    """Where ``mpi4py.MPI`` would load from, without loading it (a PyPI wheel picks the file of the
    MPI already in the process)."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("mpi4py.MPI")
    except Exception:  # noqa: BLE001 - unknown: the checks after the import still run
        return None
    return spec.origin if spec is not None else None


def check_mpi(caller: str, abi: str = "", *, extension: str | None = None, library: str | None = None,
              vendor: tuple[str, Any] | None = None) -> None:
    """Raise :class:`~cfdseed.errors.MPIMismatchError` unless the solver and mpi4py use one MPI library.

    Three comparisons, each naming both sides. Before ``mpi4py.MPI`` is loaded, the ABI family the
    solver was compiled for against the library mpi4py's extension file links (an mpi4py built for
    another MPI aborts the process while it loads: its calls resolve to the solver's library, its
    handles do not). Then the family mpi4py was compiled for (``MPI.get_vendor()``) and the library
    strings (``Get_library_version``).

    Parameters
    ----------
    caller : str
        ``MPI_Get_library_version`` as the solver's code (``libcfdseed``, built with the solver's
        MPI) sees it.
    abi : str
        ``"mpich"``, ``"openmpi"`` or ``""`` (unknown: not compared): the family of the solver's
        ``mpi.h``.
    extension : str, optional
        mpi4py's extension file; found with importlib when omitted and ``mpi4py.MPI`` is not loaded.
    library, vendor : optional
        mpi4py's ``MPI.Get_library_version()`` and ``MPI.get_vendor()``; asked from mpi4py when omitted.
    """
    where = f"mpi4py {mpi4py.__version__} in {sys.prefix}"
    advice = ("build the solver with the MPI of this Python environment, or run `cfdseed cmakedir` of an "
              "environment whose mpi4py uses the solver's MPI (README: Compiled solvers)")
    if extension is None and "mpi4py.MPI" not in sys.modules:
        extension = _extension_path()
    linked = _extension_abi(extension)
    if abi and linked and abi != linked:
        raise _errors.MPIMismatchError(
            f"the solver's MPI library ({_first_line(caller)}, {abi} ABI) is not the one mpi4py was built for "
            f"({linked} ABI: {extension}; {where}): {advice}")
    if library is None or vendor is None:
        from mpi4py import MPI

        library = MPI.Get_library_version() if library is None else library
        vendor = MPI.get_vendor() if vendor is None else vendor
    name, version = vendor
    built = f"{name} {'.'.join(map(str, version))}" if isinstance(version, tuple) else str(name)
    family = _ABI.get(name, "")
    if abi and family and abi != family:
        raise _errors.MPIMismatchError(
            f"the solver's MPI library ({_first_line(caller)}, {abi} ABI) is not the one mpi4py was built for "
            f"({built}, {family} ABI; {where}): {advice}")
    if " ".join(caller.split()) != " ".join(library.split()):
        raise _errors.MPIMismatchError(
            f"the solver's MPI library ({_first_line(caller)}) is not the one mpi4py uses "
            f"({_first_line(library)}; {where}): {advice}")


def _wrap(address: int, shape: tuple[int, ...], strides: tuple[int, ...], dtype: str, name: str) -> Any:
    """A numpy view (no copy) of ``shape`` elements at ``address`` with element ``strides``."""
    import numpy as np
    from numpy.lib.stride_tricks import as_strided

    if dtype not in _DTYPES:
        raise _errors.TransportError(f"element type {dtype} of the arrays is not allowed; allowed: float32, float64")
    if len(shape) != 3 or len(strides) != 3 or any(n < 0 for n in shape):
        raise _errors.TransportError(f"array {name} needs three extents >= 0 and three strides, "
                                     f"got shape {shape}, strides {strides}")
    item = np.dtype(dtype).itemsize
    if math.prod(shape) == 0:
        return np.empty(shape, dtype=dtype)
    if not address:  # a bad argument of the call (cfdseed.h: CFDSEED_ERROR_ARGUMENT), not of the layout
        raise _errors.ConfigError(f"array {name} is a null pointer but holds {math.prod(shape)} elements {shape}")
    # the elements span [lo, hi] around the address: negative strides reach below it
    lo = sum((n - 1) * s for n, s in zip(shape, strides) if s < 0)
    hi = sum((n - 1) * s for n, s in zip(shape, strides) if s > 0)
    buf = (_DTYPES[dtype] * (hi - lo + 1)).from_address(address + lo * item)
    flat = np.frombuffer(buf, dtype=dtype)  # writable: ctypes buffers are
    return as_strided(flat[-lo:], shape=shape, strides=tuple(s * item for s in strides), writeable=True)


def _convert(start: Any, count: Any, arrays: Any, dtype: str, options: str | None) -> tuple[Any, ...]:
    """(local, out, options dict): the block as slices, the arrays as numpy views; raises on bad values."""
    if options is None or not options.strip():
        opts: dict[str, Any] | None = None
    else:
        try:
            opts = json.loads(options)
        except json.JSONDecodeError as exc:
            raise _errors.ConfigError(f"options must be a JSON object, got {options!r}: {exc}") from None
        if not isinstance(opts, dict):
            raise _errors.ConfigError(f"options must be a JSON object (e.g. {{\"re_tau\": 180}}), "
                                      f"got {type(opts).__name__} {options!r}")
    if len(start) != 3 or len(count) != 3 or any(c < 0 for c in count):
        raise _errors.DecompositionError(f"the block needs three starts and three counts >= 0, "
                                         f"got start {tuple(start)}, count {tuple(count)}")
    local = tuple(slice(s, s + c) for s, c in zip(start, count))
    out = tuple(_wrap(a, tuple(sh), tuple(st), dtype, n) for (a, sh, st), n in zip(arrays, "uvw"))
    return local, out, opts


def init_field(comm_handle: int, shape: Any, lengths: Any, y: Any, operators: str, start: Any,
               count: Any, arrays: Any, dtype: str, axes: str, source: str, options: str | None,
               seed: int | None) -> tuple[int, str, dict[str, Any] | None]:
    """Collective: what ``cfdseed_init_field`` does once the interpreter runs.

    Parameters
    ----------
    comm_handle : int
        The solver's communicator as a Fortran handle (``MPI_Comm_c2f``).
    shape, lengths, y, operators
        The global grid (:class:`cfdseed.Grid`); ``y`` the ``ny`` wall-normal coordinates.
    start, count : 3 ints
        This rank's block, 0-based, in (x, y, z).
    arrays : 3 tuples (address, shape, strides)
        u, v, w: extents and element strides in the order of the array axes (``axes``).
    dtype : {"float32", "float64"}
    axes : str
        Which of x, y, z each array axis is (``"xzy"``, ...).
    source, options, seed
        Source name, its options as a JSON object (or None), the seed (None: fresh entropy).

    Returns
    -------
    (status, message, report)
        Status code (:data:`STATUS`), "" or the error message, and the report's figures as a dict
        (``ConstraintReport.to_dict()``) when the checks ran, else None. The same on every rank.
    """
    from mpi4py import MPI

    from ._collective import agree

    comm = MPI.Intracomm.f2py(comm_handle)
    status, message, report = 0, "", None
    try:
        err = None
        try:
            local, out, opts = _convert(start, count, arrays, dtype, options)
        except Exception as exc:  # noqa: BLE001 - re-raised on every rank by agree
            err = exc
        agree(comm, err)
        from .coupling import init_field as _init_field
        from .grid import Grid

        grid = Grid.collective(comm, tuple(shape), tuple(lengths), y=list(y), local=local, operators=operators)
        res = _init_field(comm, grid, source=source, options=opts, seed=seed, out=out, axes=axes, result=True)
        report = res.report.to_dict()
    except BaseException as exc:  # noqa: BLE001 - every outcome becomes a status, never a raise into C
        status = status_of(exc)
        message = " ".join(str(exc).split()) or type(exc).__name__
        if status == STATUS["ERROR_INTERNAL"]:
            message = f"{type(exc).__name__}: {message}"
        rep = getattr(exc, "report", None)
        report = rep.to_dict() if rep is not None and hasattr(rep, "to_dict") else None
    # one outcome everywhere: the failing rank's own message lacks the "[rank r]" that agree gives
    # the others, so take the first message that names its rank, else the lowest failing rank's
    outcomes = comm.allgather((status, message))
    failed = [o for o in outcomes if o[0] != 0]
    if failed:
        status, message = next((o for o in failed if o[1].startswith("[rank ")), failed[0])
    return status, message, report


# -- the CMake package ----------------------------------------------------------------------
def capi_dir() -> Path:
    """The C/Fortran sources (``capi/``): in a source checkout next to the package, in a wheel inside it."""
    pkg = Path(__file__).resolve().parent
    for cand in (pkg / "_capi", pkg.parent / "capi"):
        if (cand / "include" / "cfdseed.h").is_file():
            return cand
    raise FileNotFoundError(f"the C API sources (capi/include/cfdseed.h) are neither in {pkg / '_capi'} "
                            f"nor in {pkg.parent / 'capi'}: install cfdseed from a source checkout "
                            f"(pip install -e .), whose capi/ the CMake package builds")


def _cmake_str(value: str) -> str:
    return '"' + str(value).replace("\\", "/").replace('"', '\\"') + '"'


def _interpreter() -> str:
    """This interpreter by one name whichever alias started it (python, python3, ...):
    ``<sys.prefix>/bin/pythonX.Y`` when that is the same file, else ``sys.executable``."""
    named = Path(sys.prefix) / "bin" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    try:
        return str(named) if named.samefile(sys.executable) else sys.executable
    except OSError:
        return sys.executable


def cmake_dir(target: Path | None = None) -> Path:
    """Write (if changed) the CMake package of this Python environment and return its folder.

    ``cfdseedConfig.cmake`` records this interpreter (:func:`_interpreter`) and its site-packages
    (the user site only where this interpreter enables it), ``:``-separated (a ``;`` would split
    the compile definition that carries them): the library a solver builds with
    ``find_package(cfdseed CONFIG)`` embeds exactly this environment. The folder is
    ``<sys.prefix>/share/cmake/cfdseed`` (found by ``find_package`` with
    ``CMAKE_PREFIX_PATH=<sys.prefix>`` too), else ``~/.cache/cfdseed/cmake/<hash>``.
    """
    src = capi_dir()
    user = [site.getusersitepackages()] if site.ENABLE_USER_SITE else []
    sites = [p for p in (*site.getsitepackages(), *user) if Path(p).is_dir()]
    config = "\n".join([
        f"# cfdseed {__version__}: written by `cfdseed cmakedir` for the Python environment {sys.prefix}.",
        "# The library built from it embeds that interpreter; run `cfdseed cmakedir` of another",
        "# environment to build against that one instead. Do not edit: rewritten when it changes.",
        f"set(CFDSEED_VERSION {_cmake_str(__version__)})",
        f"set(CFDSEED_PYTHON_EXECUTABLE {_cmake_str(_interpreter())})",
        f"set(CFDSEED_PYTHON_SITE {_cmake_str(':'.join(sites))})",
        f"set(CFDSEED_CAPI_DIR {_cmake_str(src)})",
        'include("${CFDSEED_CAPI_DIR}/cmake/cfdseed.cmake")',
        "",
    ])
    major = __version__.split(".")[0]
    version = "\n".join([
        f"set(PACKAGE_VERSION {_cmake_str(__version__)})",
        "set(PACKAGE_VERSION_COMPATIBLE FALSE)",
        (f"if(NOT PACKAGE_FIND_VERSION OR (PACKAGE_FIND_VERSION_MAJOR EQUAL {major}"
         " AND NOT PACKAGE_FIND_VERSION VERSION_GREATER PACKAGE_VERSION))"),
        "  set(PACKAGE_VERSION_COMPATIBLE TRUE)",
        "  if(PACKAGE_FIND_VERSION VERSION_EQUAL PACKAGE_VERSION)",
        "    set(PACKAGE_VERSION_EXACT TRUE)",
        "  endif()",
        "endif()",
        "",
    ])
    folders = [target] if target is not None else [Path(sys.prefix) / "share" / "cmake" / "cfdseed", _cache_dir()]
    last: Exception | None = None
    for folder in folders:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            for name, text in (("cfdseedConfig.cmake", config), ("cfdseedConfigVersion.cmake", version)):
                path = folder / name
                if not path.is_file() or path.read_text() != text:
                    path.write_text(text)
            return folder
        except OSError as exc:  # a read-only prefix: try the next folder
            last = exc
    raise OSError(f"cannot write the CMake package into {', '.join(map(str, folders))}: {last}")


def _cache_dir() -> Path:
    import hashlib

    key = hashlib.sha256(_interpreter().encode()).hexdigest()[:12]
    return Path.home() / ".cache" / "cfdseed" / "cmake" / key
