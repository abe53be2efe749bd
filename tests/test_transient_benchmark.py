"""benchmarks/transient.py without a solver: wall-clock stitching, the verdict per run, the
reductions (censored baselines give lower bounds, a censored GAN none), the JSON and the report.
The solver side runs in tests/dedalus/test_transient_smoke.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from _bench import load

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tb():
    return load("transient")


CASE = dict(detector=dict(method="mser", batch=5), signals=("tau", "bulk", "centre_u"),
            band=dict(method="band", target=1.0, band=0.05, window=1.0, min_steady=1.0))


def series(onset: float, t_end: float, *, restart_at: float | None = None, dt: float = 0.01, seed: int = 0):
    """tau relaxing from 1.5 to 1 by ``onset``, the bulk velocity from 16.5 to 15.7 by ``onset / 2``,
    a steady centre-line velocity, all noisy; wall clock 2 s per unit time."""
    rng = np.random.default_rng(seed)
    t = np.arange(0.0, t_end, dt)
    tau = np.where(t < onset, 1.0 + 0.5 * (1 - t / onset), 1.0) + 0.005 * rng.standard_normal(t.size)
    bulk = np.where(t < onset / 2, 15.7 + 0.8 * (1 - 2 * t / onset), 15.7) + 0.01 * rng.standard_normal(t.size)
    wall = 2.0 * t
    if restart_at is not None:
        wall = np.where(t >= restart_at, 2.0 * (t - restart_at), wall)
    return {"t": t, "tau_lower": tau, "tau_upper": tau, "centre_u": 18 + 0.05 * rng.standard_normal(t.size),
            "bulk": bulk, "step": np.arange(t.size) * 10.0, "wall_s": wall}


def test_cumulative_wall_stitches_segments(tb):
    np.testing.assert_allclose(tb.cumulative_wall(np.array([0, 1, 2, 0.5, 1.5, 0.2])), [0, 1, 2, 2.5, 3.5, 3.7])
    np.testing.assert_allclose(tb.cumulative_wall(np.array([0.0, 3.0])), [0.0, 3.0])


def test_summarise_finds_onset_and_accounts_costs(tb):
    s = series(onset=3.0, t_end=8.0, restart_at=5.0)
    r = tb.summarise(s, CASE, ranks=2, ic_wall=4.0)
    assert not r["censored"]
    sig = {k: v["onset_time"] for k, v in r["signals"].items()}
    assert 2.7 < sig["tau"] < 3.5 and 1.2 < sig["bulk"] < 2.0 and sig["centre_u"] < 0.5
    assert r["onset_time"] == max(sig.values())  # the latest signal decides
    assert 3.0 < r["band_rule"]["onset_time"] < 4.2  # causal: the end of the first window inside the band
    k = int(np.searchsorted(s["t"], r["onset_time"]))
    assert abs(r["onset_steps"] - 10 * k) <= 10
    assert r["onset_cpu_s"] == pytest.approx(2 * (2 * r["onset_time"] + 4.0), rel=1e-2)
    assert r["wall_end_s"] == pytest.approx(2 * s["t"][-1] + 4.0, abs=0.05)  # restart stitched (one record gap)
    assert r["cpu_end_s"] == pytest.approx(2 * r["wall_end_s"])


def test_summarise_censors_drifting_and_short_series(tb):
    r = tb.summarise(series(onset=20.0, t_end=8.0), CASE, ranks=2, ic_wall=0.0)
    assert r["censored"] and r["onset_time"] is None and r["t_end"] == pytest.approx(7.99)
    assert r["signals"]["tau"]["censored"] and r["signals"]["bulk"]["censored"] and r["band_rule"]["censored"]
    assert "onset_steps" not in r
    r = tb.summarise(series(onset=0.5, t_end=0.05), CASE, ranks=2, ic_wall=0.0)
    assert r["censored"] and "too short" in r["reason"] and "shorter" in r["band_rule"]["reason"]
    assert not tb.judgeable([0.0, 1.5], CASE["band"]) and tb.judgeable([0.0, 2.5], CASE["band"])


def test_steady_control_is_steady_at_once(tb):
    r = tb.summarise(series(onset=1e-9, t_end=8.0, seed=3), CASE, ranks=2, ic_wall=0.0)
    assert not r["censored"] and r["onset_time"] < 0.5


def rec(tb, ic, seed, onset, t_end=12.0, case="re180"):
    s = series(onset=onset, t_end=t_end, seed=seed)
    return dict(case=case, ic=ic, seed=seed, detector=dict(CASE["detector"], signals=list(CASE["signals"])),
                band=CASE["band"], **tb.summarise(s, CASE, 2, 0.0), series=tb.downsample(s))


def test_reductions_targets_and_bounds(tb):
    recs = [rec(tb, "gan", 0, 1.0), rec(tb, "gan", 1, 1.4), rec(tb, "trig", 0, 4.0),
            rec(tb, "plug", 0, 50.0), rec(tb, "snapshot", 0, 0.5), rec(tb, "gan", 0, 9.0, case="other")]
    red = tb.reductions(recs)
    g = red["time_to_steady"]["gan"]["onset_time"]
    assert g["value"] == pytest.approx(np.mean([r["onset_time"] for r in recs[:2]])) and not g["lower_bound"]
    assert red["time_to_steady"]["gan"]["seeds"] == [0, 1]
    trig = red["gan_reduction"]["trig"]["onset_time"]
    assert trig["value"] == pytest.approx(1 - g["value"] / recs[2]["onset_time"])
    assert not trig["at_least"] and trig["target"] == 0.5 and trig["meets_target"] == (trig["value"] >= 0.5)
    plug = red["gan_reduction"]["plug"]["onset_time"]  # plug never steady: a lower bound on the reduction
    assert plug["at_least"] and plug["value"] == pytest.approx(1 - g["value"] / recs[3]["t_end"])
    snap = red["gan_vs_snapshot"]["onset_time"]
    assert snap["ratio"] == pytest.approx(g["value"] / recs[4]["onset_time"])
    assert snap["meets_target"] == (snap["ratio"] <= 1.5)
    assert snap["lag"] == pytest.approx(g["value"] - recs[4]["onset_time"])
    assert "streaks" not in red["gan_reduction"]
    per_seed = red["gan_reduction_by_seed"]
    assert set(per_seed) == {"0", "1"}
    assert per_seed["1"]["trig"]["onset_time"]["value"] == pytest.approx(1 - recs[1]["onset_time"] / recs[2]["onset_time"])
    assert per_seed["0"]["plug"]["onset_steps"]["at_least"]
    # charged the control's onset where the snapshot is slower than the GAN (its floor)
    floor = red["gan_reduction_at_control"]["trig"]["onset_time"]
    assert floor["value"] == pytest.approx(1 - max(g["value"], recs[4]["onset_time"]) / recs[2]["onset_time"])
    slow_snap = tb.reductions([rec(tb, "gan", 0, 1.0), rec(tb, "trig", 0, 6.0), rec(tb, "snapshot", 0, 3.0)])
    ts = slow_snap["time_to_steady"]
    fl = slow_snap["gan_reduction_at_control"]["trig"]["onset_time"]["value"]
    assert fl == pytest.approx(1 - ts["snapshot"]["onset_time"]["value"] / ts["trig"]["onset_time"]["value"])
    assert fl < slow_snap["gan_reduction"]["trig"]["onset_time"]["value"]
    snap0 = dict(rec(tb, "snapshot", 3, 1e-9), onset_time=0.0, onset_steps=0, onset_cpu_s=0.0)  # steady at once
    at_once = tb.reductions([rec(tb, "gan", 0, 3.0), snap0])
    lag = at_once["gan_vs_snapshot"]["onset_time"]
    assert lag["ratio"] is None and lag["lag"] == at_once["time_to_steady"]["gan"]["onset_time"]["value"]
    none = tb.reductions([rec(tb, "gan", 0, 50.0), rec(tb, "trig", 0, 2.0)])
    assert none["gan_reduction"]["trig"]["onset_time"]["value"] is None  # censored GAN: no claim
    assert none["gan_reduction_at_control"] == {}  # no control run: no floor
    assert none["gan_reduction_by_seed"]["0"]["trig"]["onset_time"]["value"] is None


def test_json_upsert_and_report(tb, tmp_path, capsys):
    path = tmp_path / "t.json"
    recs = []
    for r in (rec(tb, "gan", 0, 1.0), rec(tb, "trig", 0, 4.0), rec(tb, "plug", 0, 50.0)):
        recs = tb.upsert(recs, r)
    recs = tb.upsert(recs, rec(tb, "gan", 0, 2.0))  # a re-run replaces its record
    assert len(recs) == 3
    tb.write_records(recs, path)
    doc = json.loads(path.read_text())
    assert [r["ic"] for r in doc["runs"]] == ["plug", "trig", "gan"] and "reproduce" in doc
    assert doc["summary"]["re180"]["gan_reduction"]["plug"]["onset_time"]["at_least"] is True
    assert tb.read_records(path) == json.loads(json.dumps(doc["runs"]))
    fig = tmp_path / "t.png"
    assert tb.main(["report", "--results", str(path), "--figure", str(fig)]) == 0
    out = capsys.readouterr().out
    assert "GAN vs trig" in out and "at least" in out and "censored" in out
    assert fig.stat().st_size > 10_000
    assert "GAN seed 0: vs trig time" in out and "GAN censored" not in out
    tb.write_records(tb.upsert(recs, rec(tb, "gan", 1, 50.0)), path)  # a second seed never steady
    assert tb.main(["report", "--results", str(path), "--no-figure"]) == 0
    out = capsys.readouterr().out
    assert "GAN censored in seed(s) 1" in out and "GAN vs trig    : time n/a" in out
    assert tb.main(["report", "--results", str(tmp_path / "none.json"), "--no-figure"]) == 1


def test_ic_sources(tb, tmp_path):
    assert tb.ic_source("gan", tmp_path) == ("gan", {"bulk": tb.BULK})
    assert tb.ic_source("snapshot", tmp_path / "f.h5") == ("snapshot", {"path": str(tmp_path / "f.h5")})
    with pytest.raises(ValueError, match="unknown IC"):
        tb.ic_source("laminar", tmp_path)
