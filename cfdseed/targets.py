"""One-point statistics targets of a channel: what the stress calibration (:mod:`cfdseed.calibrate`)
brings a field to, and what a model carries of its training data.

A **target** (:class:`StressTarget`) holds one-point statistics of a channel in wall units on the
lower half, ``y/h`` from 0 to 1: the mean ``U+`` and ``<u'u'>+, <v'v'>+, <w'w'>+, <u'v'>+``
(negative in the lower half). :func:`stress_target` makes one from a packaged reference by name
(``lee-moser-180`` ... , ``mkm-180``: :mod:`cfdseed.reference`), from a user file (CSV/text with
the columns ``y/h, U+, uu+, vv+, ww+, uv+``, or ``.npz`` with those keys: ``y_delta, U, uu, vv,
ww, uv``) or from a generator checkpoint's stored training statistics. :meth:`StressTarget.on_grid`
gives the profiles on a grid's y in the field's velocity units (both halves, ``<u'v'>`` changing
sign at the centre): :class:`Stresses`.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import SourceError

__all__ = ["StressTarget", "Stresses", "stress_target", "reference_target", "resolve_target", "dataset_target",
           "profiles_target", "STATS", "MIN_PLANES_PER_TIME"]

#: The second moments of a target, in order.
STATS = ("uu", "vv", "ww", "uv")
_Y_COVER = 0.05  # a target must reach within this many half-heights of the wall and of the centre


@dataclass(frozen=True)
class Stresses:
    """Target profiles on a grid's y (both halves), in the field's velocity units: ``(ny,)`` each.

    ``resolved`` (optional, bool ``(ny,)``) marks the rows whose statistics the grid can carry (the
    others: too close to a wall for its x/z spacing, see :meth:`StressTarget.on_grid`); the
    acceptance limit :data:`cfdseed.calibrate.ACCEPT` applies there only. None: every row.
    """

    U: np.ndarray
    uu: np.ndarray
    vv: np.ndarray
    ww: np.ndarray
    uv: np.ndarray
    resolved: np.ndarray | None = None


@dataclass(frozen=True)
class StressTarget:
    """One-point channel statistics in wall units on the lower half (``y_delta = y/h`` in [0, 1]).

    Raises
    ------
    SourceError
        Arrays of different lengths, non-finite values, ``y_delta`` not increasing or not covering
        the half channel (from <= 0.05 to >= 0.95), negative variances, or a stress tensor that is
        not positive semi-definite (``uv^2 > uu vv``).
    """

    name: str
    re_tau: float
    y_delta: np.ndarray
    U: np.ndarray
    uu: np.ndarray
    vv: np.ndarray
    ww: np.ndarray
    uv: np.ndarray

    def __post_init__(self) -> None:
        arrays = {k: np.asarray(getattr(self, k), dtype=np.float64).reshape(-1)
                  for k in ("y_delta", "U", *STATS)}
        n = arrays["y_delta"].size
        bad = [k for k, a in arrays.items() if a.size != n]
        if bad or n < 2:
            raise SourceError(f"stress target {self.name!r}: profiles must have one value per y point "
                              f"({n}); {', '.join(f'{k} has {arrays[k].size}' for k in bad) or 'need >= 2 points'}")
        for k, a in arrays.items():
            if not np.all(np.isfinite(a)):
                raise SourceError(f"stress target {self.name!r}: {k} has non-finite values")
            object.__setattr__(self, k, a)
        y = arrays["y_delta"]
        if np.any(np.diff(y) <= 0):
            raise SourceError(f"stress target {self.name!r}: y/h must increase strictly")
        if y[0] > _Y_COVER or y[-1] < 1.0 - _Y_COVER or y[0] < 0 or y[-1] > 1.0 + 1e-9:
            raise SourceError(f"stress target {self.name!r}: y/h spans [{y[0]:.4g}, {y[-1]:.4g}]; it must "
                              f"cover the half channel, from <= {_Y_COVER} to >= {1 - _Y_COVER} within [0, 1]")
        for k in ("uu", "vv", "ww"):
            if np.any(arrays[k] < 0):
                j = int(np.argmin(arrays[k]))
                raise SourceError(f"stress target {self.name!r}: negative variance {k} = {arrays[k][j]:.4g} "
                                  f"at y/h = {y[j]:.4g}")
        excess = arrays["uv"] ** 2 - arrays["uu"] * arrays["vv"]
        if np.any(excess > 1e-9 * (arrays["uu"] * arrays["vv"]).max()):
            j = int(np.argmax(excess))
            raise SourceError(f"stress target {self.name!r}: not positive semi-definite at y/h = {y[j]:.4g} "
                              f"(uv^2 = {arrays['uv'][j] ** 2:.4g} > uu vv = {arrays['uu'][j] * arrays['vv'][j]:.4g})")
        try:
            re_ok = math.isfinite(self.re_tau) and self.re_tau > 0
        except TypeError:
            re_ok = False
        if not re_ok:
            raise SourceError(f"stress target {self.name!r}: re_tau must be a positive number, got {self.re_tau!r}")

    def on_grid(self, y: np.ndarray, ly: float, u_tau: float = 1.0, spacing: float | None = None) -> Stresses:
        """The profiles at the points ``y`` of a channel of height ``ly`` (both halves), velocities
        times ``u_tau``; linear in ``y/h``, constant beyond the data's ends.

        ``spacing`` (in the units of ``y``; ``gan`` passes two spanwise grid spacings): rows nearer
        a wall than it are marked unresolved (``Stresses.resolved``): the near-wall eddies there are
        smaller than the grid carries (an LES-like grid), so the acceptance limit does not apply.
        """
        eta = np.minimum(y, ly - y) / (0.5 * ly)
        sign = np.where(y <= 0.5 * ly, 1.0, -1.0)

        y_d = self.y_delta if self.y_delta[-1] >= 1.0 else np.append(self.y_delta, 1.0)

        def at(a: np.ndarray, centre: float | None = None) -> np.ndarray:
            # data stopping short of the centre: held constant there, <u'v'> going to 0 (symmetry)
            if y_d.size > a.size:
                a = np.append(a, a[-1] if centre is None else centre)
            return np.interp(eta, y_d, a)

        s2 = u_tau * u_tau
        resolved = None if spacing is None else np.minimum(y, ly - y) >= spacing
        return Stresses(U=at(self.U) * u_tau, uu=at(self.uu) * s2, vv=at(self.vv) * s2, ww=at(self.ww) * s2,
                        uv=sign * at(self.uv, 0.0) * s2, resolved=resolved)

    def bulk_plus(self) -> float:
        """Bulk velocity of the mean profile in wall units (trapezoid over the half channel)."""
        return float(np.trapezoid(np.r_[0.0, self.U] if self.y_delta[0] > 0 else self.U,
                                  np.r_[0.0, self.y_delta] if self.y_delta[0] > 0 else self.y_delta)
                     / self.y_delta[-1])

    def tke_plus(self) -> float:
        """Mean turbulent kinetic energy (uu + vv + ww) / 2 over the half channel in wall units
        (trapezoid over the target's rows)."""
        return float(np.trapezoid(0.5 * (self.uu + self.vv + self.ww), self.y_delta)
                     / (self.y_delta[-1] - self.y_delta[0]))

    def at_re_tau(self, re_tau: float) -> StressTarget:
        """These statistics carried to a nearby ``re_tau`` by the scalings of the two layers: at fixed
        y+ near the wall (``y+ <= INNER_LIMIT`` of :mod:`cfdseed.reference`), at fixed y/h in the outer
        layer (``y/h >= OUTER_LIMIT``, the mean shifted by ``ln(re_tau / self.re_tau) / KAPPA`` as
        the defect law asks, so the log layer matches), blended linearly in ln y between, the
        blend of :func:`cfdseed.reference.interpolate_reference`; the points are this target's (its
        y+ near the wall, its y/h beyond). Stress magnitudes stay those of ``self.re_tau`` (their
        trend with Re_tau is weak: Lee & Moser's u'+ peak grows ~3 % from 180 to 550). The same
        Re_tau (within 1e-9) gives ``self``."""
        from .reference import INNER_LIMIT, KAPPA, OUTER_LIMIT

        r, r0 = float(re_tau), float(self.re_tau)
        if not (math.isfinite(r) and r > 0):
            raise SourceError(f"re_tau must be a positive finite number, got {re_tau!r}")
        if abs(r / r0 - 1.0) <= 1e-9:
            return self
        src = self.y_delta
        inner = src * r0 <= INNER_LIMIT
        eta = np.concatenate([src[inner] * r0 / r, src[(~inner) & (src * r > INNER_LIMIT)]])  # (n',) new points
        lo = INNER_LIMIT / r  # the blend's outer weight: 0 up to y+ = INNER_LIMIT, 1 from y/h = OUTER_LIMIT
        w = np.clip(np.log(np.maximum(eta, 1e-300) / lo) / math.log(OUTER_LIMIT / lo), 0.0, 1.0)
        shift = math.log(r / r0) / KAPPA
        out = {}
        for k in ("U", *STATS):
            a = getattr(self, k)
            at_yplus = np.interp(eta * r / r0, src, a)  # the value at the same y+
            at_eta = np.interp(eta, src, a) + (shift if k == "U" else 0.0)  # at the same y/h
            out[k] = (1.0 - w) * at_yplus + w * at_eta
        return StressTarget(name=f"{self.name} carried to Re_tau {r:.6g}", re_tau=r, y_delta=eta, **out)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (lists), e.g. for a checkpoint's metadata; :func:`stress_target` reads it back."""
        return {"name": self.name, "re_tau": float(self.re_tau),
                **{k: np.asarray(getattr(self, k)).tolist() for k in ("y_delta", "U", *STATS)}}


def stress_target(spec: Any, *, re_tau: float | None = None) -> StressTarget:
    """A :class:`StressTarget` from a packaged reference name, a file, a dict or a target.

    Parameters
    ----------
    spec : str, path, dict or StressTarget
        ``"lee-moser-180"`` etc. (:data:`cfdseed.reference.REFERENCES`); a ``.npz`` file (keys
        ``y_delta, U, uu, vv, ww, uv`` and optionally ``re_tau``) or a text/CSV file (header line,
        then columns ``y/h, U+, uu+, vv+, ww+, uv+``, comma or blank separated); a dict as
        :meth:`StressTarget.to_dict` writes it.
    re_tau : float, optional
        Friction Reynolds number of a file target that does not give its own (a text/CSV file, an
        ``.npz`` file without ``re_tau``); an ``.npz`` file's own value wins.

    Raises
    ------
    SourceError
        Unknown name, unreadable file, missing columns or ``re_tau``, or an invalid target.
    """
    from .reference import REFERENCES, load_reference

    if isinstance(spec, StressTarget):
        return spec
    if isinstance(spec, dict):
        try:
            return StressTarget(name=str(spec.get("name", "dict")), re_tau=float(spec["re_tau"]),
                                **{k: np.asarray(spec[k], dtype=np.float64) for k in ("y_delta", "U", *STATS)})
        except KeyError as exc:
            raise SourceError(f"stress target dict lacks {exc.args[0]!r}; needs re_tau, y_delta, U, uu, vv, ww, uv") from None
        except (TypeError, ValueError) as exc:
            raise SourceError(f"stress target dict: re_tau and the profiles must be numbers ({exc})") from None
    if not isinstance(spec, (str, os.PathLike)):
        raise SourceError(f"stress target must be a reference name, a file, a dict or a StressTarget, "
                          f"got {type(spec).__name__}")
    key = str(spec).strip().lower()
    if key in REFERENCES:
        return reference_target(load_reference(key))
    path = os.fspath(spec)
    if not os.path.exists(path):
        raise SourceError(f"stress target {spec!r} is neither a packaged reference ({', '.join(REFERENCES)}) "
                          "nor an existing file")
    try:
        if path.endswith(".npz"):
            with np.load(path) as z:
                cols = {k: z[k] for k in ("y_delta", "U", *STATS)}
                file_re = float(z["re_tau"]) if "re_tau" in z else None
        else:
            data = np.loadtxt(path, delimiter="," if path.endswith(".csv") else None, skiprows=1, ndmin=2)
            if data.shape[1] < 6:
                raise SourceError(f"stress target file {path}: {data.shape[1]} columns; need y/h, U+, uu+, vv+, ww+, uv+")
            cols = dict(zip(("y_delta", "U", *STATS), data[:, :6].T))
            file_re = None
    except SourceError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SourceError(f"stress target file {path}: {exc}") from None
    rt = file_re if file_re is not None else re_tau
    if rt is None:
        raise SourceError(f"stress target file {path} does not give re_tau; pass re_tau")
    try:
        rt = float(rt)
    except (TypeError, ValueError):
        raise SourceError(f"stress target file {path}: re_tau must be a number, got {rt!r}") from None
    target = StressTarget(name=os.path.basename(path), re_tau=rt, **cols)
    # a file's sign convention is the commonest slip: <u'v'> is negative on the lower half (the
    # shear stress carries momentum to the wall); a column that is mostly positive holds -<u'v'>
    uv, y = target.uv, target.y_delta
    if np.trapezoid(uv, y) > 0.5 * np.trapezoid(np.abs(uv), y):
        raise SourceError(f"stress target file {path}: uv+ is positive over most of the lower half (integral "
                          f"{np.trapezoid(uv, y):+.4g}); <u'v'>+ is negative there (about -0.4 integrated at "
                          "Re_tau 180): the file seems to hold -<u'v'>+; negate that column")
    return target


def reference_target(ref: Any) -> StressTarget:
    """A :class:`cfdseed.reference.Reference` (published profiles) as a :class:`StressTarget`."""
    p = ref.profiles
    keep = ref.y_delta <= 1.0
    return StressTarget(name=ref.name, re_tau=ref.re_tau, y_delta=ref.y_delta[keep], U=p["U+"][keep],
                        uu=p["u'+"][keep] ** 2, vv=p["v'+"][keep] ** 2, ww=p["w'+"][keep] ** 2, uv=p["uv+"][keep])


#: How far (a factor either way) ``calibrate="model"`` carries a model's statistics where Lee & Moser
#: has no profile (below Re_tau 173.4).
MODEL_CARRY = 2.0


def resolve_target(spec: Any, re_tau: float, model: StressTarget | None = None) -> StressTarget:
    """The stress target a source's ``calibrate`` option names, for a field at ``re_tau``.

    ``"model"``: ``model`` (a generator's stored training statistics) when given and its Re_tau
    is within 10 % of ``re_tau``, carried to ``re_tau`` (:meth:`StressTarget.at_re_tau`: near-wall
    peaks stay at their y+), else ``"reference"``: the Lee & Moser statistics at ``re_tau``
    (:func:`cfdseed.reference.interpolate_reference`: a packaged profile, or interpolated between
    two); outside Lee & Moser's range ``"model"`` carries the model's statistics up to a factor
    :data:`MODEL_CARRY` away (a RuntimeWarning says so: Re_tau 90 to 173 with a Re_tau 180 model);
    anything else goes to :func:`stress_target` (a reference name, a file, a dict, a
    StressTarget), a file that gives no Re_tau (text/CSV) being a target at ``re_tau``.

    Raises
    ------
    SourceError
        ``re_tau`` outside the packaged range (for "model"/"reference"), or a bad target.
    """
    from .reference import interpolate_reference

    if isinstance(spec, str) and spec in ("model", "reference"):
        if spec == "model" and model is not None and abs(re_tau / model.re_tau - 1.0) <= 0.1:
            return model.at_re_tau(re_tau)
        try:
            return reference_target(interpolate_reference(re_tau))
        except ValueError as exc:
            if spec == "model" and model is not None and abs(math.log(re_tau / model.re_tau)) <= math.log(MODEL_CARRY):
                warnings.warn(f"calibration target: Re_tau {re_tau:g} is outside Lee & Moser's packaged range; the "
                              f"model's own statistics (Re_tau {model.re_tau:g}) carried to it stand in",
                              RuntimeWarning, stacklevel=2)
                return model.at_re_tau(re_tau)
            raise SourceError(f"calibration target: {exc}; or give calibrate=None (an uncalibrated field)") from None
    try:
        target = stress_target(spec, re_tau=re_tau)  # a file that gives no Re_tau is a target at the field's
    except SourceError as exc:
        if isinstance(spec, str) and not os.path.exists(spec):  # a typo of the option's vocabulary?
            raise SourceError(f"{exc}; calibrate takes 'model', 'reference', a reference name, a target file "
                              "or None (off)") from None
        raise
    if abs(math.log(target.re_tau / re_tau)) > math.log(1.1):
        warnings.warn(f"calibration target {target.name!r} is at Re_tau {target.re_tau:g}, the field at {re_tau:g}: "
                      "its profiles are mapped in outer units (y/h), so its near-wall peaks land at other y+ and "
                      "its bulk velocity is its own; give calibrate='reference' (Lee & Moser at the field's Re_tau) "
                      "or a target at it", RuntimeWarning, stacklevel=2)
    return target


#: A dataset's samples are grouped by time (their moments taken about each time's plane mean) when
#: every time holds at least this many distinct x-planes.
MIN_PLANES_PER_TIME = 8


def _time_groups(ds: Any, idx: np.ndarray) -> np.ndarray | None:
    """Group number of each sample of ``idx`` (sorted) by its time, or None when the dataset does not
    record times and x positions or some time holds fewer than :data:`MIN_PLANES_PER_TIME` x-planes."""
    if ds.t is None or ds.x is None or idx.size == 0:
        return None
    _, group = np.unique(ds.t[idx], return_inverse=True)
    pairs = np.unique(np.stack([group, np.round(ds.x[idx], 12)]), axis=1)
    if np.bincount(pairs[0].astype(np.int64)).min() < MIN_PLANES_PER_TIME:
        return None
    return group


def dataset_target(path: str | os.PathLike, indices: np.ndarray | None = None, *, chunk: int = 64,
                   name: str | None = None) -> StressTarget:
    """The one-point statistics of a slice dataset's samples as a :class:`StressTarget`.

    One streaming pass (float64 sums) over the samples ``indices`` (default all) and z: the mean
    profile and the second moments, folded onto the lower half (``<u'v'>`` changing sign), in wall
    units of the dataset (``u_tau``), at its ``re_tau``. What a generator trained on the data is
    calibrated to by default (stored in its checkpoint). Where the dataset records each sample's
    time and x and every time holds at least :data:`MIN_PLANES_PER_TIME` x-planes (a solver's
    snapshots), the moments are taken about each time's own plane mean (its planes and z), as a
    solver's plane averages are: the slow wandering of the plane mean itself (the bulk velocity's
    excursions) is no turbulence (in the campaign's reference it added 0.066 to the volume TKE,
    3.7 %). Otherwise about the mean of all samples.
    """
    from .slices import open_dataset

    with open_dataset(path, check_finite=False) as ds:
        y, ly = np.asarray(ds.y, dtype=np.float64), float(ds.attrs["ly"])
        u_tau, re_tau = float(ds.attrs["u_tau"]), float(ds.attrs["re_tau"])
        idx = np.arange(ds.n) if indices is None else np.sort(np.asarray(indices, dtype=np.int64))
        group = _time_groups(ds, idx)
        ngroups = 1 if group is None else int(group.max()) + 1
        where = np.zeros(ds.n, dtype=np.int64)
        if group is not None:
            where[idx] = group
        s1, s2, n = np.zeros((ngroups, 3, ds.ny)), np.zeros((ngroups, 4, ds.ny)), np.zeros(ngroups)
        for part, block in ds.iter_chunks(chunk, idx):
            b = block.astype(np.float64)  # (k, 3, ny, nz)
            g = where[part]
            np.add.at(s1, g, b.sum(axis=3))
            np.add.at(s2, g, np.stack([(b[:, 0] ** 2), (b[:, 1] ** 2), (b[:, 2] ** 2), b[:, 0] * b[:, 1]],
                                      axis=1).sum(axis=3))
            np.add.at(n, g, b.shape[3])
        count = int(n.sum())
        nz = ds.nz
    if count == 0:
        raise SourceError(f"{path}: no samples to compute statistics from")
    mu = s1 / n[:, None, None]  # each group's mean profile
    m2 = (s2 - n[:, None, None] * np.stack([mu[:, 0] ** 2, mu[:, 1] ** 2, mu[:, 2] ** 2, mu[:, 0] * mu[:, 1]],
                                           axis=1)).sum(axis=0)
    return _folded_target(y, ly, s1.sum(axis=0)[0] / count, m2 / count, u_tau, re_tau,
                          name or f"{os.path.basename(os.fspath(path))} ({count // nz} samples)")


def profiles_target(y: Any, ly: float, U: Any, uu: Any, vv: Any, ww: Any, uv: Any, *, re_tau: float,
                    u_tau: float = 1.0, name: str = "profiles") -> StressTarget:
    """A :class:`StressTarget` from a solver's plane-averaged profiles over the whole channel (already
    averaged in time: each moment about the plane mean of its own instant), folded onto the lower
    half as :func:`dataset_target` does, in wall units (``u_tau``)."""
    y = np.asarray(y, dtype=np.float64)
    cols = [np.asarray(a, dtype=np.float64) for a in (U, uu, vv, ww, uv)]
    if y.ndim != 1 or any(c.shape != y.shape for c in cols):
        raise SourceError(f"profiles: every profile needs {y.size} values, one per y")
    order = np.argsort(y)
    cols = [c[order] for c in cols]
    return _folded_target(y[order], float(ly), cols[0], np.stack(cols[1:]), float(u_tau), float(re_tau), name)


def _folded_target(y: np.ndarray, ly: float, mean_u: np.ndarray, mom: np.ndarray, u_tau: float, re_tau: float,
                   name: str) -> StressTarget:
    """Profiles over the channel (mean u, moments uu, vv, ww, uv on ascending ``y``) folded onto the
    lower half (uv changing sign), the wall and the centre added, in wall units."""
    h = 0.5 * ly
    lower = y <= h + 1e-12 * ly
    eta = y[lower] / h
    if eta[-1] < 1.0 - 1e-12:
        eta = np.append(eta, 1.0)  # the centre, from both sides (uv folds to 0 there)

    def fold(a: np.ndarray, sign: float = 1.0) -> np.ndarray:  # average with the mirror row (y -> ly - y)
        return 0.5 * (np.interp(eta, y / h, a) + sign * np.interp(eta, (ly - y[::-1]) / h, a[::-1]))

    keep = (eta > 0) if y[0] > 0 else slice(None)
    cols = {"U": fold(mean_u), "uu": fold(mom[0]), "vv": fold(mom[1]), "ww": fold(mom[2]), "uv": fold(mom[3], -1.0)}
    y_d = eta[keep]
    out = {k: v[keep] / (u_tau if k == "U" else u_tau**2) for k, v in cols.items()}
    if y_d[0] > 0:  # the wall itself: no velocity, no stress
        y_d = np.r_[0.0, y_d]
        out = {k: np.r_[0.0, v] for k, v in out.items()}
    return StressTarget(name=name, re_tau=re_tau, y_delta=y_d, **out)
