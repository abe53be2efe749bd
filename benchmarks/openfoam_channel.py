"""OpenFOAM's LES channel (tutorial ``channel395``, pimpleFoam, WALE) from four initial conditions.

ICs: ``plug`` (the tutorial's uniform ``0.orig/U``), ``stored`` (the tutorial's stored turbulent
field ``0/U.gz``, mapped with ``mapFields`` when the mesh is coarsened), ``gan`` (``cfdseed
openfoam --re-tau 395``: the packaged Re_tau 180 model calibrated to Lee & Moser statistics
interpolated at 395) and ``streaks`` (``cfdseed openfoam --source streaks --re-tau 395``). Every
run: same mesh, ``deltaT`` 0.2, the tutorial's ``meanVelocityForce`` holding ``Ubar`` = 0.1335, on
``--ranks`` MPI ranks (Debian's Open MPI), to ``--horizon`` h/u_tau (u_tau = 395 nu / h = 0.0079,
h/u_tau = 126.6 time units). Recorded every 10 steps: the area-averaged wall shear stress of each
wall (``wallShearStress`` + ``surfaceFieldValue``), the volume-averaged velocity, and from the
log the driving pressure gradient and the first step's continuity errors; CPU seconds of the
solver (all ranks, ``getrusage`` of the children).

Time to statistically steady state by the transient benchmark's two rules
(:func:`cfdseed.transient.detect_steady`): MSER with batches of 10 samples on the mean wall shear
and on the pressure gradient (the run is steady from the later onset; a signal still drifting over
the first half of the record censors the run: a bound, not a number), and the band rule: the
2 h/u_tau running mean of the wall shear within 10 % of the turbulent level and staying there at
least 2 h/u_tau, the level being the stored turbulent field's run averaged over t >= 5 h/u_tau
(with a constant flow rate there is no force balance to aim at: the wall shear is the output).
MSER judges stationarity only: a record that stalls at a transitional level passes it (see the
results), the band rule does not.

Usage (needs ``openfoam`` and ``openfoam-examples``; ~2 CPU-s per h/u_tau per 1000 cells)::

    .venv/bin/python benchmarks/openfoam_channel.py run [--coarsen 2] [--horizon 10] [--ics plug,stored,gan,streaks]
    .venv/bin/python benchmarks/openfoam_channel.py report

``run`` skips ICs already in the results (``--redo`` runs them again); ``report`` recomputes the
verdicts from the committed CSVs and draws ``benchmarks/results/openfoam_channel/channel.png``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TUTORIAL = Path("/usr/share/doc/openfoam-examples/examples/incompressible/pimpleFoam/LES/channel395")
OUT = ROOT / "benchmarks" / "results" / "openfoam_channel"
WORK = ROOT / "runs" / "openfoam_channel"
ICS = ("plug", "stored", "gan", "streaks")
NU, H, RE_TAU = 2e-5, 1.0, 395.0
U_TAU = RE_TAU * NU / H  # nominal; h/u_tau = 126.6
EVERY = 10  # steps between samples
DETECTOR = dict(method="mser", batch=10)

FUNCTIONS = """
functions
{
    wallShearStress
    {
        type            wallShearStress;
        libs            (fieldFunctionObjects);
        patches         (bottomWall topWall);
        executeControl  timeStep;
        executeInterval %(every)d;
        writeControl    onEnd;
    }
    tauBottom
    {
        type            surfaceFieldValue;
        libs            (fieldFunctionObjects);
        regionType      patch;
        name            bottomWall;
        operation       areaAverage;
        fields          (wallShearStress);
        writeFields     false;
        executeControl  timeStep;
        executeInterval %(every)d;
        writeControl    timeStep;
        writeInterval   %(every)d;
    }
    tauTop
    {
        $tauBottom;
        name            topWall;
    }
    bulk
    {
        type            volFieldValue;
        libs            (fieldFunctionObjects);
        regionType      all;
        operation       volAverage;
        fields          (U);
        writeFields     false;
        writeControl    timeStep;
        writeInterval   %(every)d;
    }
}
"""


def foam_env() -> dict[str, str]:
    from cfdseed.solvers.openfoam_case import _foam_env

    return dict(_foam_env(), OMP_NUM_THREADS="1", OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")


def sh(cmd: list[str], case: Path, log: str) -> None:
    with open(case / log, "w") as fh:
        proc = subprocess.run(cmd, cwd=case, env=foam_env(), stdout=fh, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed in {case}: see {case / log}")


def tutorial_copy(dest: Path, coarsen: float) -> None:
    """The tutorial with x and z cell counts divided by ``coarsen``, meshed; ``.gz`` fields unpacked."""
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(TUTORIAL, dest)
    for gz in dest.rglob("*.gz"):
        with gzip.open(gz, "rb") as src, open(gz.with_suffix(""), "wb") as dst:
            shutil.copyfileobj(src, dst)
        gz.unlink()
    bmd = dest / "system" / "blockMeshDict"
    text = bmd.read_text()
    nx, nz = round(40 / coarsen), round(30 / coarsen)
    text, n = re.subn(r"\(40 25 30\)", f"({nx} 25 {nz})", text)
    if n != 2:
        raise RuntimeError("unexpected channel395 blockMeshDict: the two blocks (40 25 30) not found")
    bmd.write_text(text)
    sh(["blockMesh"], dest, "log.blockMesh")


def prepare(ic: str, case: Path, coarsen: float, horizon: float, ranks: int, seed: int) -> float:
    """Case ``case`` ready to run from ``ic``; returns the seconds cfdseed took (0 for the others)."""
    from foamlib import FoamFile

    tutorial_copy(case, coarsen)
    stored = case / "0"
    if ic == "stored":
        if coarsen != 1:
            src = case.parent / "_full"
            if not src.exists():
                tutorial_copy(src, 1.0)
            shutil.rmtree(stored)
            shutil.copytree(case / "0.orig", stored)
            sh(["mapFields", str(src), "-consistent", "-sourceTime", "0"], case, "log.mapFields")
    else:
        shutil.rmtree(stored)
        shutil.copytree(case / "0.orig", stored)
    cd = FoamFile(case / "system" / "controlDict")
    cd["endTime"] = round(horizon * H / U_TAU / 0.2) * 0.2
    cd["writeInterval"] = 10 ** 9
    with open(case / "system" / "controlDict", "a") as fh:
        fh.write(FUNCTIONS % {"every": EVERY})
    dpd = FoamFile(case / "system" / "decomposeParDict")
    dpd["numberOfSubdomains"] = ranks
    dpd["method"] = "simple"
    dpd["coeffs"] = {"n": [ranks, 1, 1]}
    sh(["decomposePar", "-force"], case, "log.decomposePar")
    took = 0.0
    if ic in ("gan", "streaks"):
        t0 = time.perf_counter()
        cmd = [sys.executable, "-m", "cfdseed.cli", "openfoam", str(case), "--source", ic, "--re-tau", str(RE_TAU),
               "--seed", str(seed), "--layout", "decomposed"]
        with open(case / "log.cfdseed", "w") as fh:
            proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=dict(os.environ, OMP_NUM_THREADS="1"))
        if proc.returncode != 0:
            raise RuntimeError(f"cfdseed openfoam failed: see {case / 'log.cfdseed'}")
        took = time.perf_counter() - t0
    return took


def solve(case: Path, ranks: int) -> dict[str, float]:
    """pimpleFoam on ``ranks`` ranks; wall and CPU seconds (all ranks)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    sh(["mpirun", "-np", str(ranks), "--bind-to", "none", "--mca", "mpi_yield_when_idle", "1", "pimpleFoam", "-parallel"],
       case, "log.pimpleFoam")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": time.perf_counter() - t0, "cpu_s": cpu}


