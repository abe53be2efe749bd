"""The campaign's committed records: reading a run's chunk files and checking them against its
``run.json`` (amendment 16) before any analysis reads them; the profile binning a chunk stores.

A chunk file ``chunk_NNN.npz`` holds ``series/<column>`` (every runner record in the chunk's
``[t0, t1)``), ``profiles/<key>`` (plane-averaged profiles binned by :func:`bin_profiles`) and ``y``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from campaign_plan import fresh_here, is_done, lock_info, progress, read_plan


def bin_profiles(t: np.ndarray, prof: dict[str, np.ndarray], t0: float, width: float) -> dict[str, np.ndarray]:
    """Means of profile records in bins ``[t0 + k width, t0 + (k+1) width)``: ``t`` (bin centres'
    mean record time), ``n`` (records per bin) and each key ``(nbins, ny)`` float32; empty bins dropped."""
    t = np.asarray(t, dtype=np.float64)
    k = np.floor((t - t0) / width + 1e-9).astype(int)
    bins = np.unique(k)
    out: dict[str, np.ndarray] = {
        "t": np.array([t[k == b].mean() for b in bins], dtype=np.float64).reshape(-1),
        "n": np.array([(k == b).sum() for b in bins], dtype=np.int64).reshape(-1),
    }
    for key, v in prof.items():
        v = np.asarray(v)
        means = np.empty((bins.size, *v.shape[1:]), dtype=np.float32)  # (nbins, ny), also when empty
        for i, b in enumerate(bins):
            means[i] = v[k == b].mean(axis=0)
        out[key] = means
    return out


def read_chunks(campaign: Path, run_id: str) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """All committed chunks of a run joined: (time series columns, binned profiles incl. ``y``)."""
    files = sorted((campaign / run_id).glob("chunk_*.npz"))
    series: dict[str, list[np.ndarray]] = {}
    prof: dict[str, list[np.ndarray]] = {}
    y = None
    for f in files:
        with np.load(f) as z:
            for key in z.files:
                if key.startswith("series/"):
                    series.setdefault(key[7:], []).append(z[key])
                elif key.startswith("profiles/"):
                    prof.setdefault(key[9:], []).append(z[key])
                elif key == "y":
                    y = z[key]
    s = {k: np.concatenate(v) for k, v in series.items()}
    p = {k: np.concatenate(v) for k, v in prof.items()}
    if y is not None:
        p["y"] = y
    return s, p


def record_problems(campaign: Path, run: dict[str, Any], prog: dict[str, Any] | None = None,
                    end_within: float | None = None) -> list[str]:
    """Why a run's committed records are not what ``run.json`` says (empty: they are): every chunk
    it lists present as ``chunk_NNN.npz`` and no other, each with the records it counts, all of them
    inside its [t0, t1); the chunks contiguous from t = 0 to the run's t; time strictly increasing
    and the step counter non-decreasing across the whole record; every series value finite. A
    finished run's last record at most ``end_within`` before its horizon (the analysis grid's half
    step; None: not checked). Blind: no signal's value is read beyond its finiteness.

    ``read_chunks`` joins whatever files are there; a chunk lost between a worker and a commit
    would leave a gap the analysis's interpolation bridges silently, so the analysis refuses a run
    with problems."""
    prog = progress(campaign, run) if prog is None else prog
    if prog.get("failed"):
        return []  # censored by the protocol, its series are not compared
    out: list[str] = []
    rid, chunks = run["id"], prog["chunks"]
    listed = [f"chunk_{c['index']:03d}.npz" for c in chunks]
    present = sorted(f.name for f in (campaign / rid).glob("chunk_*.npz"))
    if listed != [f"chunk_{k:03d}.npz" for k in range(len(chunks))]:
        out.append(f"run.json's chunk indices are not 0..{len(chunks) - 1}")
    if present != listed:
        missing, extra = sorted(set(listed) - set(present)), sorted(set(present) - set(listed))
        out.append(f"chunk files {'missing: ' + ', '.join(missing) if missing else ''}"
                   f"{'; ' if missing and extra else ''}{'not in run.json: ' + ', '.join(extra) if extra else ''}")
        return out
    t_prev, ts, steps = 0.0, [], []
    for c, name in zip(chunks, listed):
        if abs(c["t0"] - t_prev) > 1e-9:
            out.append(f"{name} starts at t = {c['t0']:.6g}, the previous chunk ended at {t_prev:.6g}")
        t_prev = c["t1"]
        with np.load(campaign / rid / name) as z:
            cols = {k[7:]: z[k] for k in z.files if k.startswith("series/")}
        t = cols.get("t", np.empty(0))
        if t.size != c["records"]:
            out.append(f"{name} holds {t.size} records, run.json counts {c['records']}")
        if t.size and (t[0] < c["t0"] - 1e-12 or t[-1] >= c["t1"] - 1e-12):
            out.append(f"{name}: records at t = {t[0]:.6g}..{t[-1]:.6g} outside its [{c['t0']:.6g}, {c['t1']:.6g})")
        bad = sorted(k for k, v in cols.items() if not np.all(np.isfinite(v)))
        if bad:
            out.append(f"{name}: non-finite values in {', '.join(bad)}")
        ts.append(t)
        steps.append(cols.get("step", np.zeros_like(t)))
    if abs(t_prev - prog["t"]) > 1e-9:
        out.append(f"the chunks end at t = {t_prev:.6g}, run.json's t is {prog['t']:.6g}")
    t, step = np.concatenate(ts) if ts else np.empty(0), np.concatenate(steps) if steps else np.empty(0)
    if np.any(np.diff(t) <= 0):
        out.append(f"time not strictly increasing ({int(np.sum(np.diff(t) <= 0))} places)")
    if np.any(np.diff(step) < 0):
        out.append("the step counter decreases")
    if end_within is not None and is_done(run, prog) and (not t.size or t[-1] < run["horizon"] - end_within):
        last = f"{t[-1]:.6g}" if t.size else "none"
        out.append(f"last record at t = {last}, more than {end_within:g} before the horizon {run['horizon']:g}")
    return out


def committed_problems(campaign: Path, work: Path, progs: dict[str, dict[str, Any]],
                       now: float | None = None) -> list[str]:
    """:func:`record_problems` of every run with committed chunks that no live worker on this host
    is writing, as ``"id: problem"`` (``campaign status``)."""
    now = time.time() if now is None else now
    dt = json.loads((campaign / "protocol.json").read_text())["dt"]
    return [f"{r['id']}: {why}" for r in read_plan(campaign)
            if progs[r["id"]]["chunks"] and not fresh_here(lock_info(work, r["id"]), now)
            for why in record_problems(campaign, r, progs[r["id"]], end_within=dt / 2)]


def refuse_record_problems(campaign: Path, runs: Sequence[dict[str, Any]], dt: float) -> None:
    """Raise SystemExit naming every problem :func:`record_problems` finds in ``runs``, the runs an
    analysis reads (finished runs' last records within ``dt / 2`` of their horizons: the analysis
    grid's step ``dt``); runs still being written are left to ``campaign status``."""
    problems = [f"{r['id']}: {why}" for r in runs for why in record_problems(campaign, r, end_within=dt / 2)]
    if problems:
        raise SystemExit("committed records differ from their run.json (restore the files from git or the "
                         "worker's folder first):\n  " + "\n  ".join(problems))
