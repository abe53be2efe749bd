"""The ``"analytic"`` source: Poiseuille flow plus discretely divergence-free periodic modes.

The modes vanish at the walls and are divergence-free for the *discrete* operators of the
constraint checks (:mod:`cfdseed.operators`, the grid's operator set): u = D_y psi,
v = -D_x psi - D_z chi, w = D_y chi with stream functions psi, chi that are zero on the walls;
D_x, D_y and D_z act on different axes and commute, so the discrete divergence cancels to
round-off (spectral operators: exact Fourier derivatives and the y-interpolant's derivative, exact
for the quartic profile). No enforcement runs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._values import number
from ..grid import Grid
from ..operators import column, d_dy, d_periodic, trapezoid_weights, y_ext
from ..units import UNIT_OPTIONS, check_unit_options, resolve_units
from .base import Source, SourceInfo, parse_options, warn_unresolved_waves, waves

__all__ = ["analytic", "ANALYTIC_DEFAULTS"]

#: Options of ``"analytic"`` and their defaults.
ANALYTIC_DEFAULTS: dict[str, Any] = {
    # the unit options (cfdseed.units.resolve_units): wall units at Re_tau 180 unless given; bulk is
    # set exactly for the trapezoid in y of the plane-averaged u, as the checks measure it
    **dict.fromkeys(UNIT_OPTIONS),
    "amplitude": 0.1,  # max |u_i'| of the modes, relative to |bulk| (absolute if bulk is 0)
    "waves": (1, 1),  # streamwise and spanwise periods per lx, per lz
}


def analytic(**options: Any) -> Source:
    """Laminar Poiseuille flow plus divergence-free periodic modes that vanish at the walls.

    Options (defaults in :data:`ANALYTIC_DEFAULTS`): the unit options ``re_tau``, ``u_tau``,
    ``nu``, ``bulk`` (:func:`cfdseed.units.resolve_units`; by default wall units at Re_tau 180,
    bulk 15.515), the bulk velocity set exactly for the discrete quadrature of the checks;
    ``amplitude`` (0.1) the largest |u_i'| of the modes relative to ``|bulk|``; ``waves``
    ((1, 1)) the streamwise (>= 0) and spanwise (>= 1) periods. The phases are drawn from the ``rng`` (so
    ``seed`` changes the field). The resolved units are in the returned info (``units``).

    The modes come from stream functions ``psi = f(y) sin(kx x + a) cos(kz z + b)`` and
    ``chi = f(y) [cos(kx x + c) sin(kz z + d) + sin(kz z + e)]`` with ``f = (y (ly - y))^2``:
    ``u = D_y psi``, ``v = -D_x psi - D_z chi``, ``w = D_y chi`` (contract-1 operators, virtual
    zero wall points on cell-centred grids). Every value at a wall point is exactly 0.

    On cell-centred grids the checks extrapolate linearly to the wall, which misses the parabola by
    O(dy^2): with the default ``no_slip_extrapolated`` tolerance (0.05) that needs 11 or more
    uniform cells (Chebyshev/tanh cells cluster at the walls and pass with fewer).

    Raises
    ------
    SourceError
        Unknown options or bad values.
    """
    opts = parse_options("analytic", options, ANALYTIC_DEFAULTS)
    given = check_unit_options("analytic", opts)
    amplitude = number("analytic: amplitude", opts["amplitude"], minimum=0)
    mx, mz = waves("analytic", opts["waves"], z_min=1)  # z = 0 would make w a mean spanwise flow

    def make(grid: Grid, rng: np.random.Generator) -> tuple[np.ndarray, SourceInfo]:
        warn_unresolved_waves("analytic", (mx, mz), grid)
        (nx, ny, nz), (lx, ly, lz) = grid.shape, grid.lengths
        units = resolve_units(ly, **given, source="analytic")
        ub = units.bulk
        lo, _ = grid.walls
        # y with virtual wall points where no grid point lies on a wall; ext index of real points
        yext = y_ext(grid)

        def bulk(u: np.ndarray) -> float:  # contract-1 bulk of u on yext (zero at virtual walls)
            return float(u[:, real].mean(axis=(0, 2)) @ weights)

        weights = trapezoid_weights(grid)
        j0 = 0 if lo else 1
        real = slice(j0, j0 + ny)
        x = grid.x[:, None, None]
        z = grid.z[None, None, :]
        eta = yext / ly
        f = ((eta * (1.0 - eta)) ** 2)[None, :, None]  # zero (double root) on both walls
        a, b, c, d, e = rng.uniform(0.0, 2.0 * np.pi, 5)
        kx, kz = 2.0 * np.pi * mx / lx, 2.0 * np.pi * mz / lz
        psi = f * np.sin(kx * x + a) * np.cos(kz * z + b)  # (nx, ny_ext, nz)
        chi = f * (np.cos(kx * x + c) * np.sin(kz * z + d) + np.sin(kz * z + e))
        up = np.zeros((3, nx, yext.size, nz))
        if grid.operators == "spectral":
            # exact derivatives: Fourier in x and z; f is a quartic, so the y-interpolant's
            # derivative is exact on the grid's points (the virtual wall points carry zeros)
            dy = column(grid).dy
            up[0, :, real] = np.matmul(dy, psi[:, real])
            up[2, :, real] = np.matmul(dy, chi[:, real])
            up[1] = -f * (kx * np.cos(kx * x + a) * np.cos(kz * z + b)
                          + kz * (np.cos(kx * x + c) * np.cos(kz * z + d) + np.cos(kz * z + e)))
        else:
            up[0, :, 1:-1] = d_dy(psi, yext)
            up[1] = -d_periodic(psi, 0, lx / nx) - d_periodic(chi, 2, lz / nz)
            up[2, :, 1:-1] = d_dy(chi, yext)
        # amplitude = largest deviation from the plane (x-z) mean; on coarse grids a mode can alias
        # onto the plane mean, which then belongs to the mean flow, not to u'
        real_up = up[:, :, real]
        full = np.abs(up).max()
        scale = np.abs(real_up - real_up.mean(axis=(1, 3), keepdims=True)).max()
        if scale <= 1e-12 * full:  # only plane-mean (aliased) modes: no u' to measure
            scale = full
        ref = abs(ub) if ub != 0 else 1.0
        if scale > 0:
            up *= amplitude * ref / scale
        # mean profile, then a y-only correction (divergence-free, zero at walls) for the exact bulk
        prof = (eta * (1.0 - eta))[None, :, None]  # (1, ny_ext, 1)
        up[0] += prof * ((ub - bulk(up[0])) / bulk(prof))
        return up[:, :, real], SourceInfo(units=units)

    return Source("analytic", make)
