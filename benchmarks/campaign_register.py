"""Registering the campaign's blinded IC ensembles into the plan: opaque run ids and group labels,
the protocol's IC tables per tier, the trig amplitude sweep and its selection, the flow-rate view
behind its validation gate (``campaign register`` / ``select``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from campaign_analysis import sweep_scores, validate_reference
from campaign_ics import member_entry, model_sha256
from campaign_plan import ROOT


#: Settings every IC run shares (the reference's case; no slices, no snapshots).
IC_RUN = dict(kind="ic", chunk=4.0, series_every=20, checkpoint_every=2000, profile_bin=0.5)


def register(campaign: Path, tier: str, ics: dict[str, dict[str, Any]], members: int,
             seed: int, *, kind: str = "ic", seeds: list[int] | None = None,
             horizon: float | None = None, interleave: bool = False, reference: str = "ref",
             before_tier: str | None = None) -> dict[str, str]:
    """Add a tier's IC ensembles to the plan, blinded; returns the new key ``{group: IC name}``.

    ``ics`` maps an IC name to its ``ic`` entry (``source``/``options`` or, for controls,
    ``states``: a list of state files, one a member). Every run gets an opaque id and its
    ensemble an opaque group label (drawn with ``seed``); the runs are ordered member by member,
    shuffled within a member, so a tier stopped part-way leaves ensembles of equal size; appended
    to the plan, or with ``interleave`` each new member's run right after that member's runs of the
    same tier (an ensemble joining a registered tier: trig-turbulent after the sweep). The key
    (group -> IC name, tier) is merged into ``key.json``, which the analysis reads only to join
    names to finished onsets (``campaign_report.join``). ``kind``,
    ``seeds`` and ``horizon``: the runs' kind (the analysis judges ``"ic"`` runs only), member
    seeds and horizon (default the protocol's); ``reference``: the reference run whose case (spec)
    the runs share; ``before_tier``: the runs go before that tier's first run after the reference
    (refused if there is none; without it, appended).
    """
    plan_path, key_path = campaign / "plan.json", campaign / "key.json"
    plan = json.loads(plan_path.read_text())
    ref = next(r for r in plan["runs"] if r["kind"] == "reference" and r["id"] == reference)
    protocol = json.loads((campaign / "protocol.json").read_text())
    seeds = protocol["member_seeds"][:members] if seeds is None else list(seeds)
    if len(seeds) < members:
        raise SystemExit(f"the protocol lists {len(protocol['member_seeds'])} member seeds, not {members}")
    key = json.loads(key_path.read_text()) if key_path.exists() else {}
    if any(v["tier"] == tier and v["ic"] in ics for v in key.values()):
        raise SystemExit(f"tier {tier!r} already registers some of {sorted(ics)}: an ensemble is run once")
    rng = np.random.default_rng(seed)
    taken = {r["id"] for r in plan["runs"]} | set(key)
    def label(prefix: str) -> str:
        while (s := prefix + "".join(rng.choice(list("0123456789abcdef"), 6))) in taken:
            pass
        taken.add(s)
        return s
    for name, ic in ics.items():
        if "states" in ic and len(ic["states"]) < members:
            raise SystemExit(f"{name}: {len(ic['states'])} states for {members} members")
    groups = {name: label("g") for name in ics}
    batches = []
    for m, member_seed in enumerate(seeds):
        batch = []
        for name, ic in ics.items():
            entry = dict(member_entry(ic, m), seed=member_seed)
            batch.append(dict(id=label("r"), group=groups[name], tier=tier,
                              horizon=protocol["horizon"] if horizon is None else horizon,
                              spec=ref["spec"], ic=entry, **dict(IC_RUN, kind=kind)))
        batches.append([batch[j] for j in rng.permutation(len(batch))])
    new = [r for b in batches for r in b]
    after = plan["runs"].index(ref) + 1  # a tier's runs follow their reference
    at = next((i for i, r in enumerate(plan["runs"][after:], after) if r.get("tier") == before_tier),
              None) if before_tier else None
    if before_tier and at is None:
        raise SystemExit(f"the plan has no run of tier {before_tier!r} after {reference!r} to place the runs before")
    if interleave:
        plan["runs"] = _insert_members(plan["runs"], tier, seeds, batches)
    elif at is not None:
        plan["runs"] = plan["runs"][:at] + new + plan["runs"][at:]
    else:
        plan["runs"] = plan["runs"] + new
    plan_path.write_text(json.dumps(plan, indent=1) + "\n")
    key.update({g: dict(ic=name, tier=tier, members=members) for name, g in groups.items()})
    key_path.write_text(json.dumps(key, indent=1) + "\n")
    return {g: name for name, g in groups.items()}


def _insert_members(runs: list[dict[str, Any]], tier: str, seeds: list[int],
                    batches: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """``runs`` with member ``m``'s new ``batches[m]`` right after the tier's last run of seed
    ``seeds[m]``; members the tier has no run of are appended, in member order."""
    out, tail = list(runs), []
    for member_seed, batch in zip(seeds, batches):
        at = [i for i, r in enumerate(out) if r.get("tier") == tier and r["ic"].get("seed") == member_seed]
        if at:
            out[at[-1] + 1:at[-1] + 1] = batch
        else:
            tail += batch
    return out + tail


def registration_seed(campaign: Path) -> int:
    """The label seed of the next registration: the protocol's seed + 2 + the groups registered so
    far (the first registration's seed unchanged), so that two registrations never draw the same labels."""
    key_path = campaign / "key.json"
    registered = len(json.loads(key_path.read_text())) if key_path.exists() else 0
    return int(json.loads((campaign / "protocol.json").read_text())["seed"]) + 2 + registered


#: The protocol's IC tables, by tier (``protocol.json``).
TIER_ICS = {"confirmatory": "confirmatory_ics", "fair": "fair_ics", "exploratory": "exploratory_ics",
            "flow_rate": "flow_rate"}


def tier_table(protocol: dict[str, Any], tier: str) -> dict[str, Any] | None:
    """A tier's IC table of the protocol (the flow-rate view's in its own block, amendment 9)."""
    table = protocol.get(TIER_ICS.get(tier, ""))
    return table["ics"] if tier == "flow_rate" and table is not None else table


def tier_reference(protocol: dict[str, Any], tier: str) -> str:
    """The reference run a tier's runs share the case of and take their states from."""
    return protocol["flow_rate"]["reference"]["id"] if tier == "flow_rate" else "ref"


def tier_ics(campaign: Path, tier: str, names: list[str], model: str | None = None) -> dict[str, dict[str, Any]]:
    """The protocol's ICs ``names`` of ``tier`` as plan ``ic`` entries. Controls and
    phase-randomised: the reference's snapshots in time order, one a member; ``gan``: ``model``
    (a packaged model's name or a repository path) with its file's sha256, which every run checks
    before it builds its IC (every IC of source ``gan``: the exploratory ``gan-v2.1`` too); ``sem``: calibrated to that model's training statistics (the gan IC's
    target; sha256 checked alike). ``trig-turbulent`` is registered by :func:`select_amplitude`."""
    protocol = json.loads((campaign / "protocol.json").read_text())
    table = tier_table(protocol, tier)
    if table is None:
        raise SystemExit(f"tier {tier!r} has no IC table in the protocol (tiers: {', '.join(TIER_ICS)})")
    out = {}
    for name in names:
        if name not in table:
            raise SystemExit(f"{name!r} is not a {tier} IC of the protocol ({', '.join(table)})")
        ic = table[name]
        if "amplitude" in ic:
            raise SystemExit(f"{name}: its amplitude is the sweep's choice: 'campaign select' registers it")
        if ic["source"] in ("gan", "sem"):
            if model is None:
                raise SystemExit(f"{name} is registered with the GAN's model (--model NAME): its sha256 goes "
                                 "into the plan, and into its own amendment")
            entry = dict(source=ic["source"], options=dict(ic["options"]), model_sha256=model_sha256(model))
            if ic.get("model_sha256", entry["model_sha256"]) != entry["model_sha256"]:
                raise SystemExit(f"{name}: the protocol registered model sha256 {ic['model_sha256']}; "
                                 f"{model!r} has {entry['model_sha256']}")
            if ic["source"] == "gan":
                entry["options"]["model"] = model
            else:
                entry["target_model"] = model
            out[name] = entry
            continue
        if "states" in ic:
            snaps = sorted((campaign / tier_reference(protocol, tier) / "snapshots").glob("t*.npz"))
            out[name] = dict(states=[str(p.relative_to(ROOT)) for p in snaps])
            if ic["source"] != "snapshot":
                out[name]["source"] = ic["source"]
            if "options" in ic:
                out[name]["options"] = dict(ic["options"])
        else:
            out[name] = dict(source=ic["source"], options=dict(ic["options"]))
    return out


def register_flow_rate(campaign: Path, names: list[str], members: int, model: str | None) -> dict[str, str]:
    """Register the flow-rate view's IC runs (amendment 9): only once its reference is done and
    passes the validation gate (:func:`validate_reference`), with the view's ensemble size, case and
    horizon, before the first run after the reference of the tier the protocol's ``ic_runs_before``
    names (amendment 20: the fair tier; amendment 9's place, the exploratory runs, without it)."""
    protocol = json.loads((campaign / "protocol.json").read_text())
    fr = protocol["flow_rate"]
    if members != fr["members"]:
        raise SystemExit(f"the flow-rate view registered N = {fr['members']}, not {members}")
    ref_id = fr["reference"]["id"]
    gate = validate_reference(campaign, ref_id)
    if not gate["complete"] or not gate["passed"]:
        raise SystemExit(f"{ref_id} is {'not done' if not gate['complete'] else 'done but fails the gate'}: "
                         f"Re_tau {gate['re_tau']:.1f}, U+ L2 {gate['u_plus_rel_l2']:.4f}, peak u'+ "
                         f"{gate['peak_u_rel_err']:.4f} ({gate['checks']}); the view's IC runs are not registered")
    return register(campaign, "flow_rate", tier_ics(campaign, "flow_rate", names, model), members,
                    registration_seed(campaign), horizon=fr["horizon"], reference=ref_id,
                    before_tier=fr.get("ic_runs_before", "exploratory"))


def sweep_ics(campaign: Path) -> tuple[dict[str, dict[str, Any]], list[int]]:
    """The protocol's ``trig_sweep`` as plan ``ic`` entries (one an amplitude) and its seeds."""
    protocol = json.loads((campaign / "protocol.json").read_text())
    sw = protocol["trig_sweep"]
    base = protocol["fair_ics"][sw["ic"]]
    return ({f"{sw['ic']} a={a:g}": dict(source=base["source"], options=dict(base["options"], amplitude=a))
             for a in sw["amplitudes"]}, list(sw["seeds"]))


def register_sweep(campaign: Path) -> dict[str, str]:
    """Register the protocol's ``trig_sweep``: one group an amplitude, its seeds, its horizon, runs of
    kind ``"sweep"`` (exploratory, never judged by the rule; the key names each amplitude)."""
    ics, seeds = sweep_ics(campaign)
    horizon = json.loads((campaign / "protocol.json").read_text())["trig_sweep"]["horizon"]
    return register(campaign, "sweep", ics, len(seeds), registration_seed(campaign), kind="sweep",
                    seeds=seeds, horizon=horizon)


def select_amplitude(campaign: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """``campaign select``: the sweep's scores and the ``trig-turbulent`` ensemble registered in the
    fair tier with the chosen amplitude (each member after that member's fair runs)."""
    res = sweep_scores(campaign)
    protocol = json.loads((campaign / "protocol.json").read_text())
    name = protocol["trig_sweep"]["ic"]
    base = protocol["fair_ics"][name]
    key = json.loads((campaign / "key.json").read_text())
    members = next((v["members"] for v in key.values() if v["tier"] == "fair"), None)
    if members is None:
        raise SystemExit("register the fair tier first: trig-turbulent joins its ensembles, of their size")
    ic = dict(source=base["source"], options=dict(base["options"], amplitude=res["chosen"]))
    return res, register(campaign, "fair", {name: ic}, members, registration_seed(campaign), interleave=True)
