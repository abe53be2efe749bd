"""Is the delivered field turbulence in equilibrium? Bands of real snapshots, and fields against them.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/field_physics.py bands [--runs runs/campaign/ref]
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/field_physics.py measure [--seeds 1 2 3 4 5 6]
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/field_physics.py model [--model CKPT] [--out JSON]
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/field_physics.py real [--times 60 90 ...]
    .venv/bin/python benchmarks/field_physics.py figure --models v1=JSON v2=JSON --out PNG

``bands`` reads the transient campaign's stationary reference run (Dedalus, Re_tau 180,
pi x 2 x pi/2, 32 x 64 x 32; every x-plane of y-z slices every 200 steps, i.e. full 3-D snapshots,
kept on the machine in ``runs/campaign/ref/seg*/slices_*.h5``), keeps the snapshots after the
spin-up (t >= 40 h/u_tau, the protocol's discard) and writes the 5 / 50 / 95 % points of every
statistic over them to ``benchmarks/results/reference_bands.json`` (committed; a few kB):
profiles per y (U, u', v', w', uv, both halves) and scalars (volume TKE, TKE and -uv integral
per wall, their wall-to-wall differences, the momentum-balance residual, W_b, V_b), in wall units.

``measure`` builds fields on that grid (spectral operators, as the Dedalus adapter gives them)
and on the README's main-job grid (64 x 65 x 48 Chebyshev with wall points, central operators)
from the packaged model: raw (before enforcement), projected only (today's enforcement without
calibration) and delivered (with the default calibration); reports their figures, which band
statistics they fall inside, and the enforcement report. Writes ``benchmarks/results/field_physics.json``.

``model`` scores a generator's raw fields on issue 13's per-field targets (:func:`model_targets`),
``real`` scores real snapshots by the same figures, ``figure`` draws the raw fields of several
generators against the band (the model card's ``fields.png``).
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import platform
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
BANDS = HERE / "results" / "reference_bands.json"
OUT = HERE / "results" / "field_physics.json"
RE_TAU, LY = 180.0, 2.0  # the reference's units: h = 1, u_tau = 1, nu = 1 / 180
SCALARS = ("tke", "tke_lower", "tke_upper", "shear_stress_lower", "shear_stress_upper", "tke_asymmetry",
           "shear_asymmetry", "balance_residual_max", "bulk_w", "bulk_v")
PROFILES = ("U", "u'", "v'", "w'", "uv")
#: Statistics whose ideal is 0 (a residual, an asymmetry, a mean cross-flow): judged by |value| <=
#: the band's largest |end|, since an equilibrium field may lie below the band of real snapshots.
ONE_SIDED = ("tke_asymmetry", "shear_asymmetry", "balance_residual_max", "bulk_w", "bulk_v")


def field_statistics(f: np.ndarray, y: np.ndarray, ly: float = LY, re_tau: float = RE_TAU) -> dict:
    """Profiles per y and scalars of one field ``(3, nx, ny, nz)`` in wall units (u_tau = 1)."""
    from cfdseed.stats import balance_figures

    h = 0.5 * ly
    mean = f.mean(axis=(1, 3))  # (3, ny)
    fl = f - mean[:, None, :, None]
    rms = np.sqrt((fl**2).mean(axis=(1, 3)))
    uv = (fl[0] * fl[1]).mean(axis=(0, 2))
    b = balance_figures(f[None], y, ly, h / re_tau, 1.0)
    tke = 0.5 * (rms**2).sum(axis=0)
    yw = np.concatenate([[0.0], y, [ly]])
    scalars = {
        "tke": float(np.trapezoid(np.concatenate([[0.0], tke, [0.0]]), yw) / ly),
        "tke_lower": b["tke_lower"], "tke_upper": b["tke_upper"],
        "shear_stress_lower": b["shear_stress_lower"], "shear_stress_upper": b["shear_stress_upper"],
        "tke_asymmetry": b["tke_lower"] - b["tke_upper"],
        "shear_asymmetry": b["shear_stress_lower"] - b["shear_stress_upper"],
        "balance_residual_max": b["balance_residual_max"], "bulk_w": b["bulk_w"], "bulk_v": b["bulk_v"],
    }
    profiles = {"U": mean[0], "u'": rms[0], "v'": rms[1], "w'": rms[2], "uv": uv}
    return {"profiles": profiles, "scalars": scalars, "spectra": _spectra(fl, y, ly, re_tau)}


#: Wall distances (y+) of the delivered field's rms check in :func:`model_targets` (both walls averaged).
DELIVERED_YPLUS = (5.0, 10.0, 16.0)

#: Heights of the spectra (issue 13's targets): y+ = 15 and the centre; both halves averaged.
SPECTRA_HEIGHTS = {"y+15": 15.0, "centre": None}


def _rows(y: np.ndarray, ly: float, re_tau: float, yplus: float | None) -> list[int]:
    """The row nearest ``yplus`` in each half (the centre row(s) for None)."""
    d = np.minimum(y, ly - y) / (0.5 * ly) * re_tau
    if yplus is None:
        return [int(np.argmax(d))] if np.sum(d == d.max()) == 1 else list(np.flatnonzero(d == d.max()))
    lo, hi = y <= 0.5 * ly, y > 0.5 * ly
    return [int(np.flatnonzero(lo)[np.argmin(np.abs(d[lo] - yplus))]), int(np.flatnonzero(hi)[np.argmin(np.abs(d[hi] - yplus))])]


def _spectra(fl: np.ndarray, y: np.ndarray, ly: float, re_tau: float) -> dict:
    """Streamwise spectra E_ii(k_x) (fraction of the variance per mode, z-averaged) and premultiplied
    spanwise spectra k_z E_ii(k_z) (x-averaged) of u, v, w at :data:`SPECTRA_HEIGHTS`."""
    nx, nz = fl.shape[1], fl.shape[3]
    out = {}
    for name, yp in SPECTRA_HEIGHTS.items():
        rows = _rows(y, ly, re_tau, yp)
        sub = fl[:, :, rows, :]  # (3, nx, r, nz)
        ex = (np.abs(np.fft.rfft(sub, axis=1)) ** 2).mean(axis=(2, 3))[:, 1:] / nx**2  # (3, nx//2): k_x >= 1
        ez = (np.abs(np.fft.rfft(sub, axis=3)) ** 2).mean(axis=(1, 2))[:, 1:] / nz**2
        kz = np.arange(1, ez.shape[1] + 1)
        for c, comp in enumerate("uvw"):
            out[f"Ex_{comp}_{name}"] = ex[c]
            out[f"kzEz_{comp}_{name}"] = kz * ez[c]
    return out


def _snapshots(runs: str, after: float, keep=None):
    """Yield (t, field (3, nx, ny, nz), y, lengths) for every complete snapshot after ``after``
    (only those whose time ``keep(t)`` accepts, when given: the others are not read)."""
    import h5py

    for path in sorted(glob.glob(os.path.join(runs, "seg*", "slices_*.h5"))):
        try:
            fh = h5py.File(path, "r")
        except OSError:  # the file the running segment is writing: locked, skip it
            continue
        with fh:
            t, x = fh["t"][:], fh["x"][:]
            y = fh["y"][:]
            lz = float(fh.attrs["lz"])
            for tk in np.unique(t):
                if tk < after or (keep is not None and not keep(tk)):
                    continue
                idx = np.flatnonzero(t == tk)
                idx = idx[np.argsort(x[idx])]
                nx = idx.size
                if nx < 2:
                    continue
                planes = fh["fields"][np.sort(idx)]  # (nx, 3, ny, nz), x order
                order = np.argsort(x[np.sort(idx)])
                f = np.moveaxis(planes[order].astype(np.float64), 0, 1)  # (3, nx, ny, nz)
                yield float(tk), f, y, (float(nx * (x[idx][1] - x[idx][0])), LY, lz)


def bands(runs: str, after: float) -> dict:
    stats, times = [], []
    grid = None
    for t, f, y, lengths in _snapshots(runs, after):
        stats.append(field_statistics(f, y))
        times.append(t)
        grid = {"shape": list(f.shape[1:]), "lengths": list(lengths), "y": "chebyshev-cc (Gauss)"}
    if not stats:
        raise SystemExit(f"no snapshots after t = {after} under {runs}")
    q = (5, 50, 95)
    out = {
        "about": "5/50/95 % points over real snapshots of the campaign's stationary reference run "
                 "(Dedalus Re_tau 180, pi x 2 x pi/2, 32 x 64 x 32), wall units; benchmarks/field_physics.py bands",
        "grid": grid, "n_snapshots": len(stats), "t_range": [min(times), max(times)],
        "snapshot_spacing": float(np.median(np.diff(sorted(times)))) if len(times) > 1 else None,
        "y": stats[0]["profiles"]["U"].size,
        "profiles": {}, "scalars": {},
    }
    for name in PROFILES:
        arr = np.stack([s["profiles"][name] for s in stats])  # (N, ny)
        out["profiles"][name] = {f"p{k:02d}": np.percentile(arr, k, axis=0).round(6).tolist() for k in q}
    for name in SCALARS:
        arr = np.array([s["scalars"][name] for s in stats])
        out["scalars"][name] = {f"p{k:02d}": float(np.percentile(arr, k)) for k in q}
    out["spectra"] = {}
    for name in stats[0]["spectra"]:
        arr = np.stack([s["spectra"][name] for s in stats])
        out["spectra"][name] = {f"p{k:02d}": np.percentile(arr, k, axis=0).tolist() for k in q}
    out["lx"] = grid["lengths"][0] if grid else None
    return out


def inside(stat: dict, band: dict) -> dict:
    """Which statistics of one field lie inside the band: per profile the share of y points and the
    largest excursion beyond the band (in band widths); per scalar in/out and the value
    (:data:`ONE_SIDED` ones by their size)."""
    res = {"profiles": {}, "scalars": {}}
    for name in PROFILES:
        v = np.asarray(stat["profiles"][name])
        lo, mid, hi = (np.asarray(band["profiles"][name][k]) for k in ("p05", "p50", "p95"))
        width = np.maximum(hi - lo, 1e-12)
        excess = np.maximum(lo - v, 0) + np.maximum(v - hi, 0)
        res["profiles"][name] = {"share_inside": float(np.mean(excess == 0)),
                                 "worst_excess_in_widths": float((excess / width).max()),
                                 "worst_index": int(np.argmax(excess / width))}
    for name in SCALARS:
        v = float(stat["scalars"][name])
        b = band["scalars"][name]
        if name in ONE_SIDED:  # ideal 0: a field may be better than real snapshots, not worse
            limit = max(abs(b["p05"]), abs(b["p95"])) if name != "balance_residual_max" else b["p95"]
            res["scalars"][name] = {"value": v, "band": [-limit, limit], "inside": abs(v) <= limit}
        else:
            res["scalars"][name] = {"value": v, "band": [b["p05"], b["p95"]], "inside": b["p05"] <= v <= b["p95"]}
    return res


def _campaign_grid():
    from cfdseed.grid import Grid

    return Grid((32, 64, 32), (math.pi, LY, math.pi / 2), y="chebyshev-cc", operators="spectral")


def _main_grid():
    from cfdseed.grid import Grid

    return Grid((64, 65, 48), (4 * math.pi, LY, 4 * math.pi / 3), y="chebyshev")


def measure(seeds: list[int]) -> dict:
    from cfdseed.sources import resolve

    band = json.loads(BANDS.read_text()) if BANDS.exists() else None
    out: dict = {"seeds": seeds, "band_file": str(BANDS.relative_to(HERE.parent)) if band else None, "cases": {}}
    variants = {
        "raw": {"no_slip": False, "divergence_free": False},
        "projected": {"calibrate": False},
        "delivered": {},
    }
    for gname, make in (("campaign", _campaign_grid), ("main-job", _main_grid)):
        grid = make()
        for vname, opts in variants.items():
            rows = []
            for seed in seeds:
                t0 = time.perf_counter()
                built = resolve("gan", {"re_tau": RE_TAU, **opts}).build(grid, np.random.default_rng(seed))
                st = field_statistics(built.field, grid.y)
                row = {"seed": seed, "seconds": time.perf_counter() - t0, "scalars": st["scalars"]}
                if band is not None and gname == "campaign":
                    row["band"] = inside(st, band)
                enf = built.info.enforcement
                if enf is not None:
                    row["enforcement"] = enf.to_dict()
                rows.append(row)
            out["cases"][f"{gname}/{vname}"] = rows
    out["machine"] = {"platform": platform.platform(), "cpus": os.cpu_count()}
    return out


def _target_row(f: np.ndarray, grid, band: dict) -> dict:
    """Issue 13's per-field figures of one raw field ``(3, nx, ny, nz)`` on ``grid`` (:func:`model_targets`)."""
    from cfdseed.enforce import _project

    lx = grid.lengths[0]
    st = field_statistics(f, grid.y)
    g = f.copy()
    _project(g, grid)
    removed = 0.5 * float(((f - g) ** 2).mean())
    row = {"tke": st["scalars"]["tke"], "tke_vs_median": st["scalars"]["tke"] / band["scalars"]["tke"]["p50"] - 1.0,
           "shear_stress_lower": st["scalars"]["shear_stress_lower"],
           "shear_stress_upper": st["scalars"]["shear_stress_upper"],
           "bulk_w": st["scalars"]["bulk_w"], "bulk_v": st["scalars"]["bulk_v"],
           "projection_removed_over_tke": removed / st["scalars"]["tke"], "spectra": {}}
    for k in ("shear_stress_lower", "shear_stress_upper"):
        b = band["scalars"][k]
        row[f"{k}_inside"] = b["p05"] <= row[k] <= b["p95"]
    for name, v in st["spectra"].items():
        lo, mid, hi = (np.asarray(band["spectra"][name][q]) for q in ("p05", "p50", "p95"))
        v = np.asarray(v)
        if name.startswith("Ex"):
            kh = 2 * np.pi * np.arange(1, v.size + 1) / lx  # k_x h, h = 1
            sel = kh <= 8
        else:
            sel = mid > 0.1 * mid.max()
        inside = (v >= lo) & (v <= hi)
        # the DNS's last bins hold next to nothing (dealiased): measured against 1e-3 of its peak at least
        row["spectra"][name] = {"share_inside": float(inside[sel].mean()),
                                "last_two_over_median": float((v[-2:] / np.maximum(mid[-2:], 1e-3 * mid.max())).max())}
    row["_curves"] = {"profiles": st["profiles"], "spectra": st["spectra"]}
    return row


