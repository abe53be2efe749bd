"""Turbulence statistics of channel-flow fields in wall units: :func:`statistics` (profiles,
spectra, correlations, PDFs, divergence of 3-D fields) into a :class:`Statistics`, and the per-wall
and momentum-balance figures of :func:`balance_figures`.

Python::

    from cfdseed.stats import statistics
    s = statistics(fields, y, lz, nu=nu, u_tau=u_tau)   # slices (N,3,ny,nz) or 3-D (N,3,nx,ny,nz)

Comparisons of statistics and the metrics built on them are in :mod:`cfdseed.metrics`; the
``cfdseed evaluate`` report in :mod:`cfdseed.evaluate`.

Statistics (:func:`statistics`)
-------------------------------
Components are u (streamwise), v (wall-normal), w (spanwise); averages run over samples, z and (for
3-D fields) x. Wall units: y+ = y_w u_tau / nu with y_w the distance to the nearer wall, velocities
over u_tau, wavenumbers k+ = k nu / u_tau, spectral densities over u_tau nu.

- Wall-reflection symmetry: when the y points are symmetric about the centre, the upper half is
  mirrored onto the lower half (rows j and ny-1-j, v -> -v) and both halves enter every statistic
  as independent samples; otherwise only the rows with y <= ly/2 are used.
- Profiles: U+ = <u>/u_tau, u'+ = rms(u')/u_tau, v'+, w'+, uv+ = <u'v'>/u_tau^2, with
  u' = u - <u>(y).
- At the heights (default y+ = 5, 15, 30, 100 and the centre; the nearest row off the wall, rows
  counted once): one-sided spanwise spectral densities E_uu, E_vv, E_ww(k_z) normalised so that
  sum_k E(k) dk = variance (dk = 2 pi / lz; the k = 0 bin holds the square of the sample's
  spanwise mean fluctuation); two-point spanwise correlations R_ii(dz) = <u_i'(z) u_i'(z+dz)> /
  <u_i'^2> for 0 <= dz <= lz/2 (from the same spectra); the fluctuation samples (for PDFs, their
  moments and histograms); for 3-D fields also streamwise spectra E_ii(k_x) and correlations
  R_ii(dx) for 0 <= dx <= lx/2.
- 3-D fields: divergence with the contract-1 operators (:func:`cfdseed.operators.field_figures`),
  max and RMS normalised by U_bulk / h.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._values import number

__all__ = [
    "COMPONENTS",
    "PAIRS",
    "DEFAULT_HEIGHTS",
    "PROFILES",
    "Height",
    "Statistics",
    "statistics",
    "balance_figures",
    "one_half",
    "y_is_symmetric",
]

log = logging.getLogger(__name__)

#: Heights (y+) of spectra, PDFs and correlations; "centre" is the row nearest the channel centre.
DEFAULT_HEIGHTS: tuple[float | str, ...] = (5.0, 15.0, 30.0, 100.0, "centre")
#: Profile names, in wall units.
PROFILES = ("U+", "u'+", "v'+", "w'+", "uv+")
#: The velocity components, in order, and their auto-correlation pairs.
COMPONENTS = "uvw"
PAIRS = ("uu", "vv", "ww")


@dataclass(frozen=True)
class Height:
    """A height where spectra, PDFs and correlations are taken."""

    label: str  #: "y+=15" or "centre"
    target: float  #: requested y+ (the centre: re_tau)
    row: int  #: row index in the folded (wall-distance ordered) profile arrays
    yplus: float  #: actual y+ of that row


@dataclass
class Statistics:
    """Statistics of one set of fields (see the module docstring). Arrays in wall units.

    Attributes
    ----------
    yplus, y_delta : (nh,) distance from the wall in wall units and over the half-height.
    profiles : dict name -> (nh,) for :data:`PROFILES`.
    heights : list of :class:`Height`.
    kz : (nk,) spanwise wavenumbers k_z+; ``spectra_z`` (3, nheights, nk) E_ii+(k_z).
    dz : (nlag,) separations dz+; ``correlation`` (3, nheights, nlag) R_ii(dz).
    samples : (3, nheights, S) fluctuations u_i'+ at the heights (PDFs).
    kx, spectra_x : streamwise counterparts for 3-D fields, else None.
    dx, correlation_x : separations dx+ and streamwise correlations R_ii(dx) (3, nheights, nlag_x)
        for 3-D fields, else None (not in :meth:`to_dict`; the side-by-side report writes them).
    divergence : dict of divergence figures for 3-D fields, else None.
    nz, nx : grid points along z and x (0: unknown); with an even count the last spectral bin is
        the Nyquist mode, which :func:`cfdseed.metrics.compare` leaves out (see its module docstring).
    """

    re_tau: float
    n_fields: int
    kind: str  # "slices" or "fields"
    folded: bool
    yplus: np.ndarray
    y_delta: np.ndarray
    profiles: dict[str, np.ndarray]
    heights: list[Height]
    kz: np.ndarray
    spectra_z: np.ndarray
    dz: np.ndarray
    correlation: np.ndarray
    samples: np.ndarray
    kx: np.ndarray | None = None
    spectra_x: np.ndarray | None = None
    divergence: dict[str, float] | None = None
    nz: int = 0
    nx: int = 0
    balance: dict[str, float] | None = None
    dx: np.ndarray | None = None
    correlation_x: np.ndarray | None = None

    def moments(self) -> dict[str, dict[str, dict[str, float]]]:
        """Mean, std, skewness and flatness of u', v', w' (wall units) at every height."""
        out: dict[str, dict[str, dict[str, float]]] = {}
        for c, name in enumerate(COMPONENTS):
            out[name] = {}
            for h, hh in enumerate(self.heights):
                s = self.samples[c, h]
                m, sd = float(s.mean()), float(s.std())
                z = (s - m) / sd if sd > 0 else np.zeros_like(s)
                out[name][hh.label] = {"mean": m, "std": sd, "skewness": float(np.mean(z**3)),
                                       "flatness": float(np.mean(z**4))}
        return out

    def to_dict(self, bins: int = 41) -> dict[str, Any]:
        """JSON-ready numbers with their units (PDFs as histograms with ``bins`` bins)."""
        hist: dict[str, dict[str, Any]] = {}
        for c, name in enumerate(COMPONENTS):
            hist[name] = {}
            for h, hh in enumerate(self.heights):
                dens, edges = np.histogram(self.samples[c, h], bins=bins, density=True)
                hist[name][hh.label] = {"edges": edges.tolist(), "density": dens.tolist()}
        d: dict[str, Any] = {
            "kind": self.kind,
            "n_fields": self.n_fields,
            "re_tau": self.re_tau,
            "wall_reflection_averaged": self.folded,
            "units": {"y+": "y_wall u_tau / nu", "y/delta": "distance from the wall / half-height",
                      "profiles": "U+, u'+, v'+, w'+ in u_tau; uv+ in u_tau^2",
                      "k+": "k nu / u_tau", "E+": "E / (u_tau nu), sum_k E dk = variance",
                      "dz+": "dz u_tau / nu", "R": "dimensionless", "pdf": "u_i'+ (u_tau)"},
            "heights": [{"label": h.label, "target_y+": h.target, "y+": h.yplus} for h in self.heights],
            "y+": self.yplus.tolist(),
            "y/delta": self.y_delta.tolist(),
            "profiles": {k: v.tolist() for k, v in self.profiles.items()},
            "spanwise_spectra": {"k+": self.kz.tolist(), **{
                p: {h.label: self.spectra_z[c, i].tolist() for i, h in enumerate(self.heights)}
                for c, p in enumerate(PAIRS)}},
            "spanwise_correlation": {"dz+": self.dz.tolist(), **{
                p: {h.label: self.correlation[c, i].tolist() for i, h in enumerate(self.heights)}
                for c, p in enumerate(PAIRS)}},
            "pdf_moments": self.moments(),
            "pdf_histograms": hist,
        }
        if self.kx is not None and self.spectra_x is not None:
            d["streamwise_spectra"] = {"k+": self.kx.tolist(), **{
                p: {h.label: self.spectra_x[c, i].tolist() for i, h in enumerate(self.heights)}
                for c, p in enumerate(PAIRS)}}
        if self.divergence is not None:
            d["divergence"] = dict(self.divergence, units="|div u| / (U_bulk / h), h = ly/2")
        if self.balance is not None:
            d["balance"] = dict(self.balance, units="wall units; integrals over each half channel / h")
        return d


