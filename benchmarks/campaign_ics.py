"""The campaign runs' initial conditions: how a plan ``ic`` entry becomes ``init_field``'s source
(registered models checked by sha256, controls delivered as snapshots) and the checks that a run
starts from the IC that was registered (``campaign check``, ``ic_check.json``, amendment 6).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from campaign_plan import ROOT, read_plan


def ic_source(ic: dict[str, Any], ch: Any, work: Path) -> tuple[str, dict[str, Any]]:
    """init_field source and options of a run's IC. Collective.

    ``{"state": PATH}`` (a control: a state of the reference, ``state.npz`` format) is written as a
    3-D field file first and delivered through ``source="snapshot"``, i.e. through the same
    interpolation and enforcement as every other IC; ``{"state": PATH, "source": "phase-randomised"}``
    delivers the same state with random Fourier phases (the fair baseline with the DNS's statistics
    and spectra but not its structures).
    """
    from cfdseed._collective import run_agreed
    from cfdseed.fields import write_field
    from cfdseed.solvers.dedalus_case import read_state

    options = dict(ic.get("options") or {})
    if "model_sha256" in ic:  # a registered model: the file the runs judge must be the one registered
        model = ic.get("target_model", options.get("model"))

        def same_model() -> None:
            if ch.comm.rank == 0 and (got := model_sha256(model)) != ic["model_sha256"]:
                raise RuntimeError(f"model {model!r} has sha256 {got}, but {ic['model_sha256']} "
                                   "was registered: the runs judge the registered model only")
        run_agreed(ch.comm, same_model)
    if "target_model" in ic:  # calibrated to that model's training statistics (sem: the gan IC's target)
        options["calibrate"] = run_agreed(ch.comm, lambda: model_statistics(ic["target_model"]))
    if "state" not in ic:
        return ic["source"], options
    path = work / "control-field.h5"

    def convert() -> None:
        if ch.comm.rank == 0:
            u, meta = read_state(ROOT / ic["state"])
            write_field(path, u.astype(np.float64), ch.grid.global_grid(),
                        attrs=dict(source=f"campaign state {ic['state']}", t=meta["sim_time"]))

    run_agreed(ch.comm, convert)
    return ic.get("source", "snapshot"), dict(options, path=str(path))


def model_statistics(model: str) -> dict[str, Any]:
    """A model's stored training statistics (``StressTarget.to_dict``: a ``calibrate`` option)."""
    from cfdseed.targets import stress_target
    from cfdseed.checkpoint import model_path, read_checkpoint

    return stress_target(dict(read_checkpoint(model_path(model))["statistics"])).to_dict()


def member_entry(ic: dict[str, Any], m: int) -> dict[str, Any]:
    """Member ``m``'s ``ic`` entry of an IC (``states``: its state, one a member)."""
    entry = {k: v for k, v in ic.items() if k != "states"}
    if "states" in ic:
        entry["state"] = ic["states"][m]
    return entry


def model_sha256(model: str) -> str:
    """sha256 of the checkpoint file behind ``model`` (a packaged model's name or a path)."""
    from cfdseed.checkpoint import file_sha256

    return file_sha256(model)


#: The initial values a check records (the runner's columns at t = 0).
INITIAL = ("bulk", "bulk_w", "tau_lower", "tau_upper", "probe_u", "tke")


def initial_values(ch: Any) -> dict[str, float]:
    """The channel's :data:`INITIAL` values now (``DedalusChannel.diagnostics``). Collective."""
    d = ch.diagnostics()
    return {k: float(getattr(d, k)) for k in INITIAL}


def build_ics(items: list[tuple[dict[str, Any], int]], spec: dict[str, Any], work: Path) -> list[dict[str, Any]]:
    """Build each ``(ic entry, seed)`` on the campaign's channel as its run would (:func:`ic_source`,
    ``DedalusChannel.seed`` with its checks), without running: the initial values :data:`INITIAL`,
    or the error that stopped it (rank 0's record on every rank). Collective."""
    from mpi4py import MPI

    from cfdseed.solvers.dedalus import ChannelSpec, DedalusChannel

    comm = MPI.COMM_WORLD
    ch = DedalusChannel(ChannelSpec.from_json(spec), comm)
    work.mkdir(parents=True, exist_ok=True)
    out = []
    for entry, seed in items:
        try:  # every step agrees on errors: all ranks raise alike
            source, options = ic_source(entry, ch, work)
            ch.seed(source, options=options, seed=seed, units="source")  # the registered ICs' units
        except Exception as exc:  # noqa: BLE001 - reported, the check goes on
            out.append({"error": f"{type(exc).__name__}: {exc}"})
            continue
        out.append(initial_values(ch))
    return comm.bcast(out, root=0)  # the root's words (the others' messages name the failing rank)