def _median_curves(rows: list[dict]) -> dict:
    """Pop the rows' raw curves (:func:`_target_row`); their median over the fields, per y / per bin."""
    curves = [r.pop("_curves") for r in rows]
    return {part: {k: np.median([c[part][k] for c in curves], axis=0).tolist() for k in curves[0][part]}
            for part in ("profiles", "spectra")}


def _summary(rows: list[dict]) -> dict:
    spec = [r["spectra"] for r in rows]
    out = {
        "tke_vs_median": [float(min(r["tke_vs_median"] for r in rows)), float(max(r["tke_vs_median"] for r in rows))],
        "shear_inside": float(np.mean([r["shear_stress_lower_inside"] and r["shear_stress_upper_inside"] for r in rows])),
        "max_abs_bulk_w": float(max(abs(r["bulk_w"]) for r in rows)),
        "max_abs_bulk_v": float(max(abs(r["bulk_v"]) for r in rows)),
        "projection_removed_over_tke": [float(min(r["projection_removed_over_tke"] for r in rows)),
                                        float(max(r["projection_removed_over_tke"] for r in rows))],
        "streamwise_spectra_share_inside": float(np.mean([v["share_inside"] for s in spec for k, v in s.items() if k.startswith("Ex")])),
        "spanwise_spectra_share_inside": float(np.mean([v["share_inside"] for s in spec for k, v in s.items() if k.startswith("kz")])),
        "spanwise_last_two_over_median_max": float(max(v["last_two_over_median"] for s in spec for k, v in s.items() if k.startswith("kz"))),
        # per spanwise spectrum, the median over fields: a systematic excess, not one field's scatter
        "spanwise_last_two_over_median_median": {
            k: float(np.median([s[k]["last_two_over_median"] for s in spec])) for k in spec[0] if k.startswith("kz")},
    }
    delivered = [r for r in rows if r.get("delivered_rms_over_median")]
    if delivered:
        out["delivered_rms_over_median"] = {k: [float(min(r["delivered_rms_over_median"][k] for r in delivered)),
                                                float(max(r["delivered_rms_over_median"][k] for r in delivered))]
                                            for k in delivered[0]["delivered_rms_over_median"]}
        tke = np.array([r["delivered_tke"] for r in delivered])
        out["delivered_tke"] = {"min": float(tke.min()), "mean": float(tke.mean()), "max": float(tke.max()),
                                "stderr": float(tke.std(ddof=1) / math.sqrt(tke.size)) if tke.size > 1 else None}
    redrawn = {str(r["seed"]): r["delivered_redraws"] for r in rows if r.get("delivered_redraws")}
    if redrawn:
        out["delivery_redraws"] = redrawn
    if any("delivery_failed" in r for r in rows):
        out["delivery_failures"] = {str(r["seed"]): r["delivery_failed"] for r in rows if "delivery_failed" in r}
    return out


