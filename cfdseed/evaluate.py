"""Evaluation of generated (or any) channel-flow fields: turbulence statistics in wall units,
comparisons with a reference dataset and with published DNS, and the ``cfdseed evaluate`` report.

Python::

    from cfdseed.evaluate import statistics, compare, slice_metrics
    s = statistics(fields, y, lz, nu=nu, u_tau=u_tau)          # slices (N,3,ny,nz) or 3-D (N,3,nx,ny,nz)
    d = compare(s, statistics(real, y, lz, nu=nu, u_tau=u_tau))   # errors vs a reference dataset
    m = slice_metrics(real, fake, y, lz, nu=nu, u_tau=u_tau)      # cheap dict for training; m["combined"]

The ``cfdseed evaluate`` job (:func:`evaluate`; command line in :mod:`cfdseed.cli`)::

    cfdseed evaluate (--model M [--samples N] | --fields [LABEL=]F.h5 ...) [--against DATA.h5]
                     [--reference NAME] --out DIR

``--fields`` reads a cfdseed slice dataset (:mod:`cfdseed.slices`) or a 3-D field written by
``cfdseed generate`` (:func:`cfdseed.fields.read_field`; units from its attributes or --nu/--u-tau).
``--against`` (the DNS) is a slice dataset (at most ``--against-samples`` slices, evenly spread) or
a field file (its own units). Outputs in ``--out``: ``metrics.json`` (every number below with its
units and heights; NaN written as null), the figures of :mod:`cfdseed.report` and ``report.md``
linking them. Several ``--fields`` (each ``LABEL=FILE``, a bare file labelled by its name) give the
side-by-side report of :mod:`cfdseed.sidebyside` instead: per-label metrics, one table, overlays.

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

Comparisons (:func:`compare`, :func:`compare_reference`)
--------------------------------------------------------
- relative L2 error of a profile: ||p - p_ref||_2 / ||p_ref||_2 over the rows (the reference
  interpolated linearly in y+ to the evaluated rows where the grids differ);
- log-spectral error at a height: RMS over k_z > 0 of ln(E / E_ref) (about the relative amplitude
  error when small; 0.1 ~ 10 %), both spectra floored at 1e-8 of the larger peak; the Nyquist bin
  of an even grid is left out (a single cosine amplitude, held at zero by dealiased spectral
  solvers such as Dedalus, so its ratio says nothing about the turbulence); sampling noise
  alone gives about sqrt(2 / M) for M independent samples per bin (M = 2 N nx: both halves, and x
  for 3-D fields);
- 1-D Wasserstein distance W1 between the fluctuation samples at a height (wall units);
- correlation error: RMS over dz of R - R_ref (and over dx when both sets are 3-D).
- against published DNS (:mod:`cfdseed.reference`): relative L2 error of each available profile,
  the reference interpolated to the data's y+ (rows outside the reference range are left out).

The "combined" metric
---------------------
``combined = 0.5 * mean(relative L2 errors of U+, u'+, v'+, w'+, uv+)
           + 0.5 * mean(log-spectral errors of E_uu, E_vv, E_ww, each averaged over the heights)``
against the reference dataset; dimensionless, 0 for identical statistics, lower is better. One-point
statistics and spanwise structure weigh equally. :func:`slice_metrics` returns it (the trainer keeps
the checkpoint with the lowest value as ``best.pt``).

For the conditional plane generator (:mod:`cfdseed.conditional`), :func:`pair_metrics` scores
generated next planes against real ones *for the same previous planes*: the slice metrics above
(``combined_slices``) plus the one-step correlation error of each component,
``R1_u, R1_v, R1_w = RMS over rows of R1_fake(y) - R1_real(y)`` with ``R1(y)`` the correlation
between a plane and the next one over samples and z (:func:`step_correlation`), and

``combined = combined_slices + mean(R1_u, R1_v, R1_w)``

(an error of 0.1 in the one-step correlation weighs like a 10 % error in the slice statistics: both
scales are "relative"; the correlation term is what tells a model whose v decorrelates at the rate
of u from one whose components decorrelate at their own rates). Given the planes a rollout of many
steps reaches from the same previous planes (``rolled``), it adds ``rollout_tke``, the relative
error of their volume-averaged TKE against the real next planes' (a chain that drifts, as one-step
training allows, fails here however good its single steps are; non-finite: inf), and
``rollout_uv``, the RMS over rows of the error of their u-v correlation coefficient (a chain whose
near-wall u and v drift apart along x -- measured on a v2 candidate: -0.6 to -0.05 within 16 steps
while its single steps were right -- fails here), to ``combined``;
given also the planes one step before (``rolled_prev``), it adds ``rollout_R1``, the one-step
correlation error of the chain's own last step (a chain that freezes, its planes barely changing,
fails here).
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._values import number

__all__ = [
    "DEFAULT_HEIGHTS",
    "PROFILES",
    "SPECTRUM_FLOOR",
    "Height",
    "Statistics",
    "statistics",
    "balance_figures",
    "compare",
    "compare_reference",
    "slice_metrics",
    "step_correlation",
    "pair_metrics",
    "wasserstein1",
    "relative_l2",
    "log_spectral_error",
    "evaluate",
]

log = logging.getLogger(__name__)

#: Heights (y+) of spectra, PDFs and correlations; "centre" is the row nearest the channel centre.
DEFAULT_HEIGHTS: tuple[float | str, ...] = (5.0, 15.0, 30.0, 100.0, "centre")
#: Profile names, in wall units.
PROFILES = ("U+", "u'+", "v'+", "w'+", "uv+")
#: Spectral values below this fraction of the peak count as equal in the log-spectral error.
SPECTRUM_FLOOR = 1e-8
_COMP = "uvw"
_PAIRS = ("uu", "vv", "ww")


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
        the Nyquist mode, which :func:`compare` leaves out (see the module docstring).
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
        for c, name in enumerate(_COMP):
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
        for c, name in enumerate(_COMP):
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
                for c, p in enumerate(_PAIRS)}},
            "spanwise_correlation": {"dz+": self.dz.tolist(), **{
                p: {h.label: self.correlation[c, i].tolist() for i, h in enumerate(self.heights)}
                for c, p in enumerate(_PAIRS)}},
            "pdf_moments": self.moments(),
            "pdf_histograms": hist,
        }
        if self.kx is not None and self.spectra_x is not None:
            d["streamwise_spectra"] = {"k+": self.kx.tolist(), **{
                p: {h.label: self.spectra_x[c, i].tolist() for i, h in enumerate(self.heights)}
                for c, p in enumerate(_PAIRS)}}
        if self.divergence is not None:
            d["divergence"] = dict(self.divergence, units="|div u| / (U_bulk / h), h = ly/2")
        if self.balance is not None:
            d["balance"] = dict(self.balance, units="wall units; integrals over each half channel / h")
        return d


# ---------------------------------------------------------------------------------------------
# statistics
# ---------------------------------------------------------------------------------------------
def _positive(name: str, v: Any) -> float:
    return number(name, v, minimum=0, strict=True, error=ValueError)


def _fold(f: np.ndarray, y: np.ndarray, ly: float) -> tuple[np.ndarray, np.ndarray, bool]:
    """Lower-half view of ``f`` (..., 3, [nx,] ny, nz) with y on axis -2: returns (samples stacked
    on axis 0, wall distance (nh,), folded?). Symmetric y: both halves, the upper one mirrored with
    v -> -v; otherwise the rows with y <= ly/2."""
    ny = y.size
    if np.allclose(y, ly - y[::-1], rtol=0.0, atol=1e-6 * ly):
        nh = (ny + 1) // 2
        upper = f[..., ::-1, :][..., :nh, :].copy()
        upper[:, 1] *= -1.0
        return np.concatenate([f[..., :nh, :], upper], axis=0), y[:nh].copy(), True
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


def _one_sided(power: np.ndarray, n: int) -> np.ndarray:
    """Two-sided |hat u_k|^2 on rfft bins (..., n//2+1) -> one-sided (sum = variance)."""
    out = power.copy()
    last = n // 2 if n % 2 == 0 else n // 2 + 1  # exclusive end of the doubled bins
    out[..., 1:last] *= 2.0
    return out


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
    spectra_z = _one_sided(power, nz) / dkz / (u_tau * nu)
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
        spectra_x = _one_sided(px.transpose(0, 2, 1), nx) / dkx / (u_tau * nu)
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


# ---------------------------------------------------------------------------------------------
# comparisons
# ---------------------------------------------------------------------------------------------
def relative_l2(p: np.ndarray, ref: np.ndarray) -> float:
    """``||p - ref||_2 / ||ref||_2`` (``||p - ref||_2`` when ref is zero)."""
    p, ref = np.asarray(p, np.float64), np.asarray(ref, np.float64)
    den = float(np.linalg.norm(ref))
    num = float(np.linalg.norm(p - ref))
    return num / den if den > 0 else num


def log_spectral_error(e: np.ndarray, ref: np.ndarray) -> float:
    """RMS over the bins k > 0 of ``ln(e / ref)``; both floored at 1e-8 of the larger peak, so
    empty bins stay finite and differences in energetically negligible bins do not count."""
    e, ref = np.asarray(e, np.float64)[1:], np.asarray(ref, np.float64)[1:]
    if e.size == 0:
        return 0.0
    floor = SPECTRUM_FLOOR * max(float(ref.max()), float(e.max()), 1e-300)
    return float(np.sqrt(np.mean(np.log(np.maximum(e, floor) / np.maximum(ref, floor)) ** 2)))


def wasserstein1(a: np.ndarray, b: np.ndarray) -> float:
    """1-D Wasserstein distance ``integral |F_a - F_b| dx`` between two empirical distributions."""
    a, b = np.sort(np.ravel(a)), np.sort(np.ravel(b))
    if a.size == 0 or b.size == 0:
        raise ValueError("wasserstein1 needs two non-empty samples")
    grid = np.concatenate([a, b])
    grid.sort()
    fa = np.searchsorted(a, grid[:-1], side="right") / a.size
    fb = np.searchsorted(b, grid[:-1], side="right") / b.size
    return float(np.sum(np.abs(fa - fb) * np.diff(grid)))


def _on(x_to: np.ndarray, x_from: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``v(x_from)`` at ``x_to`` (identity when the coordinates agree; else linear interpolation)."""
    if x_to.shape == x_from.shape and np.allclose(x_to, x_from, rtol=1e-9, atol=1e-12):
        return v
    return np.interp(x_to, x_from, v)


def _comparable(k: np.ndarray, n: int, k_ref: np.ndarray, n_ref: int) -> np.ndarray:
    """Bins of ``k`` inside the reference's range, Nyquist modes (even ``n`` / ``n_ref``) left out.

    The Nyquist mode of a real signal is one cosine amplitude; dealiased spectral solvers (Dedalus)
    hold it at zero, so comparing it would make ``ln(E / E_ref)`` measure the solver, not the flow.
    """
    top = k_ref.max() * (1 + 1e-9)
    if n_ref > 0 and n_ref % 2 == 0:
        top = k_ref.max() * (1 - 1e-9)
    mask = k <= top
    if n > 0 and n % 2 == 0:
        mask[-1] = False
    return mask


def compare(s: Statistics, ref: Statistics) -> dict[str, Any]:
    """Errors of ``s`` against the reference dataset statistics ``ref`` (module docstring).

    Heights are paired by label; the reference is interpolated to ``s``'s y+ / k+ / dz+ where the
    grids differ. Returns ``{"profiles": {name: rel L2}, "spectra": {pair: {label: err}},
    "spectra_mean": {pair: mean over heights}, "pdf_w1": {comp: {label: W1}}, "correlation":
    {pair: {label: rms}}, "combined": float}``.
    """
    in_range = s.yplus <= ref.yplus.max() * (1 + 1e-9)
    prof = {k: relative_l2(s.profiles[k][in_range], _on(s.yplus[in_range], ref.yplus, ref.profiles[k]))
            for k in PROFILES}
    ref_h = {h.label: i for i, h in enumerate(ref.heights)}
    pairs = [(i, ref_h[h.label], h.label) for i, h in enumerate(s.heights) if h.label in ref_h]
    spec: dict[str, dict[str, float]] = {}
    corr: dict[str, dict[str, float]] = {}
    w1: dict[str, dict[str, float]] = {}
    kmask = _comparable(s.kz, s.nz, ref.kz, ref.nz)
    for c, p in enumerate(_PAIRS):
        spec[p] = {lab: log_spectral_error(s.spectra_z[c, i][kmask], _on(s.kz[kmask], ref.kz, ref.spectra_z[c, j]))
                   for i, j, lab in pairs}
        corr[p] = {lab: float(np.sqrt(np.mean((s.correlation[c, i] - _on(s.dz, ref.dz, ref.correlation[c, j])) ** 2)))
                   for i, j, lab in pairs}
        w1[_COMP[c]] = {lab: wasserstein1(s.samples[c, i], ref.samples[c, j]) for i, j, lab in pairs}
    spec_mean = {p: float(np.mean(list(v.values()))) if v else float("nan") for p, v in spec.items()}
    out: dict[str, Any] = {
        "profiles": prof, "spectra": spec, "spectra_mean": spec_mean, "pdf_w1": w1, "correlation": corr,
        "combined": _combined(prof, spec_mean),
        "units": {"profiles": "relative L2 error", "spectra": "RMS of ln(E/E_ref) over k_z > 0",
                  "pdf_w1": "Wasserstein-1 distance in u_tau", "correlation": "RMS of R - R_ref over dz"},
    }
    if s.kx is not None and ref.kx is not None and s.spectra_x is not None and ref.spectra_x is not None:
        xmask = _comparable(s.kx, s.nx, ref.kx, ref.nx)
        out["streamwise_spectra"] = {
            p: {lab: log_spectral_error(s.spectra_x[c, i][xmask], _on(s.kx[xmask], ref.kx, ref.spectra_x[c, j]))
                for i, j, lab in pairs} for c, p in enumerate(_PAIRS)}
    if s.dx is not None and ref.dx is not None and s.correlation_x is not None and ref.correlation_x is not None:
        out["streamwise_correlation"] = {
            p: {lab: float(np.sqrt(np.mean((s.correlation_x[c, i] - _on(s.dx, ref.dx, ref.correlation_x[c, j])) ** 2)))
                for i, j, lab in pairs} for c, p in enumerate(_PAIRS)}
    return out


def _combined(prof: Mapping[str, float], spec_mean: Mapping[str, float]) -> float:
    return 0.5 * float(np.mean([prof[k] for k in PROFILES])) + 0.5 * float(np.mean([spec_mean[p] for p in _PAIRS]))


def compare_reference(s: Statistics, ref: Any) -> dict[str, Any]:
    """Relative L2 errors of ``s``'s profiles against published DNS.

    ``ref`` is a :class:`cfdseed.reference.Reference`; each profile it has is interpolated to the
    rows of ``s`` with ``y+`` inside its range. Returns ``{"name", "re_tau", "rows_compared",
    "profiles": {name: rel L2}, "units"}``.
    """
    at = ref.interpolate(s.yplus)
    mask = np.isfinite(at["U+"])
    prof = {k: relative_l2(s.profiles[k][mask], v[mask]) for k, v in at.items() if k in PROFILES and mask.any()}
    return {"name": ref.name, "re_tau": ref.re_tau, "citation": ref.citation, "data_re_tau": s.re_tau,
            "rows_compared": int(mask.sum()), "profiles": prof,
            "units": "relative L2 error, reference interpolated linearly in y+ to the data rows"}


def slice_metrics(real: np.ndarray, fake: np.ndarray, y: np.ndarray, lz: float, *, nu: float,
                  u_tau: float, ly: float | None = None) -> dict[str, float]:
    """Cheap validation metrics of generated slices against real ones (shared contract 6).

    Parameters
    ----------
    real, fake
        Slices ``(N, 3, ny, nz)`` in physical units on the same grid (N may differ).
    y, lz, nu, u_tau, ly
        Grid and wall units as in :func:`statistics`.

    Returns
    -------
    dict
        ``"U+", "u'+", "v'+", "w'+", "uv+"``: relative L2 errors of the profiles;
        ``"E_uu", "E_vv", "E_ww"``: log-spectral errors averaged over the default heights;
        ``"combined"``: 0.5 mean(profile errors) + 0.5 mean(spectral errors), lower is better.

    Raises
    ------
    ValueError
        Shapes that are not slices on the same grid; non-finite values (a generator that diverged
        should be noticed, not scored).
    """
    real, fake = np.asarray(real), np.asarray(fake)
    if real.ndim != 4 or fake.ndim != 4 or real.shape[1:] != fake.shape[1:]:
        raise ValueError(f"real and fake must be slices (N, 3, ny, nz) on one grid, got {real.shape} and {fake.shape}")
    sr = statistics(real, y, lz, nu=nu, u_tau=u_tau, ly=ly)
    sf = statistics(fake, y, lz, nu=nu, u_tau=u_tau, ly=ly)
    c = compare(sf, sr)
    out = {k: float(v) for k, v in c["profiles"].items()}
    out.update({f"E_{p}": float(v) for p, v in c["spectra_mean"].items()})
    out["combined"] = float(c["combined"])
    return out


def step_correlation(prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
    """Correlation ``(3, ny)`` between planes ``prev`` and the next ones ``nxt`` ``(N, 3, ny, nz)``.

    Per component and row, over samples and z, of the fluctuations about each set's mean over
    samples and z; rows where either has no variance give NaN.
    """
    p = np.asarray(prev, dtype=np.float64)
    n = np.asarray(nxt, dtype=np.float64)
    if p.ndim != 4 or p.shape != n.shape:
        raise ValueError(f"prev and nxt must be planes (N, 3, ny, nz) of one shape, got {p.shape} and {n.shape}")
    p = p - p.mean(axis=(0, 3), keepdims=True)
    n = n - n.mean(axis=(0, 3), keepdims=True)
    den = np.sqrt((p * p).mean(axis=(0, 3)) * (n * n).mean(axis=(0, 3)))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (p * n).mean(axis=(0, 3)) / np.where(den > 0, den, 1.0), np.nan)


def pair_metrics(prev: np.ndarray, real: np.ndarray, fake: np.ndarray, y: np.ndarray, lz: float, *, nu: float,
                 u_tau: float, ly: float | None = None, rolled: np.ndarray | None = None,
                 rolled_prev: np.ndarray | None = None) -> dict[str, float]:
    """Validation metrics of a conditional plane generator (module docstring, "combined").

    Parameters
    ----------
    prev, real, fake
        Planes ``(N, 3, ny, nz)`` in physical units: the conditions, the real next planes and the
        generated next planes for the same conditions.
    y, lz, nu, u_tau, ly
        As :func:`slice_metrics`.
    rolled
        Optional planes ``(M, 3, ny, nz)`` at the end of rollouts from ``prev`` (physical units).
    rolled_prev
        Optional: the planes one step before ``rolled`` along the same chains.

    Returns
    -------
    dict
        :func:`slice_metrics` of ``real`` and ``fake`` (its ``combined`` as ``combined_slices``),
        ``"R1_u", "R1_v", "R1_w"`` (RMS over rows of the one-step correlation error),
        ``"rollout_tke"`` and ``"rollout_uv"`` (RMS over rows of the error of the u-v correlation
        coefficient of ``rolled`` against ``real``'s) when ``rolled`` is given, ``"rollout_R1"`` (mean over components of the
        RMS over rows of the chain's one-step correlation error at its end: a frozen chain scores
        high) when ``rolled_prev`` is given too, and ``"combined"`` (their sum with the rest).

    Raises
    ------
    ValueError
        As :func:`slice_metrics`; ``prev`` of another shape than ``real`` and ``fake``.
    """
    prev, real, fake = np.asarray(prev), np.asarray(real), np.asarray(fake)
    if prev.shape != real.shape or prev.shape != fake.shape:
        raise ValueError(f"prev, real and fake must be planes of one shape, got {prev.shape}, {real.shape}, "
                         f"{fake.shape}")
    out = slice_metrics(real, fake, y, lz, nu=nu, u_tau=u_tau, ly=ly)
    out["combined_slices"] = out.pop("combined")
    r_real, r_fake = step_correlation(prev, real), step_correlation(prev, fake)
    for c, name in enumerate(_COMP):
        out[f"R1_{name}"] = _row_rms_error(r_fake[c], r_real[c])
    out["combined"] = out["combined_slices"] + float(np.mean([out[f"R1_{c}"] for c in _COMP]))
    if rolled is not None:
        rolled = np.asarray(rolled)
        if rolled.ndim != 4 or rolled.shape[1:] != real.shape[1:]:
            raise ValueError(f"rolled must be planes (M, {', '.join(map(str, real.shape[1:]))}), got {rolled.shape}")
        tke_real, tke_rolled = _plane_tke(real, y), _plane_tke(rolled, y)
        ok = math.isfinite(tke_rolled) and tke_real > 0
        out["rollout_tke"] = abs(tke_rolled / tke_real - 1.0) if ok else math.inf
        out["combined"] += out["rollout_tke"]
        out["rollout_uv"] = _row_rms_error(_uv_correlation(rolled), _uv_correlation(real)) if ok else 1.0
        out["combined"] += out["rollout_uv"]
        if rolled_prev is not None:
            rolled_prev = np.asarray(rolled_prev)
            if rolled_prev.shape != rolled.shape:
                raise ValueError(f"rolled_prev must have rolled's shape {rolled.shape}, got {rolled_prev.shape}")
            r_chain = step_correlation(rolled_prev, rolled) if ok else np.zeros_like(r_real)
            out["rollout_R1"] = float(np.mean([_row_rms_error(r_chain[c], r_real[c]) for c in range(3)]))
            out["combined"] += out["rollout_R1"]
    return out


def _row_rms_error(fake: np.ndarray, real: np.ndarray) -> float:
    """RMS over rows of ``fake - real`` (per-row correlations ``(ny,)``) on the rows where ``real`` is
    defined (variance in the data: not a no-slip wall row); an undefined generated row counts as 0
    (a frozen row); 0 when no row is defined."""
    rows = np.isfinite(real)
    diff = np.nan_to_num(fake[rows], nan=0.0) - real[rows]
    return float(np.sqrt(np.mean(diff**2))) if rows.any() else 0.0


def _uv_correlation(planes: np.ndarray) -> np.ndarray:
    """``(ny,)``: the correlation coefficient of u and v per row over samples and z (fluctuations
    about the sample-and-z mean); NaN on rows where either has no variance."""
    f = planes[:, :2] - planes[:, :2].mean(axis=(0, 3), keepdims=True)
    uu, vv = (f[:, 0] ** 2).mean(axis=(0, 2)), (f[:, 1] ** 2).mean(axis=(0, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = (f[:, 0] * f[:, 1]).mean(axis=(0, 2)) / np.sqrt(uu * vv)
    return np.where((uu > 0) & (vv > 0), rho, np.nan)


def _plane_tke(planes: np.ndarray, y: np.ndarray) -> float:
    """Volume-averaged TKE of planes ``(N, 3, ny, nz)``: fluctuations about their mean profile over
    planes and z, averaged in y by the trapezoid rule."""
    f = planes.astype(np.float64) - planes.mean(axis=(0, 3), keepdims=True)
    prof = 0.5 * (f**2).sum(axis=1).mean(axis=(0, 2))  # (ny,)
    y = np.asarray(y, dtype=np.float64)
    return float(np.trapezoid(prof, y) / (y[-1] - y[0]))


# ---------------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------------
@dataclass
class _Set:
    """Fields to evaluate or compare with, and their grid / wall units."""

    source: str
    fields: np.ndarray  # (N, 3, ny, nz) or (N, 3, nx, ny, nz)
    y: np.ndarray
    ly: float
    lz: float
    nu: float
    u_tau: float
    lx: float | None = None

    def stats(self, heights: Sequence[float | str]) -> Statistics:
        return statistics(self.fields, self.y, self.lz, nu=self.nu, u_tau=self.u_tau, ly=self.ly,
                          lx=self.lx, heights=heights)


def _slice_set(path: str, max_samples: int | None) -> _Set:
    from .slices import open_dataset

    with open_dataset(path, check_finite=False) as ds:
        idx = np.arange(ds.n)
        if max_samples is not None and ds.n > max_samples:
            idx = np.unique(np.linspace(0, ds.n - 1, max_samples).round().astype(np.int64))  # evenly spread
        f = ds.read(idx)
        return _Set(f"dataset {path} ({idx.size} of {ds.n} slices)", f, ds.y, ds.ly, ds.lz, ds.nu, ds.u_tau)


def _read_input(path: str, nu: float | None = None, u_tau: float | None = None, *,
                max_samples: int | None = None, override: bool = True) -> _Set:
    """A slice dataset (contract 4; at most ``max_samples`` slices, evenly spread) or one 3-D field
    written by ``cfdseed generate`` (:func:`cfdseed.fields.read_field`); ``nu``/``u_tau`` override
    (``override``) or only supply the field file's units."""
    import h5py

    from .errors import DatasetError

    if not os.path.isfile(path):
        raise DatasetError(f"{path}: no such file")
    try:
        with h5py.File(path, "r") as h:
            is_field = "u" in h and "fields" not in h
    except OSError as exc:
        raise DatasetError(f"{path}: not a readable HDF5 file ({exc})") from None
    if not is_field:
        return _slice_set(path, max_samples)
    from .fields import read_field

    field, y, (lx, ly, lz), attrs = read_field(path)
    given = {"nu": nu, "u_tau": u_tau}
    units = {k: (v if v is not None and (override or attrs.get(k) is None) else attrs.get(k)) for k, v in given.items()}
    missing = [k for k, v in units.items() if v is None]
    if missing:
        raise DatasetError(f"{path}: the field file does not record {' and '.join(missing)} (its source had no units); "
                           "pass --nu and --u-tau to evaluate it in wall units")
    return _Set(f"field {path} (3-D, {'x'.join(map(str, field.shape[1:]))})", field[None], y, ly, lz,
                float(units["nu"]), float(units["u_tau"]), lx=lx)


def _sample_model(path: str | None, n: int, seed: int, device: str | None) -> _Set:
    from .checkpoint import model_path
    from .model import load_generator

    p = str(model_path(path))
    g = load_generator(p, device=device)
    f = g.sample(n, seed=seed)
    return _Set(f"model {p} ({n} samples, seed {seed})", f, g.y, g.ly, g.lz, g.nu, g.u_tau)


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, (np.floating, float)):
        return float(v) if math.isfinite(v) else None
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.ndarray):
        return _jsonable(v.tolist())
    return v