def _positive(name: str, v: Any) -> float:
    return number(name, v, minimum=0, strict=True, error=ValueError)


def y_is_symmetric(y: np.ndarray, ly: float, rtol: float = 1e-6) -> bool:
    """True when the wall-normal points are symmetric about the centre: ``y == ly - y[::-1]``."""
    y = np.asarray(y, dtype=np.float64)
    return bool(np.allclose(y, ly - y[::-1], rtol=0.0, atol=rtol * ly))


def _mirror(f: np.ndarray) -> np.ndarray:
    """``f`` (N, 3, [nx,] ny, nz) seen from the upper wall: y reversed, v -> -v (a copy)."""
    m = np.flip(f, axis=-2).copy()
    m[:, 1] *= -1.0
    return m


def one_half(fields: np.ndarray, y: np.ndarray, which: str, ly: float | None = None) -> np.ndarray:
    """One half of the channel mirrored onto the other, so that folded statistics are that half's.

    Parameters
    ----------
    fields
        ``(N, 3, [nx,] ny, nz)`` velocity (u, v, w) on the wall-normal points ``y``.
    y
        Wall-normal coordinates ``(ny,)``, symmetric about the centre.
    which
        ``"lower"`` or ``"upper"``: the half kept; the other becomes its mirror image (v -> -v).
    ly
        Channel height; default ``y[0] + y[-1]``.

    Returns
    -------
    numpy.ndarray
        A float64 copy of ``fields`` with both halves that half's.

    Raises
    ------
    ValueError
        ``which`` unknown, or ``y`` not symmetric about the centre.
    """
    y = np.asarray(y, dtype=np.float64)
    ly = float(y[0] + y[-1]) if ly is None else float(ly)
    if which not in ("lower", "upper"):
        raise ValueError(f"which must be 'lower' or 'upper', got {which!r}")
    if not y_is_symmetric(y, ly):
        raise ValueError("the halves apart need y symmetric about the channel centre")
    f = np.asarray(fields, dtype=np.float64)
    src = f.copy() if which == "lower" else _mirror(f)
    nh = (y.size + 1) // 2  # the rows a fold keeps (the centre row too, for odd ny)
    src[..., nh:, :] = _mirror(src)[..., nh:, :]
    return src