def model_targets(model: str | None, seeds: list[int], band: dict, delivered: bool = True) -> dict:
    """Issue 13's targets for a generator's fields *before any enforcement* on the campaign grid.

    Per seed: volume TKE against the real snapshots' median (target within 5 %), -uv per wall inside
    the band, |W_b|, |V_b| (target <= 0.002 u_tau), the energy the divergence-free projection
    removes over the TKE (target <= 5 %), streamwise spectra of u, v, w at y+ 15 and the centre for
    k_x h <= 8 inside the band (share of bins), premultiplied spanwise spectra over the energetic
    bins (> 10 % of the peak) inside the band, and no bin of the last two above 1.5x the median.
    And the *delivered* field (full enforcement, the default calibration) of the same seed: u', v',
    w' at y+ 5, 10, 16 over the real snapshots' median and its volume TKE (calibration mixing that the projection
    then removes shows here as a near-wall v' deficit); a seed whose first field the calibration
    cannot reach is redrawn (``gan``'s ``redraws``; counted in ``delivered_redraws``, summary
    ``delivery_redraws``), a seed whose delivery still raises :class:`~cfdseed.errors.SourceError` is
    recorded (``delivery_failed``, summary ``delivery_failures``), not fatal; ``delivered=False``
    skips the delivered fields. ``median``: the raw fields' profiles and spectra, median over
    seeds. :func:`real_targets` scores real snapshots by the same figures (what the per-field
    targets allow a real field).
    """
    from unittest import mock

    from cfdseed.enforce import EnforceReport
    from cfdseed.errors import SourceError
    from cfdseed.sources import resolve

    grid = _campaign_grid()
    rows = []
    for seed in seeds:
        opts = {"re_tau": RE_TAU, "no_slip": False, "divergence_free": False, "calibrate": None}
        if model:
            opts["model"] = model
        # before *any* enforcement: the synthesis's enforce call hands back the raw field
        with mock.patch("cfdseed.synthesis.enforce", lambda f, g, **kw: (f, EnforceReport())):
            f = resolve("gan", opts).build(grid, np.random.default_rng(seed)).field
        row = {"seed": seed, **_target_row(f, grid, band)}
        if not delivered:
            rows.append(row)
            continue
        # delivered (full enforcement, the default calibration): rms near the wall over the real median
        try:
            built = resolve("gan", {k: v for k, v in opts.items() if k in ("re_tau", "model")}).build(
                grid, np.random.default_rng(seed))
            fd = built.field
        except SourceError as exc:  # e.g. a field the stress calibration cannot reach: a finding, not a crash
            row["delivery_failed"] = str(exc)
            rows.append(row)
            continue
        st = field_statistics(fd, grid.y)
        prof = st["profiles"]
        row["delivered_tke"] = float(st["scalars"]["tke"])
        row["delivered_redraws"] = int(built.info.synthesis.redraws)  # fields the calibration could not reach
        row["delivered_rms_over_median"] = {
            f"{c}_y+{yp:g}": float(np.mean(prof[c][_rows(grid.y, LY, RE_TAU, yp)])
                                   / np.mean(np.asarray(band["profiles"][c]["p50"])[_rows(grid.y, LY, RE_TAU, yp)]))
            for c in ("u'", "v'", "w'") for yp in DELIVERED_YPLUS}
        rows.append(row)
    median = _median_curves(rows)
    return {"model": model or "packaged default", "seeds": seeds, "summary": _summary(rows), "median": median,
            "rows": rows}


