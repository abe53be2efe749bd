"""benchmarks/noise_scale.py: the sampling studies' rule, variants and committed results."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _bench import load

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ns():
    return load("noise_scale")


def _figures(**over):
    f = {"last_two_over_median": {"u": 1.0, "v": 0.9}, "streamwise_share": 0.8, "spanwise_share": 0.85,
         "shear_inside": 0.95, "tke_worst": 0.08, "max_abs_bulk_w": 0.03, "max_abs_bulk_v": 0.05, "projection_max": 0.012}
    return f | over


def test_rule_conditions_each_decide(ns):
    base = _figures(last_two_over_median={"u": 2.3, "v": 0.7})
    assert all(ns.qualifies(_figures(), base, 24, lower_bound=True).values())
    for over, failing in ((dict(last_two_over_median={"u": 1.6, "v": 0.9}), "1_last_bins"),
                          (dict(streamwise_share=0.77), "2_shares"), (dict(spanwise_share=0.82), "2_shares"),
                          (dict(shear_inside=0.95 - 2 / 24), "3_shear"), (dict(tke_worst=0.081), "4_tke"),
                          (dict(max_abs_bulk_v=0.056), "5_cross_flow_projection"),
                          (dict(projection_max=0.0181), "5_cross_flow_projection"),
                          (dict(last_two_over_median={"u": 1.0, "v": 0.49}), "6_last_bins_not_emptied")):
        cond = ns.qualifies(_figures(**over), base, 24, lower_bound=True)
        assert [k for k, v in cond.items() if not v] == [failing], over
    assert "6_last_bins_not_emptied" not in ns.qualifies(_figures(), base, 24, lower_bound=False)
    assert ns.qualifies(_figures(shear_inside=0.95 - 1 / 24), base, 24, lower_bound=False)["3_shear"]  # one fewer


def test_variants_differ_from_the_model_in_their_finest_map_only(ns, tmp_path):
    from cfdseed import load_generator
    from cfdseed.checkpoint import read_checkpoint

    base = read_checkpoint(ns.variant_checkpoint(ns.BASE, "noise_band", None, tmp_path / "a.pt"))
    band = ns.variant_checkpoint(ns.BASE, "noise_band", 12, tmp_path / "b.pt")
    h = load_generator(band, device="cpu")
    assert h.noise_band == (None, None, None, 12) and h.noise_scale == (1.0,) * 4
    ck = read_checkpoint(band)
    assert ck["statistics"] == base["statistics"] and ck["metadata"] == base["metadata"]
    assert load_generator(ns.variant_checkpoint(ns.BASE, "noise_scale", 0.5, tmp_path / "c.pt"),
                          device="cpu").noise_scale == (1.0, 1.0, 1.0, 0.5)


def test_a_study_measures_chooses_and_confirms(ns, monkeypatch):
    """A study on one selection and one confirmation seed: the figures per value, each candidate's
    conditions, and the choice only where every condition holds."""
    monkeypatch.setitem(ns.STUDIES, "band", dict(ns.STUDIES["band"], values=(None, 12), seeds=[1], confirm=[2]))
    res = ns.study("band")
    assert set(res["per_value"]) == {"None", "12"} and res["seeds"] == [1]
    cond = res["per_value"]["12"]["conditions"]
    assert len(cond) == 6 and (res["chosen"] == 12) == all(cond.values())
    assert ("confirmation" in res) == (res["chosen"] is not None)


@pytest.mark.parametrize(("selection", "confirmation", "adopted"),
                         [(True, True, 12), (True, False, None), (False, None, None)])
def test_a_study_adopts_only_a_confirmed_choice(ns, monkeypatch, selection, confirmation, adopted):
    """The rule forced (ns.qualifies all true or all false, on the selection and the confirmation
    seeds): a qualifying K is chosen and measured again on the confirmation seeds against the trained
    generator, and adopted only when confirmed; none qualifying, nothing is confirmed or adopted."""
    seen = []

    def rule(f, base, fields, lower_bound):
        seen.append(fields)
        ok = selection if len(seen) == 1 else confirmation  # study: the candidate, then the confirmation
        return {"1_last_bins": ok, "6_last_bins_not_emptied": ok}

    measured = []
    measure = ns.measure
    monkeypatch.setattr(ns, "measure", lambda *a: measured.append(a[1:3]) or measure(*a))
    monkeypatch.setattr(ns, "qualifies", rule)
    monkeypatch.setitem(ns.STUDIES, "band", dict(ns.STUDIES["band"], values=(None, 12), seeds=[1], confirm=[2]))
    res = ns.study("band")
    assert res["chosen"] == (12 if selection else None)
    assert res["adopted"] == adopted
    if selection:
        assert seen == [1, 1] and measured == [((None, 12), [1]), ((None, 12), [2])]
        conf = res["confirmation"]
        assert conf["seeds"] == [2] and set(conf["per_value"]) == {"None", "12"}
        assert conf["confirmed"] is confirmation and all(v is confirmation for v in conf["conditions"].values())
    else:
        assert seen == [1] and measured == [((None, 12), [1])] and "confirmation" not in res


@pytest.mark.parametrize("name", ["scale", "band"])
def test_committed_results_follow_their_rule(ns, name):
    """The committed studies: every candidate's conditions are the rule's on its stored figures, and
    the choice is the largest candidate meeting them all (none for both, so the packaged models
    sample as trained)."""
    s = ns.STUDIES[name]
    res = json.loads((ROOT / "benchmarks" / "results" / s["out"]).read_text())
    assert res["values"] == list(s["values"]) and res["seeds"] == s["seeds"]
    assert s["values"][0] == ns.TRAINED[s["key"]]  # the trained generator first
    base = res["per_value"][str(ns.TRAINED[s["key"]])]
    ok = []
    for v in s["values"][1:]:
        row = res["per_value"][str(v)]
        assert row["conditions"] == ns.qualifies(row, base, len(s["seeds"]), name == "band")
        if all(row["conditions"].values()):
            ok.append(v)
    assert res["chosen"] == (max(ok) if ok else None) and res["adopted"] is None
    from cfdseed.checkpoint import model_summary, packaged_models

    assert all(model_summary(m)["sampling"] is None for m in packaged_models())
