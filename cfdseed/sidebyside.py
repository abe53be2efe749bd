"""Several initial conditions and the DNS side by side: ``cfdseed evaluate`` with more than one input.

Command line (:mod:`cfdseed.cli`)::

    cfdseed evaluate --fields gan=gan.h5 --fields sem=sem.h5 --fields phase-randomised=pr.h5 \\
                     --against dns.h5 --out compare

Python: ``cfdseed.evaluate.evaluate(out, fields={"gan": ..., "sem": ...}, against=...)``, which
reads and checks the inputs and calls :func:`write_side_by_side`. Every input's statistics are
computed on its own grid in wall units (:func:`cfdseed.stats.statistics`) and compared with
those of ``--against`` (:func:`cfdseed.metrics.compare`: the DNS interpolated to the input's y+,
k+, dz+, heights paired by label) and with the published DNS
(:func:`cfdseed.metrics.compare_reference`).

``metrics.json``: ``labels`` (the inputs in order); ``inputs``: label -> ``{source, grid,
statistics, vs_dataset, vs_reference, summary}``; ``against``: the same for the DNS (no
``vs_dataset``) or null; ``reference`` (name, Re_tau, citation) or null; ``definitions``;
``figures``. A ``summary`` is one column of the table in ``report.md``:

- ``vs_dataset``: ``combined``, the relative L2 errors of U+, u'+, v'+, w'+, uv+, the
  log-spectral errors ``E_uu, E_vv, E_ww`` (spanwise) and ``E_uu_x, ...`` (streamwise, both 3-D),
  the correlation errors ``R_uu, ...`` (spanwise) and ``R_uu_x, ...`` (streamwise), the PDF
  distances ``W1_u, W1_v, W1_w``, each averaged over the heights both sets have (null without
  ``--against``);
- ``vs_reference``: relative L2 errors of the profiles against the published DNS (or null);
- ``balance``: TKE and -uv per wall, the momentum-balance residual (max, RMS), ``bulk_w`` (W_b)
  of :func:`cfdseed.stats.balance_figures`, and ``div_max`` for 3-D fields.

Figures (one colour per input, the DNS black, the published DNS grey dashed): ``profiles.png``
(U+, u'+, v'+, w'+, uv+ against y+), ``spectra.png`` (E_ii(k_z+) per height, rows = heights),
``correlations.png`` (R_ii(dz+)), ``pdfs.png``, ``slices.png`` (u' on y-z planes, the DNS on top;
4 planes spread in x of a 3-D field) and,
when a set is 3-D, ``spectra_x.png`` and ``correlations_x.png``.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.ticker import NullFormatter

from .evaluate import _DEFINITIONS, _grid, _jsonable, _out_folder, _Set
from .metrics import compare, compare_reference
from .report import (
    _LABELS,
    Series,
    _below_nyquist,
    _fmt,
    _height_labels,
    _row,
    _save,
    _style,
    figure,
    pdf_figure,
    slice_rows,
)
from .stats import PAIRS, PROFILES, Statistics

__all__ = ["summary", "write_side_by_side"]

log = logging.getLogger(__name__)

_DNS = "DNS"
#: Input colours: matplotlib's cycle without its grey (C7), kept for the published DNS.
_COLOURS = ("C0", "C1", "C2", "C3", "C4", "C5", "C6", "C8", "C9")
_BALANCE = ("tke_lower", "tke_upper", "shear_stress_lower", "shear_stress_upper", "balance_residual_max",
            "balance_residual_rms", "bulk_w")


def _mean(d: dict[str, float] | None) -> float | None:
    vals = [v for v in (d or {}).values() if v is not None and math.isfinite(v)]
    return float(np.mean(vals)) if vals else None


def summary(s: Statistics, vs_dataset: dict[str, Any] | None, vs_reference: dict[str, Any] | None) -> dict[str, Any]:
    """One column of the side-by-side table (module docstring) from :func:`cfdseed.metrics.compare`
    and :func:`cfdseed.metrics.compare_reference` results (either may be None)."""
    vd: dict[str, float | None] | None = None
    if vs_dataset is not None:
        vd = {"combined": vs_dataset["combined"], **vs_dataset["profiles"]}
        for key, suffix in (("spectra", ""), ("streamwise_spectra", "_x")):
            if key in vs_dataset:
                vd.update({f"E_{p}{suffix}": _mean(vs_dataset[key][p]) for p in PAIRS})
        for key, suffix in (("correlation", ""), ("streamwise_correlation", "_x")):
            if key in vs_dataset:
                vd.update({f"R_{p}{suffix}": _mean(vs_dataset[key][p]) for p in PAIRS})
        vd.update({f"W1_{c}": _mean(vs_dataset["pdf_w1"][c]) for c in "uvw"})
    balance: dict[str, float | None] = {k: (s.balance or {}).get(k) for k in _BALANCE}
    balance["div_max"] = s.divergence["div_max"] if s.divergence else None
    return {"vs_dataset": vd, "vs_reference": dict(vs_reference["profiles"]) if vs_reference else None,
            "balance": balance}


def _stats_dict(s: Statistics) -> dict[str, Any]:
    d = s.to_dict()
    if s.dx is not None and s.correlation_x is not None:
        d["streamwise_correlation"] = {"dx+": s.dx.tolist(), **{
            p: {h.label: s.correlation_x[c, i].tolist() for i, h in enumerate(s.heights)}
            for c, p in enumerate(PAIRS)}}
    return d


def write_side_by_side(inputs: Sequence[tuple[str, _Set]], against: _Set | None, reference: str | None,
                       out: str | Path, heights: Sequence[float | str]) -> dict[str, Any]:
    """Statistics and comparisons of every input, ``metrics.json``, overlay figures and ``report.md``.

    Parameters
    ----------
    inputs
        ``(label, data)`` pairs, labels unique (checked by :func:`cfdseed.evaluate.evaluate`).
    against
        The DNS the inputs are compared with, or None.
    reference
        A published DNS name, ``"auto"`` (nearest in Re_tau to ``against``, else to the first
        input) or ``"none"``/None.
    out
        Output folder (created if missing).
    heights
        y+ of spectra, PDFs and correlations (``"centre"`` for the centre row).

    Returns
    -------
    dict
        The contents of ``metrics.json`` (module docstring) plus ``figures``.
    """
    from . import __version__
    from .reference import load_reference, nearest_reference

    stats = {label: d.stats(heights) for label, d in inputs}
    a = against.stats(heights) if against is not None else None
    out = _out_folder(Path(out))
    base = a if a is not None else stats[inputs[0][0]]
    ref = None
    if reference is not None and reference.lower() != "none":
        ref = load_reference(nearest_reference(base.re_tau) if reference.lower() == "auto" else reference)
    for label, s in stats.items():
        if abs(math.log(s.re_tau / base.re_tau)) > 0.2:
            log.warning("input %s has Re_tau %.0f, %s %.0f: their statistics differ physically", label, s.re_tau,
                        "the DNS" if a is not None else inputs[0][0], base.re_tau)
    if ref is not None and abs(math.log(ref.re_tau / base.re_tau)) > 0.2:
        log.warning("reference %s has Re_tau %.0f, the data %.0f: profiles differ physically", ref.name, ref.re_tau,
                    base.re_tau)
    entries: dict[str, Any] = {}
    for label, d in inputs:
        s = stats[label]
        vd = compare(s, a) if a is not None else None
        vr = compare_reference(s, ref) if ref is not None else None
        entries[label] = {"source": d.source, "grid": _grid(d), "statistics": _stats_dict(s), "vs_dataset": vd,
                          "vs_reference": vr, "summary": summary(s, vd, vr)}
    ag = None
    if a is not None and against is not None:
        vr = compare_reference(a, ref) if ref is not None else None
        ag = {"source": against.source, "grid": _grid(against), "statistics": _stats_dict(a), "vs_reference": vr,
              "summary": summary(a, None, vr)}
    metrics: dict[str, Any] = {
        "cfdseed_version": __version__,
        "labels": [label for label, _ in inputs],
        "inputs": entries,
        "against": ag,
        "reference": None if ref is None else {"name": ref.name, "re_tau": ref.re_tau, "citation": ref.citation},
        "definitions": {**_DEFINITIONS, "summary": "each comparison averaged over the heights both sets have; "
                        "streamwise (_x) entries only when both are 3-D fields"},
    }
    series = [(label, stats[label], _COLOURS[i % len(_COLOURS)]) for i, (label, _) in enumerate(inputs)]
    if a is not None:
        series.append((_DNS, a, "k"))
    rows = ([(_DNS, against.fields, against.y, against.lz)] if against is not None else []) + \
        [(label, d.fields, d.y, d.lz) for label, d in inputs]
    metrics["figures"] = _write_overlays(out, series, ref, rows)
    (out / "metrics.json").write_text(json.dumps(_jsonable(metrics), indent=1))
    _write_table_report(out, metrics)
    return metrics


# ---------------------------------------------------------------------------------------------
# figures
# ---------------------------------------------------------------------------------------------


def _profiles(series: Series, ref: Any, path: Path) -> str:
    fig = figure(17, 3.8)
    axes = fig.subplots(1, len(PROFILES))
    for ax, k in zip(axes, PROFILES):
        for name, s, col in series:
            m = s.yplus > 0
            ax.semilogx(s.yplus[m], s.profiles[k][m], label=name, **_style(col))
        if ref is not None and k in ref.profiles:
            mr = ref.yplus > 0.1
            ax.semilogx(ref.yplus[mr], ref.profiles[k][mr], "--", color="0.55", lw=1.3, label=ref.name)
        ax.set_xlabel(r"$y^+$")
        ax.set_ylabel(_LABELS[k])
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle("Profiles in wall units")
    return _save(fig, path)


def _per_height(series: Series, path: Path, streamwise: bool, what: str) -> str:
    """Spectra (``what="spectra"``) or correlations, rows = heights, columns = uu, vv, ww."""
    spectra = what == "spectra"
    have = [(n, s, c) for n, s, c in series if not streamwise or s.kx is not None]
    labels = _height_labels(have)
    fig = figure(13, 0.6 + 2.6 * len(labels))
    axes = fig.subplots(len(labels), 3, squeeze=False)
    d = "x" if streamwise else "z"
    for r, label in enumerate(labels):
        for c, pair in enumerate(PAIRS):
            ax = axes[r, c]
            for name, s, col in have:
                i = _row(s, label)
                if i is None:
                    continue
                if spectra:
                    k, e, n = (s.kx, s.spectra_x, s.nx) if streamwise else (s.kz, s.spectra_z, s.nz)
                    top = _below_nyquist(k, n)
                    ax.loglog(k[1:top], e[c, i, 1:top], label=name, **_style(col))
                else:
                    x, rr = (s.dx, s.correlation_x) if streamwise else (s.dz, s.correlation)
                    ax.plot(x, rr[c, i], label=name, **_style(col))
            if spectra:
                ax.xaxis.set_minor_formatter(NullFormatter())
                ax.set_ylabel(rf"$E_{{{pair}}}^+(k_{d}^+)$", fontsize=8)
            else:
                ax.axhline(0.0, color="0.5", lw=0.8)
                ax.set_ylabel(rf"$R_{{{pair}}}(\Delta {d}^+)$", fontsize=8)
            ax.set_title(f"{pair} at {label}", fontsize=8)
            ax.tick_params(labelsize=7)
            ax.grid(True, which="both", alpha=0.3)
            if r == len(labels) - 1:
                ax.set_xlabel(rf"$k_{d}^+$" if spectra else rf"$\Delta {d}^+$")
    axes[0, 0].legend(fontsize=7)
    kind = "energy spectra" if spectra else "two-point correlations"
    fig.suptitle(f"{'Streamwise' if streamwise else 'Spanwise'} {kind}")
    return _save(fig, path)


def _write_overlays(out: Path, series: Series, ref: Any,
                   rows: list[tuple[str, np.ndarray, np.ndarray, float]]) -> dict[str, str]:
    """The overlay PNGs of the module docstring into ``out``; returns {figure key: file name}."""
    figs = {"profiles": _profiles(series, ref, out / "profiles.png"),
            "spectra": _per_height(series, out / "spectra.png", False, "spectra")}
    three_d = any(s.kx is not None for _, s, _ in series)
    if three_d:
        figs["spectra_x"] = _per_height(series, out / "spectra_x.png", True, "spectra")
    figs["correlations"] = _per_height(series, out / "correlations.png", False, "correlations")
    if three_d:
        figs["correlations_x"] = _per_height(series, out / "correlations_x.png", True, "correlations")
    figs["pdfs"] = pdf_figure(series, out / "pdfs.png")
    figs["slices"] = slice_rows(rows, out / "slices.png", "u' on y-z planes"
                                + (" (DNS on top)" if rows and rows[0][0] == _DNS else ""), x_planes=4)
    return figs


# ---------------------------------------------------------------------------------------------
# report.md
# ---------------------------------------------------------------------------------------------
_ROWS = {
    "vs_dataset": [("combined", "**combined metric**"), *[(k, f"rel. L2 {k}") for k in PROFILES],
                   *[(f"E_{p}", f"log-spectral E_{p} (z)") for p in PAIRS],
                   *[(f"E_{p}_x", f"log-spectral E_{p} (x)") for p in PAIRS],
                   *[(f"R_{p}", f"correlation R_{p}(dz)") for p in PAIRS],
                   *[(f"R_{p}_x", f"correlation R_{p}(dx)") for p in PAIRS],
                   *[(f"W1_{c}", f"PDF W1 {c}'") for c in "uvw"]],
    "vs_reference": [(k, f"rel. L2 {k}") for k in PROFILES],
    "balance": [("tke_lower", "TKE, lower wall"), ("tke_upper", "TKE, upper wall"),
                ("shear_stress_lower", "-uv, lower wall"), ("shear_stress_upper", "-uv, upper wall"),
                ("balance_residual_max", "balance residual, max"), ("balance_residual_rms", "balance residual, RMS"),
                ("bulk_w", "W_b"), ("div_max", "divergence max (U_b/h)")],
}


def _write_table_report(out: Path, metrics: dict[str, Any]) -> Path:
    """Write ``out/report.md``: the sources, the side-by-side table and the figures."""
    ins, ag, ref = metrics["inputs"], metrics["against"], metrics["reference"]
    columns = [(label, ins[label]["summary"]) for label in metrics["labels"]]
    if ag is not None:
        columns.append((_DNS, ag["summary"]))
    lines = ["# cfdseed evaluation report: side by side", ""]
    for label in metrics["labels"]:
        st = ins[label]["statistics"]
        lines.append(f"- **{label}**: {ins[label]['source']} — {st['n_fields']} {st['kind']}, "
                     f"Re_tau = {st['re_tau']:.1f}")
    if ag is not None:
        lines.append(f"- **{_DNS}** (compared with): {ag['source']} — {ag['statistics']['n_fields']} "
                     f"{ag['statistics']['kind']}, Re_tau = {ag['statistics']['re_tau']:.1f}")
    if ref is not None:
        lines.append(f"- published DNS: `{ref['name']}` (Re_tau = {ref['re_tau']}), {ref['citation']}")
    lines += ["", ("All numbers, per input, with units and heights: [metrics.json](metrics.json). Comparisons are "
                   "averaged over the heights both sets have; lower is better, 0 = identical."), "",
              "## Side by side", "", "| | " + " | ".join(name for name, _ in columns) + " |",
              "|---|" + "---|" * len(columns)]
    groups = [("vs_dataset", f"vs the {_DNS}"), ("vs_reference", f"vs published DNS ({ref['name'] if ref else ''})"),
              ("balance", "balance (wall units, per wall / h)")]
    for group, title in groups:
        keys = [(k, name) for k, name in _ROWS[group]
                if any((col[group] or {}).get(k) is not None for _, col in columns)]
        if not keys:
            continue
        lines.append(f"| *{title}* |" + " |" * len(columns))
        for k, name in keys:
            lines.append(f"| {name} | " + " | ".join(_fmt((col[group] or {}).get(k)) for _, col in columns) + " |")
    lines += ["", "## Figures", "", f"One colour per input, the {_DNS} black, the published DNS grey dashed.", ""]
    titles = {"profiles": "Profiles in wall units", "spectra": "Spanwise spectra", "spectra_x": "Streamwise spectra",
              "correlations": "Spanwise two-point correlations", "correlations_x": "Streamwise two-point correlations",
              "pdfs": "PDFs of the fluctuations", "slices": "Samples: u' on y-z planes"}
    for key, name in metrics["figures"].items():
        lines += [f"### {titles.get(key, key)}", "", f"![{key}]({name})", ""]
    path = Path(out) / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