def real_targets(runs: str, times: list[float], band: dict) -> dict:
    """:func:`model_targets`' raw-field figures for the reference's snapshots nearest ``times``
    (the band's own members: what a real field scores on the per-field targets)."""
    grid = _campaign_grid()
    want = sorted(times)
    rows, seen = [], set()

    def near(t: float) -> float:
        return min(want, key=lambda w: abs(w - t))

    for t, f, y, _ in _snapshots(runs, min(want) - 1.0, keep=lambda t: abs(near(t) - t) < 0.5):
        if near(t) not in seen:
            seen.add(near(t))
            rows.append({"t": t, **_target_row(f, grid, band)})
    if not rows:
        raise SystemExit(f"no snapshots near {want} in {runs}")
    median = _median_curves(rows)
    return {"model": f"real snapshots of {runs}", "times": [r["t"] for r in rows], "summary": _summary(rows),
            "median": median, "rows": rows}


def _table(res: dict) -> str:
    lines = [f"{'case':<22} {'TKE':>6} {'TKE lo/hi':>13} {'-uv lo/hi':>13} {'bal.res':>8} {'W_b':>9}  in band"]
    for case, rows in res["cases"].items():
        s = {k: np.mean([r["scalars"][k] for r in rows]) for k in SCALARS}
        band = ""
        if rows and "band" in rows[0]:
            n_in = np.mean([sum(v["inside"] for v in r["band"]["scalars"].values()) for r in rows])
            prof = np.mean([np.mean([p["share_inside"] for p in r["band"]["profiles"].values()]) for r in rows])
            band = f"{n_in:.1f}/{len(SCALARS)} scalars, {100 * prof:.0f} % of profile points"
        lines.append(f"{case:<22} {s['tke']:6.3f} {s['tke_lower']:6.3f}/{s['tke_upper']:6.3f} "
                     f"{s['shear_stress_lower']:6.3f}/{s['shear_stress_upper']:6.3f} {s['balance_residual_max']:8.3f} "
                     f"{s['bulk_w']:9.1e}  {band}")
    return "\n".join(lines)


