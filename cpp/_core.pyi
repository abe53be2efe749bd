"""Type stub of cfdseed._core: constraint kernels over one rank's block and the eddy synthesis of
the ``sem`` source (see cpp/kernels.hpp).

Every array argument is a 3-D (x, y, z) numpy view, float32 or float64 (one dtype per call), with
any strides; nothing is copied. Non-finite values are counted by ``stats`` and skipped elsewhere.
Bad shapes, dtypes or arguments raise ValueError.
"""

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float32] | npt.NDArray[np.float64]

def stats(f: Array, wy: npt.ArrayLike) -> tuple[float, float, float, int]:
    """(max |f|, sum f**2, sum_j wy[j] * sum_xz f, non-finite count); ``wy`` has one weight per y index."""

def wall_absmax(a: Array, b: Array, t: float) -> float:
    """max |a + t (b - a)|: a wall plane (t = 0) or the linear extrapolation from two planes."""

def increments(f: Array, hi: Array, axis: int, seam: int) -> tuple[float, float]:
    """(max interior |f[i+1] - f[i]|, max |increment at local index seam|) along ``axis``; ``hi`` is
    the plane beyond the block's upper face (extent 1 along ``axis``), ``seam`` -1 when absent."""

def divergence(
    u: Array, v: Array, w: Array,
    ulo: Array, uhi: Array, vlo: Array, vhi: Array, wlo: Array, whi: Array,
    yext: npt.ArrayLike, dx: float, dz: float, j0: int, j1: int,
) -> tuple[float, float, int]:
    """(max |div u|, sum (div u)**2, count of finite values) at local y indices [j0, j1), contract-1
    operators; halo planes beyond each face, ``yext`` = (y below, block y, y above), ny + 2 values."""

def eddies(
    u: Array, v: Array, w: Array,
    x: npt.ArrayLike, y: npt.ArrayLike, z: npt.ArrayLike, lx: float, lz: float,
    damp: npt.ArrayLike, ddamp: npt.ArrayLike,
    centre: npt.ArrayLike, sigma: npt.ArrayLike, alpha: npt.ArrayLike,
) -> None:
    """Add to ``(u, v, w)`` (writeable, in place) the curl of ``D(y) sum_e psi_e alpha_e``:
    ``D f (r x alpha) + D' psi (alpha_z, 0, -alpha_x)`` per eddy, ``f(s) = (1 - s^2)^3`` and
    ``psi = -sigma^2 (1 - s^2)^4 / 8`` for ``s = |r| / sigma < 1``, at the points
    ``(x[i], y[j], z[k])`` (each strictly increasing), ``r`` = point - centre over every periodic
    image in x and z (periods ``lx``, ``lz``), clipped at the ends of y; ``damp``, ``ddamp``: D and
    dD/dy per y index (1 and 0: the plain eddies); ``centre`` (n, 3), ``sigma`` (n,) > 0, ``alpha``
    (n, 3)."""