#: Label of an input: what a markdown table header and a legend can show.
_LABEL = re.compile(r"\w[\w.+\- ]*\Z")


def _inputs(fields: Any) -> list[tuple[str, str, bool]]:
    """``(label, path, labelled)`` of each input of :func:`evaluate`'s ``fields`` (a file, a mapping
    label -> file, or a sequence of files and ``(label, file)`` pairs); a bare file is labelled by
    its file name without suffix. Labels must be unique."""
    from .errors import ConfigError

    if isinstance(fields, (str, os.PathLike)):
        items: list[Any] = [fields]
    elif isinstance(fields, Mapping):
        items = list(fields.items())
    elif isinstance(fields, Sequence):
        items = list(fields)
    else:
        raise ConfigError(f"fields must be a file, a mapping label -> file or a list of files and (label, file) "
                          f"pairs, got {type(fields).__name__}")
    if not items:
        raise ConfigError("fields: no input given")
    out: list[tuple[str, str, bool]] = []
    seen: dict[str, str] = {}
    for it in items:
        if isinstance(it, (str, os.PathLike)):
            path, explicit = os.fspath(it), False
            label = os.path.splitext(os.path.basename(path))[0]
        elif (isinstance(it, (tuple, list)) and len(it) == 2 and isinstance(it[0], str)
              and isinstance(it[1], (str, os.PathLike))):
            label, path, explicit = it[0].strip(), os.fspath(it[1]), True
        else:
            raise ConfigError(f"fields: {it!r} is neither a file nor a (label, file) pair")
        if not path:
            raise ConfigError(f"input {label!r}: no file given (LABEL=FILE)")
        if (explicit or len(items) > 1) and not _LABEL.match(label):
            what = "label" if explicit else f"{path}: its file name as a label,"
            raise ConfigError(f"{what} {label!r} is not allowed: use letters, digits, spaces and _ . + - "
                              "(starting with a letter or digit)" + ("" if explicit else "; give LABEL=FILE"))
        if label in seen:
            raise ConfigError(f"label {label!r} given twice ({seen[label]} and {path}); give each input its own "
                              "label, e.g. --fields sem=sem.h5 --fields gan=gan.h5")
        seen[label] = path
        out.append((label, path, explicit))
    return out