def figure(path: Path, models: dict[str, dict], band: dict) -> None:
    """Raw fields of several generators against the real snapshots' band (5-95 % shaded, median
    black): rms and uv profiles over y+ (lower half), premultiplied spanwise spectra of u, v, w at
    y+ 15 and the centre (Nyquist bin left out); each model's median over its seeds (``models``: label -> :func:`model_targets` JSON)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    y = _campaign_grid().y  # the band's rows (its "y" is their count)
    half = y <= 0.5 * LY
    yp = y[half] / (0.5 * LY) * RE_TAU
    fig = Figure(figsize=(12, 10), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(3, 3)
    colours = ["tab:blue", "tab:red", "tab:green", "tab:purple"]

    def panel(ax, x, key, part, sel, scale=1.0):
        b = band[part][key]
        ax.fill_between(x, scale * np.asarray(b["p05"])[sel], scale * np.asarray(b["p95"])[sel], color="0.85",
                        label="real 5-95 %")
        ax.plot(x, scale * np.asarray(b["p50"])[sel], "k", lw=1.5, label="real median")
        for (label, res), c in zip(models.items(), colours):
            ax.plot(x, scale * np.asarray(res["median"][part][key])[sel], color=c, lw=1.2, label=label)

    for ax, key, scale, title in ((axes[0, 0], "u'", 1.0, "u'+"), (axes[0, 1], "v'", 1.0, "v'+ (w'+ dashed)"),
                                  (axes[0, 2], "uv", -1.0, "-uv+")):
        panel(ax, yp, key, "profiles", half, scale)
        ax.set_xscale("log")
        ax.set_xlabel("y+")
        ax.set_title(title)
    for (label, res), c in zip(models.items(), colours):
        axes[0, 1].plot(yp, np.asarray(res["median"]["profiles"]["w'"])[half], color=c, ls="--", lw=1.0)
    axes[0, 1].plot(yp, np.asarray(band["profiles"]["w'"]["p50"])[half], "k--", lw=1.0)
    for row, height in ((1, "y+15"), (2, "centre")):
        for col, comp in enumerate("uvw"):
            key = f"kzEz_{comp}_{height}"
            kz = np.arange(1, len(band["spectra"][key]["p50"]))
            ax = axes[row, col]
            panel(ax, kz, key, "spectra", slice(0, -1))  # without the Nyquist bin: the solver holds it at zero
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("k_z index (k_z = 4 n / h)")
            ax.set_title(f"k_z E_{comp}{comp}(k_z), {height}")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle("Raw generated fields (before enforcement) vs real snapshots of the reference; model curves: "
                 "median over seeds", fontsize=10)
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("bands")
    b.add_argument("--runs", default=str(HERE.parent / "runs" / "campaign" / "ref"))
    b.add_argument("--after", type=float, default=40.0)
    m = sub.add_parser("measure")
    m.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5, 6])
    t = sub.add_parser("model", help="issue 13's targets for a generator's unenforced fields")
    t.add_argument("--model", default=None, help="checkpoint (default: the packaged model)")
    t.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5, 6])
    t.add_argument("--out", default=None)
    r = sub.add_parser("real", help="the same figures for real snapshots (what the per-field targets allow)")
    r.add_argument("--runs", default=str(HERE.parent / "runs" / "campaign" / "ref"))
    r.add_argument("--times", type=float, nargs="+", default=[60.0, 90.0, 120.0, 150.0, 180.0, 210.0])
    r.add_argument("--out", default=str(HERE / "results" / "model_targets_real.json"))
    fg = sub.add_parser("figure", help="raw fields of several generators against the band (model JSONs of `model`)")
    fg.add_argument("--models", nargs="+", required=True, metavar="LABEL=JSON")
    fg.add_argument("--out", required=True)
    a = ap.parse_args()
    if a.cmd == "figure":
        models = {m.split("=", 1)[0]: json.loads(Path(m.split("=", 1)[1]).read_text()) for m in a.models}
        figure(Path(a.out), models, json.loads(BANDS.read_text()))
        print(a.out)
    elif a.cmd == "bands":
        res = bands(a.runs, a.after)
        BANDS.write_text(json.dumps(res, indent=1) + "\n")
        s = res["scalars"]
        print(f"{res['n_snapshots']} snapshots, t = {res['t_range'][0]:.1f}..{res['t_range'][1]:.1f}: "
              + ", ".join(f"{k} [{v['p05']:.3g}, {v['p95']:.3g}]" for k, v in s.items()))
    elif a.cmd == "real":
        res = real_targets(a.runs, a.times, json.loads(BANDS.read_text()))
        out = Path(a.out)
        out.write_text(json.dumps(res, indent=1, default=float) + "\n")
        print(json.dumps(res["summary"], indent=1))
    elif a.cmd == "model":
        res = model_targets(a.model, a.seeds, json.loads(BANDS.read_text()))
        from cfdseed.checkpoint import DEFAULT_NAME

        name = Path(a.model).stem if a.model else DEFAULT_NAME
        out = Path(a.out) if a.out else HERE / "results" / f"model_targets_{name}.json"
        out.write_text(json.dumps(res, indent=1, default=float) + "\n")
        print(json.dumps(res["summary"], indent=1))
    else:
        res = measure(a.seeds)
        OUT.write_text(json.dumps(res, indent=1, default=float) + "\n")
        print(_table(res))


if __name__ == "__main__":
    main()
