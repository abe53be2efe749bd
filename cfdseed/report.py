"""Figures and ``report.md`` of ``cfdseed evaluate`` (the numbers come from :mod:`cfdseed.stats` and
:mod:`cfdseed.metrics`, through :mod:`cfdseed.evaluate`).

Every figure is drawn on a :class:`matplotlib.figure.Figure` with the Agg canvas (no pyplot, no
global backend change; :func:`figure` makes them, also for ``cfdseed generate`` and ``cfdseed train``),
saved as PNG at 110 dpi:

- ``profiles.png``   U+, u'+ v'+ w'+, uv+ against y+ (log axis): evaluated solid, reference dataset
                     dotted with markers, published DNS dashed;
- ``spectra.png``    E_uu, E_vv, E_ww(k_z+) log-log, one colour per height (dataset dashed);
- ``spectra_x.png``  the streamwise counterparts (3-D fields only);
- ``pdfs.png``       PDFs of u'+, v'+, w'+ at each height (log density; dataset black);
- ``correlations.png`` R_uu, R_vv, R_ww(dz+) per height;
- ``slices.png``     u' = u - <u>(y) on y-z planes, reference dataset samples above generated ones,
                     one shared colour scale.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

__all__ = ["figure", "slice_rows", "write_figures", "write_report"]

_DPI = 110
_LABELS = {"U+": r"$U^+$", "u'+": r"$u'^+$", "v'+": r"$v'^+$", "w'+": r"$w'^+$", "uv+": r"$\langle u'v'\rangle^+$"}


def figure(w: float, h: float) -> Figure:
    """A ``w`` x ``h`` inch figure (constrained layout) on the Agg canvas: no pyplot, no global backend."""
    fig = Figure(figsize=(w, h), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path) -> str:
    fig.savefig(path, dpi=_DPI)
    return path.name


def _colours(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    return [cmap(0.85 * i / max(n - 1, 1)) for i in range(n)]


def _profiles(s: Any, a: Any, ref: Any, path: Path, names: tuple[str, str]) -> str:
    fig = figure(13, 4)
    axes = fig.subplots(1, 3)
    groups = [("U+",), ("u'+", "v'+", "w'+"), ("uv+",)]
    colours = {"U+": "C0", "u'+": "C0", "v'+": "C1", "w'+": "C2", "uv+": "C3"}
    m = s.yplus > 0
    for ax, group in zip(axes, groups):
        for k in group:
            ax.semilogx(s.yplus[m], s.profiles[k][m], "-", color=colours[k], lw=2, label=f"{_LABELS[k]} {names[0]}")
            if a is not None:
                ma = a.yplus > 0
                ax.semilogx(a.yplus[ma], a.profiles[k][ma], ":", marker="o", ms=3, color=colours[k], lw=1.2,
                            label=f"{_LABELS[k]} {names[1]}")
            if ref is not None:
                mr = ref.yplus > 0.1
                ax.semilogx(ref.yplus[mr], ref.profiles[k][mr], "--", color="0.35", lw=1.2,
                            label=f"{_LABELS[k]} {ref.name}" if k == group[0] else None)
        ax.set_xlabel(r"$y^+$")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    axes[0].set_ylabel(r"$U^+$")
    axes[1].set_ylabel("rms fluctuation (wall units)")
    axes[2].set_ylabel(r"$\langle u'v'\rangle^+$")
    fig.suptitle(f"Profiles in wall units (Re_tau = {s.re_tau:.0f})")
    return _save(fig, path)


def _below_nyquist(k: np.ndarray, n: int) -> int:
    """End index of the bins plotted: the Nyquist bin of an even grid is left out (as in compare)."""
    return len(k) - 1 if n > 0 and n % 2 == 0 else len(k)


def _spectra(s: Any, a: Any, path: Path, streamwise: bool, names: tuple[str, str]) -> str:
    fig = figure(13, 4)
    axes = fig.subplots(1, 3)
    k = s.kx if streamwise else s.kz
    e = s.spectra_x if streamwise else s.spectra_z
    cols = _colours(len(s.heights))
    name = "x" if streamwise else "z"
    top = _below_nyquist(k, s.nx if streamwise else s.nz)
    for c, (ax, pair) in enumerate(zip(axes, ("uu", "vv", "ww"))):
        for i, (h, col) in enumerate(zip(s.heights, cols)):
            ax.loglog(k[1:top], e[c, i, 1:top], "-", color=col, lw=1.8, label=f"{h.label} (y+={h.yplus:.1f})")
            if a is not None:
                ka = a.kx if streamwise else a.kz
                ea = a.spectra_x if streamwise else a.spectra_z
                j = {hh.label: n for n, hh in enumerate(a.heights)}.get(h.label)
                if j is not None and ka is not None and ea is not None:
                    ta = _below_nyquist(ka, a.nx if streamwise else a.nz)
                    ax.loglog(ka[1:ta], ea[c, j, 1:ta], "--", color=col, lw=1.0)
        ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels overlap on short log ranges
        ax.set_xlabel(rf"$k_{name}^+$")
        ax.set_ylabel(rf"$E_{{{pair}}}^+(k_{name}^+)$")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=7, title=f"solid: {names[0]}, dashed: {names[1]}" if a is not None else None,
                   title_fontsize=7)
    fig.suptitle(f"{'Streamwise' if streamwise else 'Spanwise'} energy spectra")
    return _save(fig, path)


#: Figure series: (name, statistics, colour); a dataset or DNS last, in black.
Series = list[tuple[str, Any, str]]


def _style(colour: str) -> dict[str, Any]:
    return {"color": colour, "lw": 2.0 if colour == "k" else 1.5, "ls": "-"}


def _height_labels(series: Series) -> list[str]:
    """Every height label of the series, nearest the wall first, the centre last."""
    seen: dict[str, float] = {}
    for _, s, _ in series:
        for h in s.heights:
            seen.setdefault(h.label, math.inf if h.label == "centre" else h.target)
    return sorted(seen, key=lambda k: seen[k])


def _row(s: Any, label: str) -> int | None:
    return next((i for i, h in enumerate(s.heights) if h.label == label), None)


def pdf_figure(series: Series, path: Path) -> str:
    """PDFs of u'+, v'+, w'+ (log density), rows = components, columns = every height of the
    series (:func:`_height_labels`), one line per series."""
    labels = _height_labels(series)
    fig = figure(0.6 + 2.6 * len(labels), 7)
    axes = fig.subplots(3, len(labels), squeeze=False)
    for c, comp in enumerate("uvw"):
        for r, label in enumerate(labels):
            ax = axes[c, r]
            xs = [(name, s.samples[c, i], col) for name, s, col in series if (i := _row(s, label)) is not None]
            lo, hi = np.percentile(np.concatenate([x for _, x, _ in xs]), [0.05, 99.95])
            if hi <= lo:
                lo, hi = lo - 1.0, hi + 1.0
            edges = np.linspace(lo, hi, 51)
            mid = 0.5 * (edges[1:] + edges[:-1])
            for name, x, col in xs:
                dens, _ = np.histogram(x, bins=edges, density=True)
                ax.semilogy(mid, np.where(dens > 0, dens, np.nan), label=name, **_style(col))
            ax.set_title(f"{comp}'+ at {label}", fontsize=8)
            ax.tick_params(labelsize=7)
            ax.grid(True, alpha=0.3)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("PDFs of the velocity fluctuations (wall units)")
    return _save(fig, path)


def _correlations(s: Any, a: Any, path: Path, names: tuple[str, str]) -> str:
    fig = figure(13, 4)
    axes = fig.subplots(1, 3)
    cols = _colours(len(s.heights))
    for c, (ax, pair) in enumerate(zip(axes, ("uu", "vv", "ww"))):
        for i, (h, col) in enumerate(zip(s.heights, cols)):
            ax.plot(s.dz, s.correlation[c, i], "-", color=col, lw=1.8, label=h.label)
            if a is not None:
                j = {hh.label: n for n, hh in enumerate(a.heights)}.get(h.label)
                if j is not None:
                    ax.plot(a.dz, a.correlation[c, j], "--", color=col, lw=1.0)
        ax.axhline(0.0, color="0.5", lw=0.8)
        ax.set_xlabel(r"$\Delta z^+$")
        ax.set_ylabel(rf"$R_{{{pair}}}(\Delta z)$")
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=7, title=f"solid: {names[0]}, dashed: {names[1]}" if a is not None else None,
                   title_fontsize=7)
    fig.suptitle("Spanwise two-point correlations")
    return _save(fig, path)


def _slices(fields: np.ndarray, y: np.ndarray, lz: float, other: tuple[np.ndarray, np.ndarray, float] | None,
            names: tuple[str, str], path: Path, n: int = 4) -> str:
    rows = [(names[1], *other) if other is not None else None, (names[0], fields, y, lz)]
    title = "Streamwise velocity fluctuation on y-z planes" + (f": {names[1]} (top) vs {names[0]} (bottom)"
                                                               if other is not None else "")
    return slice_rows([r for r in rows if r is not None], path, title, n)


def slice_rows(rows: list[tuple[str, np.ndarray, np.ndarray, float]], path: Path, title: str, n: int = 4,
               x_planes: int = 1) -> str:
    """u' = u - <u>(y) on y-z planes, one row of at most ``n`` planes per ``(name, fields, y, lz)``
    (3-D fields: ``x_planes`` planes evenly spread in x from x = 0 of each field), one shared colour
    scale; returns the file name."""
    def prepare(f: np.ndarray) -> np.ndarray:
        u = np.asarray(f[:, 0], dtype=np.float64)  # (N, [nx,] ny, nz)
        mean = u.mean(axis=(0, 1, 3) if u.ndim == 4 else (0, 2))  # (ny,) over every sample
        if u.ndim == 4:  # 3-D fields: planes x = 0, nx/x_planes, ... of each
            xs = np.unique(np.arange(x_planes) * u.shape[1] // x_planes)
            u = u[:n, xs].reshape(-1, *u.shape[2:])
        return u[:n] - mean[None, :, None]  # u' (n, ny, nz)

    data = [(name, prepare(f), yy, ll) for name, f, yy, ll in rows]
    vmax = max(float(np.percentile(np.abs(d), 99.5)) for _, d, _, _ in data) or 1.0
    ncol = max(d.shape[0] for _, d, _, _ in data)
    ly = max(float(yy[0] + yy[-1]) for _, _, yy, _ in data)
    aspect = ly / max(ll for *_, ll in data)  # panel height / width
    fig = figure(1.6 + 3.0 * ncol, 0.9 + len(data) * (3.0 * aspect + 0.35))
    axes = fig.subplots(len(data), ncol, squeeze=False)
    im = None
    for r, (name, d, yy, ll) in enumerate(data):
        nz = d.shape[-1]
        z = np.arange(nz + 1) * ll / nz
        yb = np.concatenate([[yy[0]], 0.5 * (yy[1:] + yy[:-1]), [yy[-1]]])
        for k in range(ncol):
            ax = axes[r, k]
            if k >= d.shape[0]:
                ax.set_axis_off()
                continue
            im = ax.pcolormesh(z, yb, d[k], cmap="RdBu_r", vmin=-vmax, vmax=vmax, shading="flat")
            ax.set_aspect("equal")
            ax.set_title(f"{name} #{k}", fontsize=8)
            ax.tick_params(labelsize=7)
            if k == 0:
                ax.set_ylabel("y")
            if r == len(data) - 1:
                ax.set_xlabel("z")
    if im is not None:
        fig.colorbar(im, ax=axes, shrink=0.8, label="u' = u - <u>(y)")
    fig.suptitle(title)
    return _save(fig, path)


def write_figures(out: Path, s: Any, a: Any, ref: Any, fields: np.ndarray, y: np.ndarray, lz: float,
                  other: tuple[np.ndarray, np.ndarray, float] | None,
                  names: tuple[str, str] = ("generated", "dataset")) -> dict[str, str]:
    """Write the PNG figures into ``out``; returns {figure key: file name}.

    ``s``/``a`` are the evaluated and reference-dataset :class:`~cfdseed.stats.Statistics`
    (``a`` may be None), ``ref`` a :class:`~cfdseed.reference.Reference` or None, ``fields`` the
    evaluated samples on ``y``/``lz`` and ``other`` the dataset's ``(fields, y, lz)`` or None.
    """
    out = Path(out)
    figs = {
        "profiles": _profiles(s, a, ref, out / "profiles.png", names),
        "spectra": _spectra(s, a, out / "spectra.png", streamwise=False, names=names),
    }
    if s.kx is not None:
        figs["spectra_x"] = _spectra(s, a if (a is not None and a.kx is not None) else None,
                                     out / "spectra_x.png", streamwise=True, names=names)
    figs["pdfs"] = pdf_figure([(names[0], s, "C0")] + ([(names[1], a, "k")] if a is not None else []),
                              out / "pdfs.png")
    figs["correlations"] = _correlations(s, a, out / "correlations.png", names)
    figs["slices"] = _slices(fields, y, lz, other, names, out / "slices.png")
    return figs


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def write_report(out: Path, metrics: dict[str, Any], figures: dict[str, str]) -> Path:
    """Write ``out/report.md``: sources, headline numbers and links to ``metrics.json`` and figures."""
    ev = metrics["evaluated"]
    lines = ["# cfdseed evaluation report", "",
             f"- evaluated: {ev['source']} — {ev['statistics']['n_fields']} {ev['statistics']['kind']}, "
             f"Re_tau = {ev['statistics']['re_tau']:.1f}"]
    if metrics.get("against"):
        ag = metrics["against"]
        lines.append(f"- reference dataset: {ag['source']} — {ag['statistics']['n_fields']} samples")
    if metrics.get("vs_reference"):
        vr = metrics["vs_reference"]
        lines.append(f"- published DNS: `{vr['name']}` (Re_tau = {vr['re_tau']}), {vr['citation']}")
    lines += ["", "All numbers, with units and heights: [metrics.json](metrics.json).", ""]
    vd = metrics.get("vs_dataset")
    if vd:
        lines += [f"**Combined metric vs the dataset: {vd['combined']:.4g}** "
                  "(0.5 × mean profile relative L2 error + 0.5 × mean log-spectral error; lower is better)", ""]
    lines += ["## Profiles (relative L2 error)", "", "| profile | vs dataset | vs published DNS | dataset vs DNS |",
              "|---|---|---|---|"]
    ref_e = (metrics.get("vs_reference") or {}).get("profiles", {})
    ref_a = (metrics.get("against_vs_reference") or {}).get("profiles", {})
    for k in ("U+", "u'+", "v'+", "w'+", "uv+"):
        lines.append(f"| {k} | {_fmt((vd or {}).get('profiles', {}).get(k))} | {_fmt(ref_e.get(k))} | {_fmt(ref_a.get(k))} |")
    if vd:
        heights = list(next(iter(vd["spectra"].values())).keys())
        lines += ["", "## Spanwise spectra (RMS of ln E/E_dataset) and PDFs (Wasserstein-1, wall units)", "",
                  "| height | E_uu | E_vv | E_ww | W1 u' | W1 v' | W1 w' |", "|---|---|---|---|---|---|---|"]
        for h in heights:
            lines.append(f"| {h} | " + " | ".join(_fmt(vd["spectra"][p].get(h)) for p in ("uu", "vv", "ww")) + " | "
                         + " | ".join(_fmt(vd["pdf_w1"][c].get(h)) for c in "uvw") + " |")
    div = ev["statistics"].get("divergence")
    if div:
        lines += ["", f"Divergence (contract-1 operators, per U_bulk/h): max {div['div_max']:.3g}, "
                  f"RMS {div['div_rms']:.3g}."]
    lines += ["", "## Figures", ""]
    titles = {"profiles": "Profiles in wall units (published DNS dashed)", "spectra": "Spanwise spectra",
              "spectra_x": "Streamwise spectra", "pdfs": "PDFs of the fluctuations",
              "correlations": "Spanwise two-point correlations", "slices": "Samples: dataset vs evaluated"}
    for key, name in figures.items():
        lines += [f"### {titles.get(key, key)}", "", f"![{key}]({name})", ""]
    path = Path(out) / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