#: What the comparison numbers mean (metrics.json "definitions").
_DEFINITIONS = {
    "relative_l2": "||p - p_ref||_2 / ||p_ref||_2 over the rows (wall-distance ordered, both halves averaged)",
    "log_spectral": "RMS over k_z > 0 of ln(E / E_ref)",
    "wasserstein1": "integral |F - F_ref| du' of the fluctuation CDFs, wall units",
    "correlation": "RMS over dz of R - R_ref",
    "combined": "0.5 * mean(rel. L2 of U+, u'+, v'+, w'+, uv+) + 0.5 * mean(log-spectral E_uu, E_vv, E_ww "
                "averaged over heights); lower is better",
}


def _write(evaluated: _Set, against: _Set | None, reference: str | None, out: Any,
           heights: Sequence[float | str], name: str | None = None) -> dict[str, Any]:
    """Statistics, comparisons, ``metrics.json``, figures and ``report.md`` into ``out``."""
    import json
    from pathlib import Path

    from . import __version__
    from .reference import load_reference, nearest_reference
    from .report import write_figures, write_report

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    s = evaluated.stats(heights)
    a = against.stats(heights) if against is not None else None
    ref = None
    if reference is not None and reference.lower() != "none":
        ref = load_reference(nearest_reference(s.re_tau) if reference.lower() == "auto" else reference)
    metrics: dict[str, Any] = {
        "cfdseed_version": __version__,
        "evaluated": {"source": evaluated.source, "grid": _grid(evaluated), "statistics": s.to_dict()},
        "against": None if a is None or against is None else {
            "source": against.source, "grid": _grid(against), "statistics": a.to_dict()},
        "vs_dataset": compare(s, a) if a is not None else None,
        "vs_reference": compare_reference(s, ref) if ref is not None else None,
        "against_vs_reference": compare_reference(a, ref) if (ref is not None and a is not None) else None,
        "definitions": dict(_DEFINITIONS),
    }
    if ref is not None and s.re_tau > 0 and abs(math.log(ref.re_tau / s.re_tau)) > 0.2:
        log.warning("reference %s has Re_tau %.0f, the data %.0f: profiles differ physically", ref.name,
                    ref.re_tau, s.re_tau)
    other = (against.fields, against.y, against.lz) if against is not None else None
    names = (name or ("generated" if evaluated.source.startswith("model") else "evaluated"), "dataset")
    figures = write_figures(out, s, a, ref, evaluated.fields, evaluated.y, evaluated.lz, other, names)
    metrics["figures"] = figures
    (out / "metrics.json").write_text(json.dumps(_jsonable(metrics), indent=1))
    write_report(out, metrics, figures)
    return metrics


