"""How the default conditional generator samples its finest noise map: two sweeps with fixed rules.

The packaged v2 generator's raw fields carry 2-3x the real median's energy in the last two
spanwise bins of u (model card, "Known limits"). A diagnostic on 6 seeds (2026-12-06) traced it to
the finest of its four noise maps (full resolution, i.i.d. in z): zeroed, the last-bin excess went.
Each study measures the raw-field targets (``field_physics.model_targets``, no enforcement) of
checkpoint variants that differ from the trained generator only in their ``sampling`` entry
(:class:`cfdseed.conditional.ConditionalHandle`), against the generator as trained on the same
seeds, and picks a variant by its rule, each written before its sweep ran.

**Study "scale"** (``sampling.noise_scale``: the finest map's draw times a factor; 1, 0.8, 0.7,
0.6, 0.5, 0.4; seeds 1-24). A factor qualifies when, against the generator as trained:

1. every one of the six spanwise spectra (u, v, w at y+ 15 and the centre) has its median over
   fields of the last-two-bins ratio at most 1.5 (issue 13's target);
2. the shares of streamwise and of spanwise spectral bins inside the real band each drop by at most
   0.02;
3. the fields with both walls' -uv inside the band are at most one fewer;
4. the largest |TKE / real median - 1| over the fields is not larger;
5. max |W_b| and max |V_b| are at most 1.1x, the largest share of TKE the projection removes at
   most 1.5x the factor-1 values.

The largest qualifying factor is chosen (the least change); none qualifying, the generator stays as
trained. Result (``results/noise_scale.json``): **none qualified**. Scaling the finest map down
cures the last bins (0.5: all six at most 1.45) but the fields grow too smooth along x: the
streamwise share inside the band falls from 0.816 to 0.767-0.799 (0.8 kept it, 0.799, but left u at
the centre at 1.96).

**Study "band"** (``sampling.noise_band``: the finest map's draw keeps its spanwise Fourier modes
up to K, rescaled to the draw's variance, so the innovation keeps its strength and loses only its
finest spanwise scales; K = 14, 13, 12, 11, 10 of the 32-point map's 16). An 8-seed diagnostic
(same day, before this rule) gave at K = 12 last-bin ratios 0.16-0.85 with both band shares kept or
better, at K = 8 the energetic spanwise bins out of the band: filtering can over-suppress, so this
rule adds a lower bound. A K qualifies when conditions 1-5 hold and

6. every one of the six medians of the last-two-bins ratio is at least 0.5 (real snapshots score
   0.8-0.9: the smallest scales neither too energetic nor emptied);

on the selection seeds 1-24, choosing the largest qualifying K (the least change); and the chosen K
is confirmed when conditions 1-6 hold again on fresh seeds 25-48 (against the trained generator on
those seeds). Not confirmed or none qualifying: the generator stays as trained.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/noise_scale.py --study band [--out JSON]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import field_physics as fp  # noqa: E402

BASE = "default-re180-v2.1"
#: the ``sampling`` value of a noise map as trained, per key
TRAINED = {"noise_scale": 1.0, "noise_band": None}
#: per study: the finest map's candidate settings (the trained generator first), the seeds
STUDIES: dict[str, dict[str, Any]] = {
    "scale": {"key": "noise_scale", "values": (1.0, 0.8, 0.7, 0.6, 0.5, 0.4),
              "seeds": list(range(1, 25)), "confirm": None, "out": "noise_scale.json"},
    "band": {"key": "noise_band", "values": (None, 14, 13, 12, 11, 10),
             "seeds": list(range(1, 25)), "confirm": list(range(25, 49)), "out": "noise_band.json"},
}
LAST_BINS_MAX, LAST_BINS_MIN, SHARE_DROP, SHEAR_FEWER, CROSS_FLOW, PROJECTION = 1.5, 0.5, 0.02, 1, 1.1, 1.5


def variant_checkpoint(base: str, key: str, value: Any, dest: Path) -> Path:
    """``base`` with the finest noise map's ``sampling[key]`` set to ``value`` (every other map as
    trained), at ``dest``."""
    from cfdseed.checkpoint import model_path, read_checkpoint, save_checkpoint
    from cfdseed.conditional import latent_layout

    ck = read_checkpoint(model_path(base))
    ck.pop("sha256", None)
    maps = len(latent_layout(ck["arch"])[1])
    ck["sampling"] = {key: [TRAINED[key]] * (maps - 1) + [value]}
    save_checkpoint(dest, ck)
    return dest


def figures(summary: dict[str, Any]) -> dict[str, Any]:
    """The rules' figures of one ``model_targets`` summary."""
    return {
        "last_two_over_median": summary["spanwise_last_two_over_median_median"],
        "streamwise_share": summary["streamwise_spectra_share_inside"],
        "spanwise_share": summary["spanwise_spectra_share_inside"],
        "shear_inside": summary["shear_inside"],
        "tke_worst": max(abs(v) for v in summary["tke_vs_median"]),
        "tke_vs_median": summary["tke_vs_median"],
        "max_abs_bulk_w": summary["max_abs_bulk_w"],
        "max_abs_bulk_v": summary["max_abs_bulk_v"],
        "projection_max": summary["projection_removed_over_tke"][1],
    }


