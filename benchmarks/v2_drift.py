"""Rollout drift of conditional (v2) checkpoints (issue 13): does a chain of generated planes keep
the turbulence's energy?

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/v2_drift.py --data runs/v2data/all.h5 \
        LABEL=CKPT [LABEL=CKPT ...] [--steps 31 62 124] [--planes 128] [--anchor RATE]

From ``--planes`` validation planes of the slice file (drawn with seed 0 among the last 20 % of its
snapshot times, the trainer's ``split = "last"`` part), every checkpoint rolls each plane forward
``steps`` times (fixed latents, seed 1; :meth:`cfdseed.conditional.ConditionalHandle.rollout` from
``start`` = the planes, keeping the last plane) and the volume-averaged TKE of the planes reached
is divided by the real planes' (1: no drift; 31 steps of the campaign's plane spacing are the
synthesis burn-in, 6 half-heights); the u-v correlation coefficient of the same planes at y⁺ 5,
10, 15, 40 and the centre (both walls, the upper one's sign turned) is set against the real
planes' (the near-wall -uv a chain must keep). It also measures how fast a chain forgets: the correlation
per component between planes ``lag`` steps apart (``--lags``; over y, z and pairs) of 16 chains
as the synthesis runs them (default start, burn-in, ``--anchor``; seed 1), against the same
correlation in the validation snapshots' x-planes (each snapshot a periodic ring). Writes
``benchmarks/results/v2_drift.json`` (``--out``) and prints one line per checkpoint.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import h5py
import numpy as np

OUT = Path(__file__).resolve().parent / "results" / "v2_drift.json"


def validation_planes(path: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` planes from the last 20 % of the file's snapshot times (seed 0) and the file's y."""
    with h5py.File(path) as f:
        t, y = f["t"][:], f["y"][:]
        times = np.unique(t)
        late = times[times >= times.min() + 0.8 * (times.max() - times.min())]
        pick = np.sort(np.random.default_rng(0).choice(np.flatnonzero(np.isin(t, late)), n, replace=False))
        return f["fields"][pick], y


#: Wall distances (wall units) at which uv_profile reports the u-v correlation; inf: the centre.
UV_YPLUS = (5.0, 10.0, 15.0, 40.0, float("inf"))


def uv_profile(planes: np.ndarray, y: np.ndarray, re_tau: float) -> list[float]:
    """The u-v correlation coefficient of ``planes`` ``(N, 3, ny, nz)`` at the rows nearest
    :data:`UV_YPLUS` from each wall (``y`` in half-heights, walls at its ends), the upper wall's
    sign turned (-uv > 0 on both sides means the same sign), averaged over the two walls."""
    from cfdseed.metrics import _uv_correlation

    rho = _uv_correlation(planes)
    d = (1.0 - np.abs(np.asarray(y) - 0.5 * (y[0] + y[-1])) / (0.5 * (y[-1] - y[0]))) * re_tau  # y+ from the nearer wall
    lower = np.arange(len(y)) < len(y) / 2
    out = []
    for yp in UV_YPLUS:
        target = min(yp, d.max())
        lo = np.flatnonzero(lower)[np.argmin(np.abs(d[lower] - target))]
        hi = np.flatnonzero(~lower)[np.argmin(np.abs(d[~lower] - target))]
        out.append(float(0.5 * (rho[lo] - rho[hi])))
    return out


def rolled_stats(ckpt: str, planes: np.ndarray, y: np.ndarray, steps: list[int],
                 anchor: float | None = None) -> tuple[list[float], list[list[float]], list[float]]:
    """TKE of the planes ``steps`` generated steps on from ``planes`` over the planes' own, their
    :func:`uv_profile` per step count, and the real planes' :func:`uv_profile`."""
    from cfdseed.metrics import _plane_tke
    from cfdseed.model import load_generator

    h = load_generator(ckpt, device="cpu")
    real = _plane_tke(planes, y)
    tke, uv = [], []
    for k in steps:
        rolled = h.rollout(1, chains=planes.shape[0], rng=1, burn_in=k - 1, start=planes, anchor=anchor)[:, 0]
        ok = np.isfinite(rolled).all()
        tke.append(float(_plane_tke(rolled, y) / real) if ok else float("inf"))
        uv.append(uv_profile(rolled, y, h.re_tau) if ok else [float("nan")] * len(UV_YPLUS))
    return tke, uv, uv_profile(planes, y, h.re_tau)


