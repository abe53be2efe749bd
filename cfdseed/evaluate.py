"""The ``cfdseed evaluate`` job (:func:`evaluate`; command line in :mod:`cfdseed.cli`): turbulence
statistics (:mod:`cfdseed.stats`) of generated (or any) channel-flow fields and their comparisons
(:mod:`cfdseed.metrics`) with a reference dataset and with published DNS, written as a report::

    cfdseed evaluate (--model M [--samples N] | --fields [LABEL=]F.h5 ...) [--against DATA.h5]
                     [--reference NAME] --out DIR

``--fields`` reads a cfdseed slice dataset (:mod:`cfdseed.slices`) or a 3-D field written by
``cfdseed generate`` (:func:`cfdseed.fields.read_field`; units from its attributes or --nu/--u-tau).
``--against`` (the DNS) is a slice dataset (at most ``--against-samples`` slices, evenly spread) or
a field file (its own units). Outputs in ``--out``: ``metrics.json`` (every statistic and
comparison with its units and heights; NaN written as null), the figures of :mod:`cfdseed.report`
and ``report.md`` linking them. Several ``--fields`` (each ``LABEL=FILE``, a bare file labelled by
its name) give the side-by-side report of :mod:`cfdseed.sidebyside` instead: per-label metrics, one
table, overlays.

Python: ``evaluate(out, fields=... | model=..., against=..., reference=...)`` returns what
``metrics.json`` holds. The statistics and metrics themselves (``statistics``, ``compare``,
``slice_metrics``, ...) are :mod:`cfdseed.stats` and :mod:`cfdseed.metrics`.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .metrics import compare, compare_reference
from .stats import DEFAULT_HEIGHTS, Statistics, statistics

__all__ = ["evaluate"]

log = logging.getLogger(__name__)


@dataclass
class _Set:
    """Fields to evaluate or compare with, and their grid / wall units."""

    source: str
    fields: np.ndarray  # (N, 3, ny, nz) or (N, 3, nx, ny, nz)
    y: np.ndarray
    ly: float
    lz: float
    nu: float
    u_tau: float
    lx: float | None = None

    def stats(self, heights: Sequence[float | str]) -> Statistics:
        return statistics(self.fields, self.y, self.lz, nu=self.nu, u_tau=self.u_tau, ly=self.ly,
                          lx=self.lx, heights=heights)


def _slice_set(path: str, max_samples: int | None, nu: float | None = None, u_tau: float | None = None) -> _Set:
    """A slice dataset's slices (at most ``max_samples``, evenly spread); ``nu``/``u_tau`` replace its own."""
    from .slices import open_dataset

    with open_dataset(path, check_finite=False) as ds:
        idx = np.arange(ds.n)
        if max_samples is not None and ds.n > max_samples:
            idx = np.unique(np.linspace(0, ds.n - 1, max_samples).round().astype(np.int64))  # evenly spread
        f = ds.read(idx)
        return _Set(f"dataset {path} ({idx.size} of {ds.n} slices)", f, ds.y, ds.ly, ds.lz,
                    ds.nu if nu is None else nu, ds.u_tau if u_tau is None else u_tau)


def _read_input(path: str, nu: float | None = None, u_tau: float | None = None, *,
                max_samples: int | None = None, override: bool = True) -> _Set:
    """A slice dataset (contract 4; at most ``max_samples`` slices, evenly spread) or one 3-D field
    written by ``cfdseed generate`` (:func:`cfdseed.fields.read_field`); ``nu``/``u_tau`` override
    the input's units (``override``) or only supply those a field file lacks."""
    import h5py

    from .errors import DatasetError

    if os.path.isdir(path):
        raise DatasetError(f"{path} is a folder; name the file in it")
    if not os.path.isfile(path):
        raise DatasetError(f"{path}: no such file")
    try:
        with h5py.File(path, "r") as h:
            is_field = _is_field_file(h)
    except OSError as exc:
        raise DatasetError(f"{path}: not a readable HDF5 file ({exc})") from None
    if not is_field:  # a dataset always records its units: they are only replaced (override)
        return _slice_set(path, max_samples, *((nu, u_tau) if override else (None, None)))
    from .fields import read_field

    field, y, (lx, ly, lz), attrs = read_field(path)
    given = {"nu": nu, "u_tau": u_tau}
    units = {k: (v if v is not None and (override or attrs.get(k) is None) else attrs.get(k)) for k, v in given.items()}
    missing = [k for k, v in units.items() if v is None]
    if missing:
        raise DatasetError(f"{path}: the field file does not record {' and '.join(missing)} (its source had no units); "
                           "pass --nu and --u-tau to evaluate it in wall units")
    return _Set(f"field {path} (3-D, {'x'.join(map(str, field.shape[1:]))})", field[None], y, ly, lz,
                float(units["nu"]), float(units["u_tau"]), lx=lx)