def _dat(path: Path) -> np.ndarray:
    rows = []
    for line in path.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        rows.append([float(v) for v in line.replace("(", " ").replace(")", " ").split()])
    return np.array(rows)


def series(case: Path) -> dict[str, np.ndarray]:
    """Time series of the run: t (h/u_tau), tau_bottom, tau_top (u_tau^2), bulk (Ubar), gradp (u_tau^2/h)."""
    pp = case / "postProcessing"
    bottom = _dat(next((pp / "tauBottom").rglob("surfaceFieldValue.dat")))
    top = _dat(next((pp / "tauTop").rglob("surfaceFieldValue.dat")))
    bulk = _dat(next((pp / "bulk").rglob("volFieldValue.dat")))
    n = min(len(bottom), len(top), len(bulk))
    g = {}  # the driving gradient of each step: its last pressure corrector's
    for block in (case / "log.pimpleFoam").read_text().split("\nTime = ")[1:]:
        found = re.findall(r"pressure gradient = ([0-9.eE+-]+)", block)
        if found:
            g[round(float(block.split("\n", 1)[0]), 6)] = float(found[-1])
    t = bottom[:n, 0]
    return {
        "t": t * U_TAU / H,
        "tau_bottom": np.abs(bottom[:n, 1]) / U_TAU**2,
        "tau_top": np.abs(top[:n, 1]) / U_TAU**2,
        "bulk": bulk[:n, 1] / 0.1335,
        "gradp": np.array([g.get(round(v, 6), np.nan) for v in t]) * H / U_TAU**2,
    }