def _fold(f: np.ndarray, y: np.ndarray, ly: float) -> tuple[np.ndarray, np.ndarray, bool]:
    """Lower-half view of ``f`` (..., 3, [nx,] ny, nz) with y on axis -2: returns (samples stacked
    on axis 0, wall distance (nh,), folded?). Symmetric y: both halves, the upper one mirrored with
    v -> -v; otherwise the rows with y <= ly/2."""
    ny = y.size
    if y_is_symmetric(y, ly):
        nh = (ny + 1) // 2
        return np.concatenate([f[..., :nh, :], _mirror(f[..., ny - nh:, :])], axis=0), y[:nh].copy(), True
    rows = y <= 0.5 * ly * (1 + 1e-9)
    if not rows.any():
        raise ValueError(f"no y point lies in the lower half of the channel [0, {ly / 2}]")
    log.info("y points are not symmetric about the centre: statistics use the lower half only")
    return f[..., rows, :], y[rows].copy(), False


def _pick_heights(yplus: np.ndarray, heights: Sequence[float | str], re_tau: float) -> list[Height]:
    off = np.flatnonzero(yplus > 1e-9 * max(re_tau, 1.0))
    if off.size == 0:
        raise ValueError("every y point lies on a wall; no height for spectra")
    out: list[Height] = []
    used: set[int] = set()
    for h in heights:
        if isinstance(h, str):
            if h != "centre":
                raise ValueError(f"height {h!r} unknown; give a y+ value or 'centre'")
            row, target, label = int(off[np.argmax(yplus[off])]), re_tau, "centre"
        else:
            target = _positive("height y+", h)
            if target > yplus.max() * 1.05:
                log.info("height y+=%g lies beyond the centre (y+=%.1f); skipped", target, yplus.max())
                continue
            row, label = int(off[np.argmin(np.abs(yplus[off] - target))]), f"y+={target:g}"
        if row in used:
            log.info("height %s falls on an already used row (y+=%.2f); skipped", label, yplus[row])
            continue
        used.add(row)
        out.append(Height(label, float(target), row, float(yplus[row])))
    if not out:
        raise ValueError(f"none of the heights {list(heights)} lies inside the grid (y+ <= {yplus.max():.1f})")
    return out