def qualifies(f: dict[str, Any], base: dict[str, Any], fields: int, lower_bound: bool) -> dict[str, bool]:
    """The rule's conditions (1-5; 6 with ``lower_bound``) for figures ``f`` against the trained
    generator's ``base`` on the same ``fields`` seeds."""
    out = {
        "1_last_bins": max(f["last_two_over_median"].values()) <= LAST_BINS_MAX,
        "2_shares": (f["streamwise_share"] >= base["streamwise_share"] - SHARE_DROP
                     and f["spanwise_share"] >= base["spanwise_share"] - SHARE_DROP),
        "3_shear": round(f["shear_inside"] * fields) >= round(base["shear_inside"] * fields) - SHEAR_FEWER,
        "4_tke": f["tke_worst"] <= base["tke_worst"],
        "5_cross_flow_projection": (f["max_abs_bulk_w"] <= CROSS_FLOW * base["max_abs_bulk_w"]
                                    and f["max_abs_bulk_v"] <= CROSS_FLOW * base["max_abs_bulk_v"]
                                    and f["projection_max"] <= PROJECTION * base["projection_max"]),
    }
    if lower_bound:
        out["6_last_bins_not_emptied"] = min(f["last_two_over_median"].values()) >= LAST_BINS_MIN
    return out


def measure(key: str, values: tuple[Any, ...], seeds: list[int], base: str = BASE) -> dict[str, Any]:
    """Raw-field figures per finest-map setting ``values`` of ``sampling[key]`` on ``seeds``."""
    band = json.loads(fp.BANDS.read_text())
    rows: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for v in values:
            path = variant_checkpoint(base, key, v, Path(tmp) / f"variant_{v}.pt")
            rows[str(v)] = figures(fp.model_targets(str(path), seeds, band, delivered=False)["summary"])
            print(f"finest {key} {v}: " + json.dumps(rows[str(v)]), flush=True)
    return rows


def study(name: str, base: str = BASE) -> dict[str, Any]:
    """One study by its rule (module docstring): the figures, each candidate's conditions, the choice
    and, where the study has confirmation seeds, the confirmation."""
    s = STUDIES[name]
    key, lower = s["key"], name == "band"
    trained = TRAINED[key]
    rows = measure(key, s["values"], s["seeds"], base)
    for v in s["values"][1:]:
        rows[str(v)]["conditions"] = qualifies(rows[str(v)], rows[str(trained)], len(s["seeds"]), lower)
    ok = [v for v in s["values"][1:] if all(rows[str(v)]["conditions"].values())]
    chosen = max(ok) if ok else None
    out = {"study": name, "base": base, "key": key, "seeds": s["seeds"], "values": list(s["values"]),
           "per_value": rows, "chosen": chosen,
           "command": f"OMP_NUM_THREADS=1 .venv/bin/python benchmarks/noise_scale.py --study {name}"}
    if s["confirm"] is not None and chosen is not None:
        conf = measure(key, (trained, chosen), s["confirm"], base)
        cond = qualifies(conf[str(chosen)], conf[str(trained)], len(s["confirm"]), lower)
        out["confirmation"] = {"seeds": s["confirm"], "per_value": conf, "conditions": cond,
                               "confirmed": all(cond.values())}
    out["adopted"] = chosen if chosen is not None and out.get("confirmation", {}).get("confirmed", True) else None
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--study", choices=sorted(STUDIES), required=True)
    ap.add_argument("--out", default=None, help="default benchmarks/results/<the study's file>")
    a = ap.parse_args(argv)
    res = study(a.study)
    out = Path(a.out) if a.out else HERE / "results" / STUDIES[a.study]["out"]
    out.write_text(json.dumps(res, indent=1, default=float) + "\n")
    print(f"chosen on the selection seeds: {res['chosen']}; adopted: {res['adopted']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