def first_step_continuity(case: Path) -> list[float]:
    """``sum local`` of the continuity errors of the first time step (one per pressure corrector)."""
    log = (case / "log.pimpleFoam").read_text()
    first = log.split("\nTime = ", 2)[1] if "\nTime = " in log else ""
    return [float(v) for v in re.findall(r"continuity errors : sum local = ([0-9.eE+-]+)", first)]


BAND = dict(method="band", band=0.10, window=2.0, min_steady=2.0)


def level() -> float | None:
    """The turbulent wall-shear level: the stored field's run averaged over t >= 5 h/u_tau."""
    path = OUT / "stored.csv"
    if not path.exists():
        return None
    s = read_csv(path)
    tau = 0.5 * (s["tau_bottom"] + s["tau_top"])
    return float(tau[s["t"] >= 5.0].mean())


def verdict(s: dict[str, np.ndarray]) -> dict[str, object]:
    from cfdseed.transient import combine, detect_steady

    t = s["t"]
    tau = 0.5 * (s["tau_bottom"] + s["tau_top"])
    each = {"tau": detect_steady(t, tau, **DETECTOR)}
    ok = np.isfinite(s["gradp"])
    if ok.sum() > 20:
        each["gradp"] = detect_steady(t[ok], s["gradp"][ok], **DETECTOR)
    c = combine(list(each.values()))
    out = {"censored": c.censored, "onset": c.onset_time, "t_end": float(t[-1]),
           "per_signal": {k: {"censored": v.censored, "onset": v.onset_time, "reason": v.reason} for k, v in each.items()},
           "tau_final": float(np.mean(tau[t >= 0.75 * t[-1]]))}
    ref = level()
    if ref is not None:
        b = detect_steady(t, tau, target=ref, **BAND)
        out["band"] = {"level": ref, "censored": b.censored, "onset": b.onset_time, "reason": b.reason}
    return out


def write_csv(path: Path, s: dict[str, np.ndarray]) -> None:
    keys = list(s)
    np.savetxt(path, np.column_stack([s[k] for k in keys]), delimiter=",", header=",".join(keys), comments="",
               fmt="%.6g")


def read_csv(path: Path) -> dict[str, np.ndarray]:
    data = np.genfromtxt(path, delimiter=",", names=True)
    return {k: np.asarray(data[k]) for k in data.dtype.names}