def check_ics(ics: dict[str, dict[str, Any]], seeds: list[int], spec: dict[str, Any], work: Path) -> dict[str, Any]:
    """:func:`build_ics` for every IC of ``ics`` (``states``: one a member) and member seed:
    ``{name: {seed: initial values (5 decimals) or error}}``. Collective."""
    items, where = [], []
    for name, ic in ics.items():
        for m, seed in enumerate(seeds):
            items.append((member_entry(ic, m), seed))
            where.append((name, str(seed)))
    out: dict[str, Any] = {name: {} for name in ics}
    for (name, seed), row in zip(where, build_ics(items, spec, work)):
        out[name][seed] = row if "error" in row else {k: round(v, 5) for k, v in row.items()}
    return out


#: The registered ICs' initial values (``campaign check --plan``), in the campaign folder.
IC_CHECK = "ic_check.json"
#: How closely a run's IC must reproduce its registered build (relative; W_b absolute).
IC_RTOL = 1e-4


def _differs(row: dict[str, float], want: dict[str, float]) -> tuple[float, float]:
    """Largest relative difference of the initial values (W_b, near zero: absolute) and W_b's."""
    rel = max(abs(row[k] - want[k]) / max(abs(want[k]), 1e-12) for k in INITIAL if k != "bulk_w")
    return rel, abs(row["bulk_w"] - want["bulk_w"])


def same_as_registered(campaign: Path, run_id: str, built: dict[str, float]) -> bool:
    """Rank 0, before a run's first step: its IC's initial values against the committed build of
    :data:`IC_CHECK` (where that has one); raises when they differ by more than :data:`IC_RTOL`: the
    code of now no longer builds the IC that was registered, and the run must not start."""
    path = campaign / IC_CHECK
    want = json.loads(path.read_text())["runs"].get(run_id, {}).get("built", {}) if path.exists() else {}
    if not want or "error" in want:
        return False
    rel, absw = _differs(built, want)
    if rel > IC_RTOL or absw > IC_RTOL:
        raise RuntimeError(f"run {run_id}: its IC differs from the build recorded in {path} (relative "
                           f"{rel:.1e}, W_b {absw:.1e}): the code changed a registered IC; the run is not "
                           "started ('campaign check --plan' shows which)")
    return True


def check_plan(campaign: Path, work: Path, ids: list[str] | None = None, rtol: float = IC_RTOL,
               previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """Rebuild the IC of every IC and sweep run of the plan (or of ``ids``) with the code of now and
    compare it with what it was: a started run with its own record at t = 0, another with its values
    in ``previous`` (an earlier check's ``runs``, e.g. the committed one), if any. ``same`` when every
    initial value agrees to ``rtol`` (relative; W_b, near zero, absolute): a registered IC the code
    no longer reproduces is a changed IC. Each case (spec) is built on its own channel. Per run id, no
    IC names. Collective."""
    runs = [r for r in read_plan(campaign) if (r["id"] in ids if ids else r["kind"] in ("ic", "sweep"))]
    by_case: dict[str, list[dict[str, Any]]] = {}  # one channel a case (the views' cases differ)
    for r in runs:
        by_case.setdefault(json.dumps(r["spec"], sort_keys=True), []).append(r)
    pairs = []
    for case_runs in by_case.values():
        pairs += zip(case_runs, build_ics([(r["ic"], r["ic"].get("seed")) for r in case_runs], case_runs[0]["spec"], work))
    out: dict[str, Any] = {}
    for run, row in pairs:
        entry: dict[str, Any] = {"built": row}
        first = campaign / run["id"] / "chunk_000.npz"
        before = (previous or {}).get(run["id"], {}).get("built", {})
        if first.exists():
            with np.load(first) as f:
                if float(f["series/t"][0]) == 0.0:
                    entry.update(against="t = 0 record", expected={k: float(f[f"series/{k}"][0]) for k in INITIAL})
        elif before and "error" not in before:
            entry.update(against="previous check", expected=before)
        if "expected" in entry and "error" not in row:
            rel, absw = _differs(row, entry["expected"])
            entry.update(max_rel_diff=rel, bulk_w_diff=absw, same=bool(rel <= rtol and absw <= rtol))
        out[run["id"]] = entry
    return out