def _sample_model(path: str | None, n: int, seed: int, device: str | None) -> _Set:
    from .checkpoint import model_path
    from .model import load_generator

    p = str(model_path(path))
    g = load_generator(p, device=device)
    f = g.sample(n, seed=seed)
    return _Set(f"model {p} ({n} samples, seed {seed})", f, g.y, g.ly, g.lz, g.nu, g.u_tau)


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, (np.floating, float)):
        return float(v) if math.isfinite(v) else None
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.ndarray):
        return _jsonable(v.tolist())
    return v


#: Label of an input: what a markdown table header and a legend can show.
_LABEL = re.compile(r"[^\W_][\w.+\- ]*\Z")  # a letter or digit first


def _inputs(fields: Any) -> list[tuple[str, str, bool]]:
    """``(label, path, labelled)`` of each input of :func:`evaluate`'s ``fields`` (a file, a mapping
    label -> file, or a sequence of files and ``(label, file)`` pairs); a bare file is labelled by
    its file name without suffix. Labels must be unique."""
    from .errors import ConfigError

    if isinstance(fields, (str, os.PathLike)):
        items: list[Any] = [fields]
    elif isinstance(fields, Mapping):
        items = list(fields.items())
    elif isinstance(fields, Sequence):
        items = list(fields)
    else:
        raise ConfigError(f"fields must be a file, a mapping label -> file or a list of files and (label, file) "
                          f"pairs, got {type(fields).__name__}")
    if not items:
        raise ConfigError("fields: no input given")
    out: list[tuple[str, str, bool]] = []
    seen: dict[str, str] = {}
    for it in items:
        if isinstance(it, (str, os.PathLike)):
            path, explicit = os.fspath(it), False
            label = os.path.splitext(os.path.basename(path))[0]
        elif (isinstance(it, (tuple, list)) and len(it) == 2 and isinstance(it[0], str)
              and isinstance(it[1], (str, os.PathLike))):
            label, path, explicit = it[0].strip(), os.fspath(it[1]), True
        else:
            raise ConfigError(f"fields: {it!r} is neither a file nor a (label, file) pair")
        if not path:
            raise ConfigError(f"input {label!r}: no file given (LABEL=FILE)")
        if (explicit or len(items) > 1) and not _LABEL.match(label):
            what = "label" if explicit else f"{path}: its file name as a label,"
            raise ConfigError(f"{what} {label!r} is not allowed: use letters, digits, spaces and _ . + - "
                              "(starting with a letter or digit)" + ("" if explicit else "; give LABEL=FILE"))
        if label in seen:
            raise ConfigError(f"label {label!r} given twice ({seen[label]} and {path}); give each input its own "
                              "label, e.g. --fields sem=sem.h5 --fields gan=gan.h5")
        seen[label] = path
        out.append((label, path, explicit))
    return out


#: What the comparison numbers mean (metrics.json "definitions").
_DEFINITIONS = {
    "relative_l2": "||p - p_ref||_2 / ||p_ref||_2 over the rows (wall-distance ordered, both halves averaged)",
    "log_spectral": "RMS over k_z > 0 of ln(E / E_ref)",
    "wasserstein1": "integral |F - F_ref| du' of the fluctuation CDFs, wall units",
    "correlation": "RMS over dz of R - R_ref",
    "combined": "0.5 * mean(rel. L2 of U+, u'+, v'+, w'+, uv+) + 0.5 * mean(log-spectral E_uu, E_vv, E_ww "
                "averaged over heights); lower is better",
}