def _lag_corr(a: np.ndarray, b: np.ndarray) -> list[float]:
    """Correlation per component of fluctuations ``a``, ``b`` ``(..., 3, ny, nz)`` (axis -3)."""
    axes = tuple(i for i in range(a.ndim) if i != a.ndim - 3)
    return ((a * b).sum(axis=axes) / np.sqrt((a * a).sum(axis=axes) * (b * b).sum(axis=axes))).tolist()


def data_lag_correlations(path: str, lags: list[int]) -> dict[str, list[float]]:
    """Plane-to-plane correlations at ``lags`` in the last 20 % of the file's snapshots (periodic rings)."""
    with h5py.File(path) as f:
        t = f["t"][:]
        times = np.unique(t)
        late = times[times >= times.min() + 0.8 * (times.max() - times.min())]
        idx = np.flatnonzero(np.isin(t, late))
        fields, x = f["fields"][idx[0] : idx[-1] + 1].astype(np.float64), f["x"][idx[0] : idx[-1] + 1]
    nx = np.unique(x).size
    rings = fields.reshape(-1, nx, *fields.shape[1:])[:, np.argsort(x[:nx])]  # (snapshots, nx, 3, ny, nz)
    fl = rings - rings.mean(axis=(0, 1, 4), keepdims=True)
    return {str(k): _lag_corr(fl, np.roll(fl, k, axis=1)) for k in lags}


def chain_lag_correlations(ckpt: str, lags: list[int], anchor: float | None) -> dict[str, list[float]]:
    """The same correlations along 16 chains of the synthesis's rollout (default start and burn-in)."""
    from cfdseed.model import load_generator

    c = load_generator(ckpt, device="cpu").rollout(2 * max(lags), chains=16, rng=1, anchor=anchor).astype(np.float64)
    fl = c - c.mean(axis=(0, 1, 4), keepdims=True)
    return {str(k): _lag_corr(fl[:, :-k], fl[:, k:]) for k in lags}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoints", nargs="+", help="LABEL=PATH of conditional checkpoints")
    ap.add_argument("--data", required=True, help="slice file with /t and /x (the training data)")
    ap.add_argument("--steps", type=int, nargs="+", default=[31, 62, 124])
    ap.add_argument("--planes", type=int, default=128)
    ap.add_argument("--anchor", type=float, default=None, help="rollout anchor rate (ConditionalHandle.rollout)")
    ap.add_argument("--lags", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()
    planes, y = validation_planes(args.data, args.planes)
    rows = {}
    for spec in args.checkpoints:
        label, _, path = spec.partition("=")
        tke, uv, uv_real = rolled_stats(path, planes, y, args.steps, args.anchor)
        rows[label] = {"checkpoint": path, "anchor": args.anchor, "tke_ratio": dict(zip(map(str, args.steps), tke)),
                       "uv_corr": dict(zip(map(str, args.steps), uv)), "uv_corr_real": uv_real}
        rows[label]["lag_corr"] = chain_lag_correlations(path, args.lags, args.anchor)
        print(f"{label:24s} TKE ratio after " + ", ".join(f"{k}: {v:.3g}" for k, v in rows[label]["tke_ratio"].items())
              + " steps; u, v, w correlation at lags " + _lags(rows[label]["lag_corr"]), flush=True)
        print(f"{'':24s} u-v correlation at y+ " + "/".join(f"{p:g}" for p in UV_YPLUS) + ": real "
              + _row(uv_real) + "; after " + "; ".join(f"{k}: " + _row(v) for k, v in rows[label]["uv_corr"].items()))
    data_corr = data_lag_correlations(args.data, args.lags)
    print(f"{'data':24s} u, v, w correlation at lags " + _lags(data_corr))
    Path(args.out).write_text(json.dumps({"data": args.data, "planes": args.planes, "steps": args.steps,
                                          "uv_yplus": [str(p) for p in UV_YPLUS],
                                          "lags": args.lags, "data_lag_corr": data_corr, "runs": rows,
                                          "how": "benchmarks/v2_drift.py (docstring)"}, indent=1) + "\n")


def _row(values: list[float]) -> str:
    return "/".join(f"{v:.2f}" for v in values)


def _lags(corr: dict[str, list[float]]) -> str:
    return "; ".join(f"{k}: " + _row(v) for k, v in corr.items())


if __name__ == "__main__":
    main()
