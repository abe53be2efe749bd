"""Comparisons of turbulence statistics (:mod:`cfdseed.stats`) and the metrics built on them:
errors against a reference dataset (:func:`compare`) and published DNS (:func:`compare_reference`),
the trainer's validation metrics (:func:`slice_metrics`, :func:`pair_metrics`) and their error
measures (:func:`relative_l2`, :func:`log_spectral_error`, :func:`wasserstein1`).

Python::

    from cfdseed.metrics import compare, slice_metrics
    from cfdseed.stats import statistics
    d = compare(s, statistics(real, y, lz, nu=nu, u_tau=u_tau))   # errors vs a reference dataset
    m = slice_metrics(real, fake, y, lz, nu=nu, u_tau=u_tau)      # cheap dict for training; m["combined"]

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

Halves apart (``halves=True``; the trainer's ``log.eval_halves``): the profiles above fold both
halves of the channel, so a generator whose upper half carries -uv 8 % too high and whose lower
half carries it right scores about 4 %. With ``halves`` each profile is compared once per half
(``"<profile> lower"``, ``"<profile> upper"``: each half mirrored onto the other, v -> -v, so the
folded statistics are that half's) and ``combined`` takes, per profile, the worse half's error
(``combined_folded``: the folded value, comparable with runs scored without it). Needs y symmetric
about the centre.

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

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from .stats import COMPONENTS, PAIRS, PROFILES, Statistics, one_half, statistics

__all__ = [
    "SPECTRUM_FLOOR",
    "compare",
    "compare_reference",
    "slice_metrics",
    "step_correlation",
    "pair_metrics",
    "wasserstein1",
    "relative_l2",
    "log_spectral_error",
]

#: Spectral values below this fraction of the peak count as equal in the log-spectral error.
SPECTRUM_FLOOR = 1e-8


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
    for c, p in enumerate(PAIRS):
        spec[p] = {lab: log_spectral_error(s.spectra_z[c, i][kmask], _on(s.kz[kmask], ref.kz, ref.spectra_z[c, j]))
                   for i, j, lab in pairs}
        corr[p] = {lab: float(np.sqrt(np.mean((s.correlation[c, i] - _on(s.dz, ref.dz, ref.correlation[c, j])) ** 2)))
                   for i, j, lab in pairs}
        w1[COMPONENTS[c]] = {lab: wasserstein1(s.samples[c, i], ref.samples[c, j]) for i, j, lab in pairs}
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
                for i, j, lab in pairs} for c, p in enumerate(PAIRS)}
    if s.dx is not None and ref.dx is not None and s.correlation_x is not None and ref.correlation_x is not None:
        out["streamwise_correlation"] = {
            p: {lab: float(np.sqrt(np.mean((s.correlation_x[c, i] - _on(s.dx, ref.dx, ref.correlation_x[c, j])) ** 2)))
                for i, j, lab in pairs} for c, p in enumerate(PAIRS)}
    return out


def _combined(prof: Mapping[str, float], spec_mean: Mapping[str, float]) -> float:
    return 0.5 * float(np.mean([prof[k] for k in PROFILES])) + 0.5 * float(np.mean([spec_mean[p] for p in PAIRS]))


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
                  u_tau: float, ly: float | None = None, halves: bool = False) -> dict[str, float]:
    """Cheap validation metrics of generated slices against real ones (shared contract 6).

    Parameters
    ----------
    real, fake
        Slices ``(N, 3, ny, nz)`` in physical units on the same grid (N may differ).
    y, lz, nu, u_tau, ly
        Grid and wall units as in :func:`cfdseed.stats.statistics`.
    halves
        Also compare each half of the channel apart (module docstring, "Halves apart").

    Returns
    -------
    dict
        ``"U+", "u'+", "v'+", "w'+", "uv+"``: relative L2 errors of the profiles;
        ``"E_uu", "E_vv", "E_ww"``: log-spectral errors averaged over the default heights;
        ``"combined"``: 0.5 mean(profile errors) + 0.5 mean(spectral errors), lower is better.
        With ``halves``: ``"<profile> lower"``, ``"<profile> upper"``, ``"combined_folded"`` (the
        value above) and ``"combined"`` with each profile's worse half.

    Raises
    ------
    ValueError
        Shapes that are not slices on the same grid; non-finite values (a generator that diverged
        should be noticed, not scored); ``halves`` on a grid not symmetric about the centre.
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
    if halves:
        for which in ("lower", "upper"):
            part = compare(statistics(one_half(fake, y, which, ly), y, lz, nu=nu, u_tau=u_tau, ly=ly),
                           statistics(one_half(real, y, which, ly), y, lz, nu=nu, u_tau=u_tau, ly=ly))
            out.update({f"{k} {which}": float(v) for k, v in part["profiles"].items()})
        worse = {k: max(out[f"{k} lower"], out[f"{k} upper"]) for k in PROFILES}
        out["combined_folded"] = out["combined"]
        out["combined"] = _combined(worse, c["spectra_mean"])
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
                 rolled_prev: np.ndarray | None = None, halves: bool = False) -> dict[str, float]:
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
    halves
        As :func:`slice_metrics` (its halves-apart ``combined`` is ``combined_slices``, the folded
        one ``combined_slices_folded``).

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
    out = slice_metrics(real, fake, y, lz, nu=nu, u_tau=u_tau, ly=ly, halves=halves)
    out["combined_slices"] = out.pop("combined")
    if halves:
        out["combined_slices_folded"] = out.pop("combined_folded")
    r_real, r_fake = step_correlation(prev, real), step_correlation(prev, fake)
    for c, name in enumerate(COMPONENTS):
        out[f"R1_{name}"] = _row_rms_error(r_fake[c], r_real[c])
    out["combined"] = out["combined_slices"] + float(np.mean([out[f"R1_{c}"] for c in COMPONENTS]))
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