def _write(evaluated: _Set, against: _Set | None, reference: str | None, out: Any,
           heights: Sequence[float | str], name: str | None = None) -> dict[str, Any]:
    """Statistics, comparisons, ``metrics.json``, figures and ``report.md`` into ``out``."""
    import json

    from . import __version__
    from .reference import load_reference, nearest_reference
    from .report import write_figures, write_report

    s = evaluated.stats(heights)
    a = against.stats(heights) if against is not None else None
    out = _out_folder(Path(out))
    ref = None
    if reference is not None and reference.lower() != "none":
        ref = load_reference(nearest_reference(s.re_tau) if reference.lower() == "auto" else reference)
    metrics: dict[str, Any] = {
        "cfdseed_version": __version__,
        "evaluated": {"source": evaluated.source, "grid": _grid(evaluated), "statistics": s.to_dict()},
        "against": None if a is None or against is None else {
            "source": against.source, "grid": _grid(against), "statistics": a.to_dict()},
        "vs_dataset": compare(s, a) if a is not None else None,
        "vs_reference": compare_reference(s, ref) if ref is not None else None,
        "against_vs_reference": compare_reference(a, ref) if (ref is not None and a is not None) else None,
        "definitions": dict(_DEFINITIONS),
    }
    if ref is not None and s.re_tau > 0 and abs(math.log(ref.re_tau / s.re_tau)) > 0.2:
        log.warning("reference %s has Re_tau %.0f, the data %.0f: profiles differ physically", ref.name,
                    ref.re_tau, s.re_tau)
    other = (against.fields, against.y, against.lz) if against is not None else None
    names = (name or ("generated" if evaluated.source.startswith("model") else "evaluated"), "dataset")
    figures = write_figures(out, s, a, ref, evaluated.fields, evaluated.y, evaluated.lz, other, names)
    metrics["figures"] = figures
    (out / "metrics.json").write_text(json.dumps(_jsonable(metrics), indent=1))
    write_report(out, metrics, figures)
    return metrics


def _out_folder(out: Path) -> Path:
    """Create the output folder once the statistics are known (bad heights or data leave no empty
    folder behind); ConfigError naming it where it cannot be."""
    from .errors import ConfigError

    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the output folder {out} ({exc.strerror or exc})") from None
    return out


def _grid(d: _Set) -> dict[str, Any]:
    return {"shape": list(d.fields.shape[1:]), "y": d.y.tolist(), "ly": d.ly, "lz": d.lz, "lx": d.lx,
            "nu": d.nu, "u_tau": d.u_tau, "re_tau": 0.5 * d.ly * d.u_tau / d.nu}


