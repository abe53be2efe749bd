"""Reynolds-stress calibration of a solenoidal channel field: targets and the v-eta construction.

A **target** (:class:`StressTarget`) holds one-point statistics of a channel in wall units on the
lower half, ``y/h`` from 0 to 1: the mean ``U+`` and ``<u'u'>+, <v'v'>+, <w'w'>+, <u'v'>+``
(negative in the lower half). :func:`stress_target` makes one from a packaged reference by name
(``lee-moser-180`` ... , ``mkm-180``: :mod:`cfdseed.reference`), from a user file (CSV/text with
the columns ``y/h, U+, uu+, vv+, ww+, uv+``, or ``.npz`` with those keys: ``y_delta, U, uu, vv,
ww, uv``) or from a generator checkpoint's stored training statistics. :meth:`StressTarget.on_grid`
gives the profiles on a grid's y in the field's velocity units (both halves, ``<u'v'>`` changing
sign at the centre): :class:`Stresses`.

The **calibration** (:func:`calibrate_spectrum`, run by :func:`cfdseed.enforce.enforce` when it
is given ``stresses``) works on the field's Fourier coefficients in x and z, where a discretely
solenoidal field with no-slip walls is fixed by its wall-normal velocity ``v`` and wall-normal
vorticity ``eta = i kz u - i kx w`` (``k`` the operator set's wavenumbers): per mode
``u = (i kx D v - i kz eta) / k2``, ``w = (i kz D v + i kx eta) / k2`` satisfies continuity at
every checked row whatever ``v`` and ``eta`` are. Per row ``y``:

1. the mean profile is set to the target's (its end values tied so that its wall value is zero),
   the mean cross-flow to zero;
2. ``v`` is scaled by ``s_v(y)``, taken from a joint least-squares fit of all four stresses per
   row (the field's ``v`` spectrum may not allow ``<v'v'>`` and ``<w'w'>`` both near a wall: the
   ``v`` it takes feeds ``u`` and ``w`` through continuity), smoothed over rows (its derivative
   enters d/dy of the rescaled ``v``) and kept in [1/32, 32] (a coarse grid's field may carry only a
   small part of the target's ``v`` near the wall);
3. ``eta`` becomes ``(a + c g) eta + b i kz v``, ``g = (kx2 - kz2) / k2`` (streak-like modes,
   ``g ~ -1``, feed ``u``; spanwise ones, ``g ~ 1``, feed ``w``), and ``i kz v`` is the lift-up
   term that carries ``<u'v'>``: the three numbers ``a, c, b`` per row are fitted (damped
   Gauss-Newton, exactly where the field allows) to ``<u'u'>``, ``<w'w'>`` and ``<u'v'>``;
4. ``u`` and ``w`` are rebuilt from ``v`` and ``eta``.

Residuals are weighted by the local target plus 2 % of the profile's largest value, so near-wall
rows count without dividing by zero. Modes that the operators resolve poorly are left alone
(central differences: ``|m| > n/3``, where ``sin(k dx)/dx`` falls below 83 % of ``k`` and
dividing by it amplifies), and their share of each statistic is accounted for. On grids with
points on both walls under central differences the rebuilt field is divergence-free and no-slip as
it stands; otherwise (the wall-nearest values tied by the extrapolation, or the spectral
interpolant's wall values) the end rows are tied again and the projection applied after each pass.
Passes: two with steps 1-4, a third with steps 1, 3, 4 (``max_iter``), fewer when nothing changes by
more than ``tol``. The residual errors are reported (:class:`CalibrationInfo`); one beyond
:data:`ACCEPT` on the rows the grid resolves (``Stresses.resolved``) means the target is out of
the field's reach: :class:`~cfdseed.errors.SourceError`.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import CalibrationError, SourceError

__all__ = ["StressTarget", "Stresses", "CalibrationInfo", "stress_target", "reference_target", "resolve_target",
           "dataset_target", "profiles_target", "calibrate_spectrum", "moments", "DEFAULT_TOL", "DEFAULT_MAX_ITER", "ACCEPT"]

#: Passes end when no statistic changed by more than this (relative to its profile's largest value).
DEFAULT_TOL = 2e-3
#: Passes at most: the first two rescale v and eta, the others eta only (module docstring).
DEFAULT_MAX_ITER = 3
_V_PASSES = 2
#: Size of the blocks of kx in which the calibration rescales v and takes its d/dy.
_BLOCK_BYTES = 4 << 20
#: A calibrated statistic further than this from its target (relative to the profile's largest
#: value) on the rows the grid resolves means the target is out of this field's reach: SourceError.
ACCEPT = 0.2
_SCALE_MAX = 32.0  # bounds of the v scaling per row
_FLOOR = 0.02  # residual weights: |target| + _FLOOR * max |target| (near-wall rows count, none divides by 0)
_STATS = ("uu", "vv", "ww", "uv")
_Y_COVER = 0.05  # a target must reach within this many half-heights of the wall and of the centre


@dataclass(frozen=True)
class Stresses:
    """Target profiles on a grid's y (both halves), in the field's velocity units: ``(ny,)`` each.

    ``resolved`` (optional, bool ``(ny,)``) marks the rows whose statistics the grid can carry (the
    others: too close to a wall for its x/z spacing, see :meth:`StressTarget.on_grid`); the
    acceptance limit :data:`ACCEPT` applies there only. None: every row.
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
                  for k in ("y_delta", "U", *_STATS)}
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
        if not (math.isfinite(self.re_tau) and self.re_tau > 0):
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

    def to_dict(self) -> dict[str, Any]:
        """Plain data (lists), e.g. for a checkpoint's metadata; :func:`stress_target` reads it back."""
        return {"name": self.name, "re_tau": float(self.re_tau),
                **{k: np.asarray(getattr(self, k)).tolist() for k in ("y_delta", "U", *_STATS)}}


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
        Friction Reynolds number of a file target (required where the file does not say).

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
                                **{k: np.asarray(spec[k], dtype=np.float64) for k in ("y_delta", "U", *_STATS)})
        except KeyError as exc:
            raise SourceError(f"stress target dict lacks {exc.args[0]!r}; needs re_tau, y_delta, U, uu, vv, ww, uv") from None
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
                cols = {k: z[k] for k in ("y_delta", "U", *_STATS)}
                file_re = float(z["re_tau"]) if "re_tau" in z else None
        else:
            data = np.loadtxt(path, delimiter="," if path.endswith(".csv") else None, skiprows=1, ndmin=2)
            if data.shape[1] < 6:
                raise SourceError(f"stress target file {path}: {data.shape[1]} columns; need y/h, U+, uu+, vv+, ww+, uv+")
            cols = dict(zip(("y_delta", "U", *_STATS), data[:, :6].T))
            file_re = None
    except SourceError:
        raise
    except (OSError, ValueError, KeyError) as exc:
        raise SourceError(f"stress target file {path}: {exc}") from None
    rt = re_tau if re_tau is not None else file_re
    if rt is None:
        raise SourceError(f"stress target file {path} does not give re_tau; pass re_tau")
    return StressTarget(name=os.path.basename(path), re_tau=float(rt), **cols)