def _grid(d: _Set) -> dict[str, Any]:
    return {"shape": list(d.fields.shape[1:]), "y": d.y.tolist(), "ly": d.ly, "lz": d.lz, "lx": d.lx,
            "nu": d.nu, "u_tau": d.u_tau, "re_tau": 0.5 * d.ly * d.u_tau / d.nu}


def evaluate(
    out: str | os.PathLike,
    *,
    fields: str | os.PathLike | Mapping[str, str | os.PathLike] | Sequence[Any] | None = None,
    model: str | os.PathLike | None = None,
    samples: int = 256,
    seed: int = 0,
    device: str | None = None,
    nu: float | None = None,
    u_tau: float | None = None,
    against: str | os.PathLike | None = None,
    against_samples: int = 1024,
    reference: str = "auto",
    heights: Sequence[float | str] = DEFAULT_HEIGHTS,
) -> dict[str, Any]:
    """Evaluate stored fields or a model's samples; write ``out/metrics.json``, figures, ``report.md``.

    Parameters
    ----------
    out
        Output folder (created if missing).
    fields
        What to evaluate: a slice dataset or a 3-D field file written by ``cfdseed generate``; or
        several, side by side (:mod:`cfdseed.sidebyside`): a mapping label -> file, or a list of
        files and ``(label, file)`` pairs (a bare file is labelled by its name without suffix).
        One input, labelled or not, gives the single-input report. None: the model is sampled.
    model
        Generator checkpoint sampled when ``fields`` is None (None: the packaged default model).
    samples, seed, device
        Slices drawn from the model, their latent seed, the torch device (None: CUDA when available).
    nu, u_tau
        Units of the 3-D field files of ``fields`` (default: their attributes); a field file given as
        ``against`` keeps its own units and takes these only where it records none.
    against
        The data the inputs are compared with (the DNS): a slice dataset (at most
        ``against_samples`` slices of it, evenly spread) or a 3-D field file.
    reference
        Published DNS: a name of :data:`cfdseed.reference.REFERENCES`, ``"auto"`` (nearest in
        Re_tau to the evaluated data; side by side, to ``against``, else to the first input) or
        ``"none"``.
    heights
        y+ of spectra, PDFs and correlations (``"centre"`` for the centre row).

    Returns
    -------
    dict
        The contents of ``metrics.json`` plus ``figures`` (figure name -> file name); side by side
        the layout of :func:`cfdseed.sidebyside.write_side_by_side`.

    Raises
    ------
    ConfigError
        ``fields`` and ``model`` both given, a label given twice or not allowed, non-positive sample
        counts, an unknown reference.
    DatasetError, CheckpointError
        Missing or unreadable inputs, field files without units (and no ``nu``/``u_tau``), or data
        the statistics reject (non-finite values, bad grid, ...).
    """
    from .errors import CfdseedError, ConfigError, DatasetError
    from .reference import REFERENCES

    if fields is not None and model is not None:
        raise ConfigError("give either fields or a model to evaluate, not both")
    if samples < 1 or against_samples < 1:
        raise ConfigError(f"samples and against_samples must be positive, got {samples}, {against_samples}")
    ref = str(reference).strip().lower()
    if ref not in ("auto", "none", *REFERENCES):
        raise ConfigError(f"unknown reference {reference!r}; one of auto, none, {', '.join(REFERENCES)}")
    inputs = _inputs(fields) if fields is not None else []
    try:
        if len(inputs) > 1:
            from .sidebyside import write_side_by_side

            for label, path, _ in inputs:  # every file exists before any is read
                if not os.path.isfile(path):
                    raise DatasetError(f"input {label!r}: {path}: no such file")
            sets = []
            for label, path, _ in inputs:
                try:
                    sets.append((label, _read_input(path, nu, u_tau)))
                except DatasetError as exc:
                    raise DatasetError(f"input {label!r}: {exc}") from None
            ag = _read_against(against, against_samples, nu, u_tau)
            return write_side_by_side(sets, ag, ref, out, heights)
        ag = _read_against(against, against_samples, nu, u_tau)  # before a model is sampled
        if inputs:
            label, path, explicit = inputs[0]
            ev, name = _read_input(path, nu, u_tau), (label if explicit else None)
        else:
            ev, name = _sample_model(None if model is None else str(model), samples, seed, device), None
        return _write(ev, ag, ref, out, heights, name)
    except CfdseedError:
        raise
    except ValueError as exc:  # statistics reject the data (non-finite values, bad grid, ...)
        raise DatasetError(f"cannot evaluate: {exc}") from None


def _read_against(path: Any, max_samples: int, nu: float | None, u_tau: float | None) -> _Set | None:
    from .errors import DatasetError

    if path is None:
        return None
    try:
        return _read_input(os.fspath(path), nu, u_tau, max_samples=max_samples, override=False)
    except DatasetError as exc:
        raise DatasetError(f"--against: {exc}") from None