def rfft_weights(n: int) -> np.ndarray:
    """Weights of the ``n // 2 + 1`` rfft coefficients of a real signal of ``n`` points in Parseval
    sums: 1 for the mean and (``n`` even) the Nyquist coefficient, 2 for the others."""
    w = np.full(n // 2 + 1, 2.0)
    w[0] = 1.0
    if n % 2 == 0:
        w[-1] = 1.0
    return w


def statistics(
    fields: np.ndarray,
    y: np.ndarray,
    lz: float,
    *,
    nu: float,
    u_tau: float,
    ly: float | None = None,
    lx: float | None = None,
    heights: Sequence[float | str] = DEFAULT_HEIGHTS,
) -> Statistics:
    """Turbulence statistics in wall units of slices or 3-D fields.

    Parameters
    ----------
    fields
        Slices ``(N, 3, ny, nz)`` or 3-D fields ``(N, 3, nx, ny, nz)`` (u, v, w), physical units;
        z periodic with ``nz`` uniform points on ``[0, lz)``.
    y
        Wall-normal coordinates ``(ny,)``, strictly increasing inside ``[0, ly]``.
    lz
        Spanwise period.
    nu, u_tau
        Kinematic viscosity and friction velocity (define the wall units).
    ly
        Channel height; default ``y[0] + y[-1]`` (exact for symmetric grids and for grids with
        points on both walls).
    lx
        Streamwise period; required for 3-D fields (streamwise spectra, divergence).
    heights
        y+ values (and/or ``"centre"``) of spectra, PDFs and correlations.

    Returns
    -------
    Statistics

    Raises
    ------
    ValueError
        Wrong shapes, non-finite values, bad y, non-positive lengths or units, no valid height.
    """
    f = np.asarray(fields)
    if f.ndim not in (4, 5) or f.shape[1] != 3:
        raise ValueError(f"fields must have shape (N, 3, ny, nz) or (N, 3, nx, ny, nz), got {f.shape}")
    if f.shape[0] < 1:
        raise ValueError("fields hold no sample")
    y = np.asarray(y, dtype=np.float64)
    if y.ndim != 1 or y.size != f.shape[-2] or y.size < 2:
        raise ValueError(f"y must have shape ({f.shape[-2]},) to match fields {f.shape}, got {y.shape}")
    if np.any(np.diff(y) <= 0):
        raise ValueError("y must be strictly increasing")
    lz, nu, u_tau = _positive("lz", lz), _positive("nu", nu), _positive("u_tau", u_tau)
    ly = _positive("ly", y[0] + y[-1] if ly is None else ly)
    if y[0] < -1e-12 * ly or y[-1] > ly * (1 + 1e-12):
        raise ValueError(f"y spans [{y[0]}, {y[-1]}], outside the channel [0, ly={ly}]")
    three_d = f.ndim == 5
    if three_d:
        lx = _positive("lx (needed for 3-D fields)", lx)
    f = f.astype(np.float64, copy=False)
    if not np.all(np.isfinite(f)):
        raise ValueError("fields hold NaN/Inf values")
    re_tau = 0.5 * ly * u_tau / nu
    nz = f.shape[-1]

    divergence = _divergence(f, y, (lx, ly, lz)) if three_d else None
    balance = balance_figures(f, y, ly, nu, u_tau)
    half, yw, folded = _fold(f, y, ly)  # (M, 3, [nx,] nh, nz)
    yplus = yw * u_tau / nu
    slices = half.transpose(0, 2, 1, 3, 4).reshape(-1, 3, *half.shape[-2:]) if three_d else half
    # slices: (M', 3, nh, nz)
    mean = slices.mean(axis=(0, 3))  # (3, nh)
    fl = slices - mean[None, :, :, None]  # fluctuations (M', 3, nh, nz)
    var = np.mean(fl * fl, axis=(0, 3))
    profiles = {
        "U+": mean[0] / u_tau,
        "u'+": np.sqrt(var[0]) / u_tau,
        "v'+": np.sqrt(var[1]) / u_tau,
        "w'+": np.sqrt(var[2]) / u_tau,
        "uv+": np.mean(fl[:, 0] * fl[:, 1], axis=(0, 2)) / u_tau**2,
    }
    hs = _pick_heights(yplus, heights, re_tau)
    rows = [h.row for h in hs]
    at = fl[:, :, rows, :]  # (M', 3, H, nz)
    power = np.mean(np.abs(np.fft.rfft(at, axis=-1) / nz) ** 2, axis=0)  # (3, H, nk) two-sided
    dkz = 2 * np.pi / lz
    kz = np.arange(nz // 2 + 1) * dkz
    spectra_z = power * rfft_weights(nz) / dkz / (u_tau * nu)
    cov = np.fft.irfft(power, n=nz, axis=-1) * nz  # (3, H, nz) autocovariance at lags k dz
    nlag = nz // 2 + 1
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.where(cov[..., :1] > 0, cov[..., :nlag] / cov[..., :1], 0.0)
    dz = np.arange(nlag) * (lz / nz) * u_tau / nu
    samples = at.transpose(1, 2, 0, 3).reshape(3, len(hs), -1) / u_tau  # (3, H, M' nz)

    kx = spectra_x = dx = corr_x = None
    if three_d:
        nx = half.shape[2]
        flx = half[:, :, :, rows, :] - mean[None, :, None, rows, None]  # (M, 3, nx, H, nz)
        px = np.mean(np.abs(np.fft.rfft(flx, axis=2) / nx) ** 2, axis=(0, 4))  # (3, nk_x, H)
        dkx = 2 * np.pi / lx
        kx = np.arange(nx // 2 + 1) * dkx * nu / u_tau
        spectra_x = px.transpose(0, 2, 1) * rfft_weights(nx) / dkx / (u_tau * nu)
        cov_x = np.fft.irfft(px, n=nx, axis=1).transpose(0, 2, 1) * nx  # (3, H, nx) autocovariance at k dx
        with np.errstate(invalid="ignore", divide="ignore"):
            corr_x = np.where(cov_x[..., :1] > 0, cov_x[..., : nx // 2 + 1] / cov_x[..., :1], 0.0)
        dx = np.arange(nx // 2 + 1) * (lx / nx) * u_tau / nu
    return Statistics(
        re_tau=re_tau, n_fields=int(f.shape[0]), kind="fields" if three_d else "slices",
        folded=folded, yplus=yplus, y_delta=yw / (0.5 * ly), profiles=profiles, heights=hs,
        kz=kz * nu / u_tau, spectra_z=spectra_z, dz=dz, correlation=corr, samples=samples,
        kx=kx, spectra_x=spectra_x, divergence=divergence, nz=int(nz), nx=int(half.shape[2]) if three_d else 0,
        balance=balance, dx=dx, correlation_x=corr_x,
    )


def balance_figures(f: np.ndarray, y: np.ndarray, ly: float, nu: float, u_tau: float) -> dict[str, float]:
    """Per-wall and momentum-balance figures of unfolded fields ``(N, 3, [nx,] ny, nz)``.

    TKE and the wall-ward shear stress (-uv at the lower wall, +uv at the upper) integrated over
    each half channel / h; the momentum balance of the mean flow under a constant force,
    -uv+ + dU+/dy+ = 1 - y/h (from +1 at the lower wall to -1 at the upper), its largest and RMS
    residual; the bulk V and W. Trapezoid rule on the points (walls included where present).
    """
    axes = tuple(a for a in range(f.ndim) if a not in (1, f.ndim - 2))  # all but component and y
    mean = f.mean(axis=axes)  # (3, ny)
    fl = f - np.expand_dims(mean, axes)
    uu = np.mean(fl * fl, axis=axes)  # (3, ny)
    uv = np.mean(fl[:, 0] * fl[:, 1], axis=tuple(a for a in range(f.ndim - 1) if a != f.ndim - 3))  # (ny,)
    h = 0.5 * ly
    tke = 0.5 * uu.sum(axis=0) / u_tau**2
    tau = (-uv + nu * np.gradient(mean[0], y)) / u_tau**2  # total shear stress
    residual = tau - (1.0 - y / h)
    lower, upper = y <= h, y >= h

    def integral(v: np.ndarray, m: np.ndarray) -> float:
        return float(np.trapezoid(v[m], y[m]) / h) if m.sum() > 1 else 0.0

    yw = np.concatenate([[0.0], y, [ly]])

    def bulk(v: np.ndarray) -> float:  # walls at zero velocity: the delivered fields' contract
        return float(np.trapezoid(np.concatenate([[0.0], v, [0.0]]), yw) / ly) / u_tau

    return {
        "tke_lower": integral(tke, lower), "tke_upper": integral(tke, upper),
        "shear_stress_lower": integral(-uv / u_tau**2, lower), "shear_stress_upper": integral(uv / u_tau**2, upper),
        "balance_residual_max": float(np.abs(residual).max()),
        "balance_residual_rms": float(np.sqrt(np.mean(residual**2))),
        "bulk_v": bulk(mean[1]), "bulk_w": bulk(mean[2]),
    }


def _divergence(f: np.ndarray, y: np.ndarray, lengths: tuple[float, float, float]) -> dict[str, float]:
    """Contract-1 divergence figures over 3-D fields (N, 3, nx, ny, nz): worst max, mean RMS."""
    from .grid import Grid
    from .operators import field_figures

    grid = Grid(f.shape[2:], lengths, y=y)
    figs = [field_figures(fi, grid) for fi in f]
    return {"div_max": max(g["div_max"] for g in figs),
            "div_rms": float(np.mean([g["div_rms"] for g in figs])),
            "bulk_velocity": float(np.mean([g["bulk"] for g in figs]))}