def evaluate(
    out: str | os.PathLike,
    *,
    fields: str | os.PathLike | Mapping[str, str | os.PathLike] | Sequence[Any] | None = None,
    model: str | os.PathLike | None = None,
    samples: int = 256,
    seed: int = 0,
    device: str | None = None,
    nu: float | None = None,
    u_tau: float | None = None,
    against: str | os.PathLike | None = None,
    against_samples: int = 1024,
    reference: str = "auto",
    heights: Sequence[float | str] = DEFAULT_HEIGHTS,
) -> dict[str, Any]:
    """Evaluate stored fields or a model's samples; write ``out/metrics.json``, figures, ``report.md``.

    Parameters
    ----------
    out
        Output folder (created if missing).
    fields
        What to evaluate: a slice dataset or a 3-D field file written by ``cfdseed generate``; or
        several, side by side (:mod:`cfdseed.sidebyside`): a mapping label -> file, or a list of
        files and ``(label, file)`` pairs (a bare file is labelled by its name without suffix).
        One input, labelled or not, gives the single-input report. None: the model is sampled.
    model
        Generator checkpoint sampled when ``fields`` is None (None: the packaged default model).
    samples, seed, device
        Slices drawn from the model, their latent seed, the torch device (None: CUDA when available).
    nu, u_tau
        Units of the 3-D field files of ``fields`` (default: their attributes); a field file given as
        ``against`` keeps its own units and takes these only where it records none.
    against
        The data the inputs are compared with (the DNS): a slice dataset (at most
        ``against_samples`` slices of it, evenly spread) or a 3-D field file.
    reference
        Published DNS: a name of :data:`cfdseed.reference.REFERENCES`, ``"auto"`` (nearest in
        Re_tau to the evaluated data; side by side, to ``against``, else to the first input) or
        ``"none"``.
    heights
        y+ of spectra, PDFs and correlations (``"centre"`` for the centre row).

    Returns
    -------
    dict
        The contents of ``metrics.json`` plus ``figures`` (figure name -> file name); side by side
        the layout of :func:`cfdseed.sidebyside.write_side_by_side`.

    Raises
    ------
    ConfigError
        ``fields`` and ``model`` both given, a label given twice or not allowed, non-positive sample
        counts, a ``seed`` that is not a non-negative integer, an unknown reference or ``device``, an output folder that cannot be created.
    DatasetError, CheckpointError
        Missing or unreadable inputs, field files without units (and no ``nu``/``u_tau``), or data
        the statistics reject (non-finite values, bad grid, ...).
    """
    from ._values import is_integer
    from .errors import CfdseedError, ConfigError, DatasetError
    from .reference import REFERENCES

    if fields is not None and model is not None:
        raise ConfigError("give either fields or a model to evaluate, not both")
    if samples < 1 or against_samples < 1:
        raise ConfigError(f"samples and against_samples must be positive, got {samples}, {against_samples}")
    if not (is_integer(seed) and seed >= 0):
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    ref = str(reference).strip().lower()
    if ref not in ("auto", "none", *REFERENCES):
        raise ConfigError(f"unknown reference {reference!r}; one of auto, none, {', '.join(REFERENCES)}")
    inputs = _inputs(fields) if fields is not None else []
    try:
        if len(inputs) > 1:
            from .sidebyside import write_side_by_side

            for label, path, _ in inputs:  # every file exists before any is read
                if os.path.isdir(path):
                    raise DatasetError(f"input {label!r}: {path} is a folder; name the file in it")
                if not os.path.isfile(path):
                    raise DatasetError(f"input {label!r}: {path}: no such file")
            sets = []
            for label, path, _ in inputs:
                try:
                    sets.append((label, _read_input(path, nu, u_tau)))
                except DatasetError as exc:
                    raise DatasetError(f"input {label!r}: {exc}") from None
            ag = _read_against(against, against_samples, nu, u_tau)
            return write_side_by_side(sets, ag, ref, out, heights)
        if not inputs and (nu is not None or u_tau is not None) and (against is None or _records_units(against)):
            given = " and ".join(k for k, v in (("nu", nu), ("u_tau", u_tau)) if v is not None)
            raise ConfigError(f"{given} would apply to nothing: a model's samples are in its own units and "
                              + ("no against data is given" if against is None else
                                 f"the against data {os.fspath(against)} records its own"))
        ag = _read_against(against, against_samples, nu, u_tau)  # before a model is sampled
        if inputs:
            label, path, explicit = inputs[0]
            ev, name = _read_input(path, nu, u_tau), (label if explicit else None)
        else:
            ev, name = _sample_model(None if model is None else str(model), samples, seed, device), None
        return _write(ev, ag, ref, out, heights, name)
    except CfdseedError:
        raise
    except ValueError as exc:  # statistics reject the data (non-finite values, bad grid, ...)
        raise DatasetError(f"cannot evaluate: {exc}") from None


def _is_field_file(h: Any) -> bool:
    """Whether the open HDF5 file ``h`` is a 3-D field file (it holds /u, /v, /w, or, written by
    ``generate --strategy distributed``, points to its raw data), not a slice dataset."""
    return "fields" not in h and ("u" in h or h.attrs.get("storage") == "raw")


def _records_units(path: Any) -> bool:
    """Whether the file at ``path`` records its units (a slice dataset always does; a field file where
    its source had them); False for what cannot be read (reading it reports that)."""
    import h5py

    try:
        with h5py.File(os.fspath(path), "r") as h:
            return not _is_field_file(h) or (h.attrs.get("nu") is not None and h.attrs.get("u_tau") is not None)
    except (OSError, TypeError, ValueError):
        return False


def _read_against(path: Any, max_samples: int, nu: float | None, u_tau: float | None) -> _Set | None:
    from .errors import DatasetError

    if path is None:
        return None
    try:
        return _read_input(os.fspath(path), nu, u_tau, max_samples=max_samples, override=False)
    except DatasetError as exc:
        raise DatasetError(f"--against: {exc}") from None