def reference_target(ref: Any) -> StressTarget:
    """A :class:`cfdseed.reference.Reference` (published profiles) as a :class:`StressTarget`."""
    p = ref.profiles
    keep = ref.y_delta <= 1.0
    return StressTarget(name=ref.name, re_tau=ref.re_tau, y_delta=ref.y_delta[keep], U=p["U+"][keep],
                        uu=p["u'+"][keep] ** 2, vv=p["v'+"][keep] ** 2, ww=p["w'+"][keep] ** 2, uv=p["uv+"][keep])


def resolve_target(spec: Any, re_tau: float, model: StressTarget | None = None) -> StressTarget:
    """The stress target a source's ``calibrate`` option names, for a field at ``re_tau``.

    ``"model"``: ``model`` (a generator's stored training statistics) when given and its Re_tau
    is within 10 % of ``re_tau``, else ``"reference"``: the Lee & Moser statistics at ``re_tau``
    (:func:`cfdseed.reference.interpolate_reference`: a packaged profile, or interpolated between
    two); anything else goes to :func:`stress_target` (a reference name, a file, a dict, a
    StressTarget).

    Raises
    ------
    SourceError
        ``re_tau`` outside the packaged range (for "model"/"reference"), or a bad target.
    """
    from .reference import interpolate_reference

    if isinstance(spec, str) and spec in ("model", "reference"):
        if spec == "model" and model is not None and abs(re_tau / model.re_tau - 1.0) <= 0.1:
            return model
        try:
            return reference_target(interpolate_reference(re_tau))
        except ValueError as exc:
            raise SourceError(f"calibration target: {exc}") from None
    return stress_target(spec)


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