def run(args: argparse.Namespace) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    results_path = OUT / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {"runs": {}}
    results["setup"] = {"coarsen": args.coarsen, "horizon_h_over_utau": args.horizon, "ranks": args.ranks,
                        "cells": round(40 / args.coarsen) * 50 * round(30 / args.coarsen), "deltaT": 0.2,
                        "sample_every_steps": EVERY, "detector": DETECTOR, "seed": args.seed}
    for ic in args.ics.split(","):
        if ic in results["runs"] and not args.redo:
            print(f"{ic}: in the results already (--redo to run again)")
            continue
        case = WORK / ic
        print(f"{ic}: preparing {case}", flush=True)
        took = prepare(ic, case, args.coarsen, args.horizon, args.ranks, args.seed)
        cost = solve(case, args.ranks)
        s = series(case)
        write_csv(OUT / f"{ic}.csv", s)
        rec = {"cfdseed_s": took, **cost, "first_step_continuity_sum_local": first_step_continuity(case),
               "verdict": verdict(s)}
        on_disk = json.loads(results_path.read_text()) if results_path.exists() else {"runs": {}}
        on_disk["runs"].update({ic: rec})  # merge: another run of this script may have written meanwhile
        on_disk["setup"] = results["setup"]
        results = on_disk
        results_path.write_text(json.dumps(results, indent=1) + "\n")
        print(f"{ic}: {json.dumps(rec)}", flush=True)
    report(args)


def report(args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = json.loads((OUT / "results.json").read_text())
    fig, ax = plt.subplots(2, 1, figsize=(8, 6.5), sharex=True)
    for ic in ICS:
        path = OUT / f"{ic}.csv"
        if not path.exists():
            continue
        s = read_csv(path)
        v = verdict(s)
        results["runs"][ic]["verdict"] = v
        tau = 0.5 * (s["tau_bottom"] + s["tau_top"])
        line, = ax[0].plot(s["t"], tau, lw=0.9, label=ic)
        ax[1].plot(s["t"], s["gradp"], lw=0.9, color=line.get_color())
        band = v.get("band", {})
        if band and not band["censored"]:
            for a in ax:
                a.axvline(band["onset"], color=line.get_color(), ls=":", lw=0.8)
        r = results["runs"][ic]
        onset = f"> {v['t_end']:.1f} (censored)" if v["censored"] else f"{v['onset']:.2f}"
        band = v.get("band", {})
        at = "n/a" if not band else (f"> {v['t_end']:.1f} (censored)" if band["censored"] else f"{band['onset']:.2f}")
        print(f"{ic:8s} MSER steady from t = {onset}, band rule (level {band.get('level', float('nan')):.3f}) from "
              f"{at} h/u_tau; tau_w (last quarter) {v['tau_final']:.3f} u_tau^2; "
              f"first-step continuity {max(r['first_step_continuity_sum_local'] or [float('nan')]):.3g}; "
              f"CPU {r['cpu_s']:.0f} s (+ cfdseed {r['cfdseed_s']:.1f} s wall)")
    ax[0].set_ylabel(r"wall shear $\tau_w / (\rho u_{\tau,395}^2)$")
    ax[1].set_ylabel(r"driving gradient $h\,G / u_{\tau,395}^2$")
    ax[1].set_xlabel(r"$t\,u_{\tau,395}/h$")
    for a in ax:
        a.set_ylim(0.0, 1.3)  # plug starts at 4.5 (a uniform profile's wall gradient)
    ref = level()
    if ref is not None:
        for f in (0.9, 1.1):
            ax[0].axhline(f * ref, color="0.6", lw=0.6, ls="--")
    ax[0].legend(ncol=4, fontsize=8)
    setup = results["setup"]
    ax[0].set_title(f"OpenFOAM channel395 (pimpleFoam WALE LES, {setup['cells']} cells, {setup['ranks']} ranks): "
                    "dotted = steady onset (band rule)", fontsize=9)
    fig.tight_layout()
    fig.savefig(OUT / "channel.png", dpi=110)
    (OUT / "results.json").write_text(json.dumps(results, indent=1) + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--coarsen", type=float, default=2.0, help="divide the tutorial's x and z cell counts (40, 30) by this")
    r.add_argument("--horizon", type=float, default=10.0, help="run length in h/u_tau")
    r.add_argument("--ranks", type=int, default=2)
    r.add_argument("--ics", default=",".join(ICS))
    r.add_argument("--seed", type=int, default=1)
    r.add_argument("--redo", action="store_true")
    r.set_defaults(fn=run)
    sub.add_parser("report").set_defaults(fn=report)
    args = p.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()