# ---------------------------------------------------------------------------------------------
# statistics of a spectrum
# ---------------------------------------------------------------------------------------------
def _kz_weights(nz: int) -> np.ndarray:
    """Weights of the rfft coefficients in Parseval sums: 1 for the mean and Nyquist, else 2."""
    w = np.full(nz // 2 + 1, 2.0)
    w[0] = 1.0
    if nz % 2 == 0:
        w[-1] = 1.0
    return w


def _sum(comm: Any, a: np.ndarray) -> np.ndarray:
    """``a`` summed over the ranks of ``comm`` (None: ``a`` itself)."""
    if comm is None:
        return a
    out = np.empty_like(a)
    comm.Allreduce(np.ascontiguousarray(a), out)
    return out


def moments(spec: np.ndarray, nx: int, nz: int, *, comm: Any = None, kz_range: slice | None = None) -> dict[str, np.ndarray]:
    """Plane-mean profiles and one-point second moments per row from a spectrum.

    ``spec`` (3, nx, ny, nz // 2 + 1): the x-FFT of the z-rfft of a field (u, v, w). Returns
    ``U, V, W`` and ``uu, vv, ww, uv`` (each ``(ny,)``; fluctuations about the plane mean).
    One 3 x 3 Gram matrix per row (Parseval), a loop over y: no field-sized temporaries.
    Distributed (:mod:`cfdseed.pencils`): ``spec`` holds the rfft modes ``kz_range`` on each rank
    of ``comm`` and the sums are reduced over the ranks (collective).
    """
    ny = spec.shape[2]
    kz_range = kz_range or slice(0, nz // 2 + 1)
    wsq = np.sqrt(_kz_weights(nz)[kz_range]) / (nx * nz)  # (nkz,)
    has_mean = kz_range.start == 0 and spec.shape[3] > 0
    means = np.zeros((3, ny))
    if has_mean:
        means[:] = spec[:, 0, :, 0].real / (nx * nz)
    mom = np.empty((ny, 3, 3))
    for j in range(ny):
        r = spec[:, :, j, :] * wsq  # (3, nx, nkz)
        if has_mean:
            r[:, 0, 0] = 0.0  # the mean mode is not a fluctuation
        r = r.view(np.float64).reshape(3, -1)  # Re(a conj b) = ar br + ai bi
        mom[j] = r @ r.T
    means, mom = _sum(comm, means), _sum(comm, mom)
    out = {name: means[c] for c, name in enumerate("UVW")}
    out.update(uu=mom[:, 0, 0], vv=mom[:, 1, 1], ww=mom[:, 2, 2], uv=mom[:, 0, 1])
    return out


# ---------------------------------------------------------------------------------------------
# calibration
# ---------------------------------------------------------------------------------------------
@dataclass
class CalibrationInfo:
    """What :func:`calibrate_spectrum` did: passes, largest relative errors before/after, time."""

    iterations: int = 0
    before: dict[str, float] = field(default_factory=dict)
    after: dict[str, float] = field(default_factory=dict)
    change: float = math.inf  #: largest change of a statistic in the last pass (relative)
    converged: bool = False
    seconds: float = 0.0
    #: errors after, over the rows the grid resolves (``Stresses.resolved``; all rows without it)
    resolved: dict[str, float] = field(default_factory=dict)
    unresolved_rows: int = 0  #: rows left out of ``resolved`` (too near a wall for the x/z spacing)

    def to_dict(self) -> dict[str, Any]:
        return {"iterations": self.iterations, "before": dict(self.before), "after": dict(self.after),
                "resolved": dict(self.resolved), "unresolved_rows": self.unresolved_rows,
                "change": self.change, "converged": self.converged, "seconds": self.seconds}


def _errors(mom: dict[str, np.ndarray], target: Stresses, rows: np.ndarray) -> dict[str, float]:
    """Largest |statistic - target| over ``rows``, relative to the target's largest |value|."""
    out = {}
    for name in ("U", *_STATS):
        t = getattr(target, name)
        scale = float(np.abs(t).max()) or 1.0
        out[name] = float(np.abs(mom[name][rows] - t[rows]).max()) / scale
    return out


def _resolved(n: int, kind: str, rfft: bool = False) -> np.ndarray:
    """Indices of the DFT (or rfft) coefficients the operator set resolves (central: |m| <= n/3)."""
    m = np.fft.rfftfreq(n, 1.0 / n) if rfft else np.fft.fftfreq(n, 1.0 / n)
    keep = np.abs(m) <= (n / 3 if kind == "central" else (n - 1) / 2)
    return np.flatnonzero(keep)


Residual = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def _levenberg_marquardt(resid: Residual, p: np.ndarray, iters: int = 60,
                         project: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """Damped Gauss-Newton per row, vectorised over rows: ``resid(p) -> (r (rows, m), J (rows, m, k))``
    from the start ``p`` (rows, k); ``project`` maps a trial step back into the allowed set. A row
    keeps its best point; stops early when every row's residual vanishes."""
    r, jac = resid(p)
    cost = (r * r).sum(axis=1)
    mu = np.full(p.shape[0], 1e-3)
    eye = np.eye(p.shape[1])[None]
    for _ in range(iters):
        jtj = np.einsum("rki,rkj->rij", jac, jac)
        jtr = np.einsum("rki,rk->ri", jac, r)
        diag = np.einsum("rii->ri", jtj)[:, :, None] * eye + 1e-30 * eye
        trial = p - np.linalg.solve(jtj + mu[:, None, None] * diag, jtr[:, :, None])[:, :, 0]
        if project is not None:
            trial = project(trial)
        r_new, jac_new = resid(trial)
        cost_new = (r_new * r_new).sum(axis=1)
        better = cost_new < cost
        p = np.where(better[:, None], trial, p)
        r = np.where(better[:, None], r_new, r)
        jac = np.where(better[:, None, None], jac_new, jac)
        cost = np.where(better, cost_new, cost)
        mu = np.where(better, mu * 0.3, np.minimum(mu * 10.0, 1e12))
        if cost.max() < 1e-24:
            break
    return p


def _solve_rows(gu: np.ndarray, gw: np.ndarray, h: np.ndarray, t: np.ndarray, wts: np.ndarray) -> np.ndarray:
    """Per row, ``p = (a, c, b)`` fitting ``uu = q G_u q``, ``ww = q G_w q``, ``uv = h . q``
    (``q = (1, p)``) to ``t`` (ny, 3) in least squares weighted by ``1 / wts`` (ny, 3), from
    ``p = (1, 0, 0)`` (the field as it is). ``gu, gw`` (ny, 4, 4), ``h`` (ny, 4).
    """
    ny = gu.shape[0]

    def resid(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        q = np.concatenate([np.ones((ny, 1)), p], axis=1)
        gq_u, gq_w = np.einsum("rij,rj->ri", gu, q), np.einsum("rij,rj->ri", gw, q)
        r = np.stack([np.einsum("ri,ri->r", q, gq_u), np.einsum("ri,ri->r", q, gq_w),
                      np.einsum("ri,ri->r", h, q)], axis=1) - t
        jac = np.stack([2.0 * gq_u[:, 1:], 2.0 * gq_w[:, 1:], h[:, 1:]], axis=1)  # (ny, 3, 3)
        return r / wts, jac / wts[:, :, None]

    return _levenberg_marquardt(resid, np.tile([1.0, 0.0, 0.0], (ny, 1)))


def _fit_v(gu: np.ndarray, gw: np.ndarray, h: np.ndarray, evv: np.ndarray, t: np.ndarray, wts: np.ndarray) -> np.ndarray:
    """Per row, the v factor ``s`` of the joint fit ``q = (s, a, c, b)``: ``uu = q G_u q``,
    ``vv = s^2 E``, ``ww = q G_w q``, ``uv = s (h . q)`` to ``t`` (ny, 4), weights ``1 / wts``,
    with d/dy of ``s v`` taken as ``s`` times that of ``v``, from (1, 1, 0, 0); ``s`` kept in
    [1 / _SCALE_MAX, _SCALE_MAX]."""
    ny = gu.shape[0]

    def resid(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        s = q[:, 0]
        gq_u, gq_w = np.einsum("rij,rj->ri", gu, q), np.einsum("rij,rj->ri", gw, q)
        hq = np.einsum("ri,ri->r", h, q)
        r = np.stack([np.einsum("ri,ri->r", q, gq_u), s * s * evv, np.einsum("ri,ri->r", q, gq_w), s * hq],
                     axis=1) - t
        jv = np.zeros((ny, 4))
        jv[:, 0] = 2.0 * s * evv
        juv = s[:, None] * h
        juv[:, 0] += hq
        jac = np.stack([2.0 * gq_u, jv, 2.0 * gq_w, juv], axis=1)
        return r / wts, jac / wts[:, :, None]

    def clip(q: np.ndarray) -> np.ndarray:
        q[:, 0] = np.clip(q[:, 0], 1.0 / _SCALE_MAX, _SCALE_MAX)
        return q

    return _levenberg_marquardt(resid, np.tile([1.0, 1.0, 0.0, 0.0], (ny, 1)), project=clip)[:, 0]


def _bandwidth(m: np.ndarray) -> int:
    nz = np.nonzero(m)
    return int(np.abs(nz[0] - nz[1]).max()) if nz[0].size else 0


def _smooth(a: np.ndarray, rows: np.ndarray, width: float = 1.0) -> np.ndarray:
    """``a`` smoothed over ``rows`` (Gaussian in the row index, ``width`` rows; others kept)."""
    from scipy.ndimage import gaussian_filter1d

    out = a.copy()
    out[rows] = gaussian_filter1d(a[rows], width, mode="nearest")
    return out


def calibrate_spectrum(spec: np.ndarray, grid: Any, target: Stresses, kx: np.ndarray, kz: np.ndarray,
                       reproject: Callable[[np.ndarray], None] | None, *, tol: float = DEFAULT_TOL,
                       max_iter: int = DEFAULT_MAX_ITER, comm: Any = None,
                       kz_range: slice | None = None) -> CalibrationInfo:
    """Calibrate, in place, the spectrum of a solenoidal no-slip field to ``target`` (module docstring).

    Row by row on ``spec`` itself: besides it, one array of d/dy v over the resolved modes (a third
    of the spectrum) and the arrays of one row.

    Parameters
    ----------
    spec : ndarray complex (3, nx, ny, nz // 2 + 1)
        x-FFT of the z-rfft of (u, v, w), divergence-free and no-slip under ``grid.operators``.
    grid : Grid
    target : Stresses
        Profiles on the grid's y in the field's units.
    kx, kz : ndarray
        The operator set's wavenumbers (:func:`cfdseed.operators.wavenumbers`, full and rfft order).
    reproject : callable or None
        Restores continuity and the walls in place (the enforcement's projection); None when the
        rebuilt field needs none (central operators with points on both walls).
    tol, max_iter
        Stop when every statistic is within ``tol`` of its target (relative to the profile's largest
        value); :class:`SourceError` after ``max_iter`` passes.
    comm, kz_range
        Distributed (collective): ``spec`` holds the rfft modes ``kz_range`` of every kx on each
        rank of ``comm`` (:class:`cfdseed.pencils.Slabs`); the per-row sums are reduced over the
        ranks, so every rank takes the same decisions and raises the same errors.

    Returns
    -------
    CalibrationInfo
    """
    from .operators import column

    t0 = time.perf_counter()
    nx, ny, nz = grid.shape
    col = column(grid)
    lo, hi = grid.walls
    free = np.arange(ny)[(1 if lo else 0) : ny - (1 if hi else 0)]  # rows carrying fluctuations
    info = CalibrationInfo()
    ix = _resolved(nx, grid.operators)
    kz_range = kz_range or slice(0, nz // 2 + 1)
    iz_all = _resolved(nz, grid.operators, rfft=True)
    iz_all = iz_all[(iz_all >= kz_range.start) & (iz_all < kz_range.stop)]  # this rank's (global indices)
    iz = iz_all - kz_range.start  # ... in its spectrum
    has_mean = kz_range.start == 0 and iz.size > 0  # holds the mode kx = kz = 0
    kxs, kzs = kx[ix][:, None], kz[iz_all][None, :]  # (nix, 1), (1, niz)
    k2 = kxs**2 + kzs**2
    ok = k2 > 0  # the mean mode is set separately
    k2s = np.where(ok, k2, 1.0)
    g = np.where(ok, (kxs**2 - kzs**2) / k2s, 0.0)
    wz = _kz_weights(nz)[iz_all][None, :]  # Parseval weights of the rfft coefficients
    tstack = np.stack([target.uu, target.vv, target.ww, target.uv], axis=1)  # (ny, 4)
    # residual weights: the local target, floored at a fraction of its profile's largest value
    wts = np.abs(tstack) + _FLOOR * np.abs(tstack).max(axis=0)[None, :] + 1e-300
    # the mean profile with its end values set so that its wall values are zero (a tie to the next
    # row on cell-centred grids, the interpolant's zero on spectral ones; wall points: 0)
    mean_u = np.array(target.U, dtype=np.float64)
    mean_u[[0, -1]] = -np.linalg.solve(col.walls[:, [0, -1]], col.walls[:, 1:-1] @ mean_u[1:-1])
    judged = free if target.resolved is None else free[np.asarray(target.resolved)[free]]
    target = Stresses(U=mean_u, uu=target.uu, vv=target.vv, ww=target.ww, uv=target.uv)
    mom = moments(spec, nx, nz, comm=comm, kz_range=kz_range)
    info.before = _errors(mom, target, free)
    if has_mean:
        spec[0, 0, :, 0] = mean_u * (nx * nz)  # the mean profile and no mean cross-flow
        spec[1:, 0, :, 0] = 0.0
    mom.update(U=mean_u, V=np.zeros(ny), W=np.zeros(ny))  # the moments about the mean are unchanged
    wsq = np.sqrt(wz) / (nx * nz)  # (1, niz): Parseval weights folded into the modes
    banded = _bandwidth(col.dy) <= 2

    sel = np.ix_(ix, iz)
    # kx planes per block in the d/dy of v (the one spectrum-sized temporary is d/dy v itself)
    bx = max(1, _BLOCK_BYTES // max(1, 16 * ny * iz.size))

    def rows(c: int, j: int) -> np.ndarray:
        """The resolved modes ``(nix, niz)`` of component c in row j (a copy), the mean mode zeroed."""
        r = spec[c, :, j, :][sel]
        if has_mean:
            r[0, 0] = 0.0
        return r

    def dy_v(scale: np.ndarray) -> np.ndarray:
        """d/dy of v rescaled by ``scale`` per row, over the resolved modes: ``(nix, ny, niz)``, by
        blocks of kx (by diagonals for the 3-point stencil, else a dense product)."""
        out = np.empty((ix.size, ny, iz.size), dtype=np.complex128)
        for x0 in range(0, ix.size, bx):
            v = spec[1][np.ix_(ix[x0:x0 + bx], range(ny), iz)] * scale[None, :, None]
            if has_mean and x0 == 0:
                v[0, :, 0] = 0.0
            if banded:
                o = col.dy.diagonal()[None, :, None] * v
                o[:, :-1] += col.dy.diagonal(1)[None, :, None] * v[:, 1:]
                o[:, 1:] += col.dy.diagonal(-1)[None, :, None] * v[:, :-1]
            else:
                o = np.matmul(col.dy, v)
            out[x0:x0 + bx] = o
        return out

    # per-mode coefficients of the four contributions to u and w: potential part of v (D v),
    # eta, g eta, lift-up (i kz v); (nix, niz) each, the mean mode's zero
    cu = [1j * kxs / k2s, -1j * kzs / k2s, -1j * kzs * g / k2s, kzs**2 / k2s + 0j]
    cw = [1j * kzs / k2s, 1j * kxs / k2s, 1j * kxs * g / k2s, -kxs * kzs / k2s + 0j]
    for c in (*cu, *cw):
        c[~ok] = 0.0

    def gram(parts: list[np.ndarray]) -> np.ndarray:
        """Sum over the resolved modes of one row of w Re(p_i conj p_j) / N^2: (k, k)."""
        r = np.stack(parts) * wsq  # (k, nix, niz)
        r = r.view(np.float64).reshape(len(parts), -1)  # Re(a conj b) = ar br + ai bi
        return r @ r.T

    def row_grams(scale: np.ndarray, dv: np.ndarray) -> tuple[np.ndarray, ...]:
        """Per row (the arrays of one row stay in cache), v rescaled by ``scale``: the Gram matrices
        of the contributions to u and to w (ny, 4, 4), their correlations with v (ny, 4) and <v'v'> (ny,)."""
        gu, gw, hv, evv = np.zeros((ny, 4, 4)), np.zeros((ny, 4, 4)), np.zeros((ny, 4)), np.zeros(ny)
        for j in free:
            v, eta = rows(1, j) * scale[j], 1j * kzs * rows(0, j) - 1j * kxs * rows(2, j)
            bu = [cu[0] * dv[:, j], cu[1] * eta, cu[2] * eta, cu[3] * v]
            gv = gram([*bu, v])
            gu[j], hv[j], evv[j] = gv[:4, :4], gv[:4, 4], gv[4, 4]
            gw[j] = gram([cw[0] * dv[:, j], cw[1] * eta, cw[2] * eta, cw[3] * v])
        if comm is None:
            return gu, gw, hv, evv
        flat = _sum(comm, np.concatenate([gu.ravel(), gw.ravel(), hv.ravel(), evv]))
        n16, n4 = ny * 16, ny * 4
        return (flat[:n16].reshape(ny, 4, 4), flat[n16:2 * n16].reshape(ny, 4, 4),
                flat[2 * n16:2 * n16 + n4].reshape(ny, 4), flat[2 * n16 + n4:])

    for it in range(1, max_iter + 1):
        info.iterations = it
        rest = np.zeros((ny, 4))  # the unresolved modes' share of uu, vv, ww, uv
        for j in free:
            g0 = gram([rows(0, j), rows(1, j), rows(2, j)])
            rest[j] = g0[0, 0], g0[1, 1], g0[2, 2], g0[0, 1]
        rest = _sum(comm, rest)
        rest = np.stack([mom["uu"], mom["vv"], mom["ww"], mom["uv"]], axis=1) - rest
        scale = np.ones(ny)
        dv = dy_v(scale)
        gu, gw, hv, evv = row_grams(scale, dv)
        if it <= _V_PASSES:
            # v: its factor per row from the joint fit of all four stresses (the field's v
            # spectrum may not allow <v'v'> and <w'w'> both near a wall), smoothed over rows so
            # that d/dy of the rescaled v picks up no row-to-row jumps
            logs = np.zeros(ny)
            logs[free] = np.log(_fit_v(gu[free], gw[free], hv[free], evv[free], (tstack - rest)[free], wts[free]))
            scale = np.exp(_smooth(logs, free))
            dv = dy_v(scale)
            gu, gw, hv, evv = row_grams(scale, dv)
        # eta: a, c, b per row for <u'u'>, <w'w'>, <u'v'> with v fixed (exact d/dy)
        coef = np.tile([1.0, 0.0, 0.0], (ny, 1))
        pick = [0, 2, 3]  # uu, ww, uv
        coef[free] = _solve_rows(gu[free], gw[free], hv[free], (tstack[:, pick] - rest[:, pick])[free],
                                 wts[free][:, pick])
        # the new field row by row, in place: row j's eta and v come from row j alone (d/dy v is dv)
        for j in range(ny):
            kept = spec[:, ix[0], j, iz[0]].copy() if has_mean else None  # the mean mode stays
            if j not in free:  # wall points stay exactly zero
                new = [np.zeros((ix.size, iz.size), dtype=np.complex128)] * 3
            else:
                a, c, b = coef[j]
                v, eta = rows(1, j) * scale[j], 1j * kzs * rows(0, j) - 1j * kxs * rows(2, j)
                new = [cu[0] * dv[:, j] + (a * cu[1] + c * cu[2]) * eta + b * cu[3] * v, v,
                       cw[0] * dv[:, j] + (a * cw[1] + c * cw[2]) * eta + b * cw[3] * v]
            for comp in range(3):
                spec[comp, :, j, :][sel] = new[comp]
            if has_mean:
                spec[:, ix[0], j, iz[0]] = kept
        del dv
        if reproject is not None:
            reproject(spec)
            if has_mean:
                spec[0, 0, :, 0] = mean_u * (nx * nz)
                spec[1:, 0, :, 0] = 0.0
        now = moments(spec, nx, nz, comm=comm, kz_range=kz_range)
        info.after = _errors(now, target, free)
        info.change = max(_errors(now, Stresses(**{k: mom[k] for k in ("U", *_STATS)}), free).values())
        mom = now
        if info.change <= tol or max(info.after.values()) <= tol:
            info.converged = True
            break
    info.seconds = time.perf_counter() - t0
    info.resolved = _errors(mom, target, judged) if judged.size else {}
    if judged.size < free.size:
        info.unresolved_rows = int(free.size - judged.size)
    worst = max(info.resolved, key=lambda k: info.resolved[k] if math.isfinite(info.resolved[k]) else math.inf,
                default=None)
    if worst is not None and not info.resolved[worst] <= ACCEPT:
        raise CalibrationError(f"stress calibration failed: after {info.iterations} pass(es) {worst} is "
                          f"{info.resolved[worst]:.3g} off its target (relative to the profile's largest value; "
                          f"accepted up to {ACCEPT:g}): the target is out of this field's reach")
    return info
