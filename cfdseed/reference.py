"""Published DNS statistics of turbulent channel flow shipped as package data, and their loader.

``load_reference(name)`` returns a :class:`Reference` with the profiles in wall units on the
published points (lower half channel, 0 <= y/delta <= 1)::

    from cfdseed.reference import load_reference
    ref = load_reference("lee-moser-180")
    ref.re_tau, ref.yplus, ref.profiles["U+"], ref.profiles["u'+"]
    ref.interpolate([5.0, 15.0, 30.0])      # {"U+": ..., ...} at those y+ (NaN outside the data)

Names (:data:`REFERENCES`): ``lee-moser-180, lee-moser-550, lee-moser-1000, lee-moser-2000,
lee-moser-5200`` (M. Lee & R. D. Moser, J. Fluid Mech. 774, 395-415, 2015) and ``mkm-180``
(R. D. Moser, J. Kim & N. N. Mansour, Phys. Fluids 11, 943-945, 1999). Files, provenance and
citations: ``cfdseed/reference_data/README.md``.

Profiles: ``U+`` mean streamwise velocity, ``u'+, v'+, w'+`` rms fluctuations, ``uv+`` Reynolds
shear stress <u'v'>+ (negative in the lower half), all available for every reference.
:data:`KAPPA` is the von Karman constant that the sources and the synthesis use.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["KAPPA", "REFERENCES", "Reference", "load_reference", "nearest_reference", "interpolate_reference",
           "reference_dir", "compare_profiles", "INNER_LIMIT", "OUTER_LIMIT", "RANGE_SLACK"]

#: von Karman constant of the log law ``U+ = ln(y+) / KAPPA + B``: the one value of Reichardt's
#: profile (:mod:`cfdseed.sources.baselines`) and of the log-law bulk-velocity shift (:mod:`cfdseed.synthesis`).
KAPPA = 0.41

#: name -> (loader kind, files, Re_tau, citation)
REFERENCES: dict[str, tuple[str, tuple[str, ...], float, str]] = {}
_LM = ("M. Lee & R. D. Moser, Direct numerical simulation of turbulent channel flow up to "
       "Re_tau = 5200, J. Fluid Mech. 774, 395-415 (2015)")
_MKM = ("R. D. Moser, J. Kim & N. N. Mansour, Direct numerical simulation of turbulent channel "
        "flow up to Re_tau = 590, Phys. Fluids 11, 943-945 (1999)")
REFERENCES["lee-moser-180"] = ("lm180", ("LM_Channel_0180_mean_prof.dat", "LM_Channel_0180_vel_fluc_prof.dat"),
                               182.088, _LM)
for _r, _re in ((550, 543.496), (1000, 1000.512), (2000, 1994.756), (5200, 5185.897)):
    REFERENCES[f"lee-moser-{_r}"] = ("lm", (f"LM_Channel_{_r:04d}_mean_prof.dat", f"LM_Channel_Retau{_r}.txt"), _re, _LM)
REFERENCES["mkm-180"] = ("mkm", ("chan180.means", "chan180.reystress"), 178.12, _MKM)

PROFILES = ("U+", "u'+", "v'+", "w'+", "uv+")


def reference_dir() -> Path:
    """Folder of the packaged reference files."""
    return Path(__file__).resolve().parent / "reference_data"


@dataclass(frozen=True)
class Reference:
    """Published channel statistics in wall units.

    Attributes
    ----------
    name, re_tau, citation, files
        Identification; ``files`` are the packaged file names.
    yplus, y_delta : (n,) ndarray
        Wall distance in wall units and over the half-height, increasing from the wall.
    profiles : dict
        ``"U+", "u'+", "v'+", "w'+", "uv+"`` -> (n,) ndarray.
    """

    name: str
    re_tau: float
    citation: str
    files: tuple[str, ...]
    yplus: np.ndarray
    y_delta: np.ndarray
    profiles: dict[str, np.ndarray]

    def interpolate(self, yplus: Sequence[float] | np.ndarray) -> dict[str, np.ndarray]:
        """Profiles linearly interpolated to ``yplus``; NaN outside ``[0, re_tau]``.

        Files that stop short of the centre (Lee & Moser: y/delta = 0.9916) are completed with the
        mirror image of their last point about the centre (uv+ changes sign there), so the centre
        value is the symmetric interpolation.
        """
        yp = np.asarray(yplus, dtype=np.float64)
        x, prof = self.yplus, dict(self.profiles)
        if self.y_delta[-1] < 1.0:
            x = np.append(x, 2 * self.re_tau - x[-1])
            prof = {k: np.append(v, -v[-1] if k == "uv+" else v[-1]) for k, v in prof.items()}
        tol = 1e-9 * self.re_tau  # the wall point of some files sits at y+ ~ 1e-14, not 0
        inside = (yp >= x[0] - tol) & (yp <= self.re_tau + tol)
        return {k: np.where(inside, np.interp(yp, x, v), np.nan) for k, v in prof.items()}

    def centreline(self) -> float:
        """U+ at the last published point (the centre, or as near as the data go)."""
        return float(self.profiles["U+"][-1])


def _rms(var: np.ndarray) -> np.ndarray:
    return np.sqrt(np.maximum(var, 0.0))


def _load(kind: str, files: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    d = reference_dir()
    if kind == "lm180":
        m = np.loadtxt(d / files[0], comments="%")
        f = np.loadtxt(d / files[1], comments="%")
        prof = {"U+": m[:, 2], "u'+": _rms(f[:, 2]), "v'+": _rms(f[:, 3]), "w'+": _rms(f[:, 4]), "uv+": f[:, 5]}
        return m[:, 1], m[:, 0], prof
    if kind == "lm":
        m = np.loadtxt(d / files[0], comments="%")
        t = np.loadtxt(d / files[1], comments="#", skiprows=_header_rows(d / files[1]))
        prof = {"U+": m[:, 2], "u'+": _rms(t[:, 12]), "v'+": _rms(t[:, 16]), "w'+": _rms(t[:, 20]), "uv+": t[:, 13]}
        return m[:, 1], m[:, 0], prof
    m = np.loadtxt(d / files[0], comments="#")
    r = np.loadtxt(d / files[1], comments="#")
    prof = {"U+": m[:, 2], "u'+": _rms(r[:, 2]), "v'+": _rms(r[:, 3]), "w'+": _rms(r[:, 4]), "uv+": r[:, 5]}
    return m[:, 1], m[:, 0], prof


def _header_rows(path: Path) -> int:
    """1 when the first line is an uncommented header (some repackaged files have one), else 0."""
    with open(path) as fh:
        first = fh.readline().lstrip()
    return 0 if not first or first[0] in "#%0123456789+-." else 1


def load_reference(name: str) -> Reference:
    """Load a packaged reference by name (see :data:`REFERENCES`).

    Raises
    ------
    ValueError
        Unknown name (the message lists the available ones).
    """
    key = str(name).strip().lower()
    if key not in REFERENCES:
        raise ValueError(f"unknown reference {name!r}; available: {', '.join(REFERENCES)}")
    kind, files, re_tau, citation = REFERENCES[key]
    yplus, y_delta, prof = _load(kind, files)
    order = np.argsort(yplus)
    return Reference(name=key, re_tau=re_tau, citation=citation, files=files, yplus=yplus[order],
                     y_delta=y_delta[order], profiles={k: v[order] for k, v in prof.items()})


def nearest_reference(re_tau: float) -> str:
    """Name of the Lee & Moser reference whose Re_tau is nearest ``re_tau`` (in log scale)."""
    r = float(re_tau)
    if not math.isfinite(r) or r <= 0:
        raise ValueError(f"re_tau must be a positive finite number, got {re_tau!r}")
    names = [n for n in REFERENCES if n.startswith("lee-moser")]
    return min(names, key=lambda n: abs(math.log(REFERENCES[n][2] / r)))


#: Interpolation in Re_tau (:func:`interpolate_reference`): below this y+ the profiles are taken at
#: fixed y+ (wall scaling) ...
INNER_LIMIT = 30.0
#: ... above this y/delta at fixed y/delta (outer scaling); in between the two are blended
#: linearly in log y.
OUTER_LIMIT = 0.3
#: A target Re_tau up to this factor outside the packaged Lee & Moser range takes the end profile.
RANGE_SLACK = 1.05


def _lee_moser() -> list[tuple[float, str]]:
    return sorted((REFERENCES[n][2], n) for n in REFERENCES if n.startswith("lee-moser"))


def interpolate_reference(re_tau: float) -> Reference:
    """Lee & Moser statistics at ``re_tau``, interpolated between the packaged Re_tau.

    The rule: between the packaged references ``a < re_tau < b`` every profile is interpolated
    linearly in ``ln Re_tau`` (the log law makes U+ at fixed y/delta linear in it), at fixed ``y+``
    near the wall (``y+ <= INNER_LIMIT``, wall scaling), at fixed ``y/delta`` in the outer layer
    (``y/delta >= OUTER_LIMIT``, outer scaling), and as a blend of the two, linear in ``ln y``, in
    between; the points are those of ``a`` (its y+ below INNER_LIMIT, its y/delta beyond). A
    packaged Re_tau gives that reference itself; a target
    up to :data:`RANGE_SLACK` times outside the packaged range the end reference.

    Raises
    ------
    ValueError
        ``re_tau`` not a positive number, or outside the packaged range by more than RANGE_SLACK.
    """
    r = float(re_tau)
    if not math.isfinite(r) or r <= 0:
        raise ValueError(f"re_tau must be a positive finite number, got {re_tau!r}")
    known = _lee_moser()
    lo, hi = known[0][0], known[-1][0]
    if not lo / RANGE_SLACK <= r <= hi * RANGE_SLACK:
        raise ValueError(f"Re_tau = {r:.6g} is outside the packaged Lee & Moser range "
                         f"[{lo:.6g}, {hi:.6g}] (accepted down to {lo / RANGE_SLACK:.4g} and up to "
                         f"{hi * RANGE_SLACK:.4g}); pass a target file for other Reynolds numbers")
    for rk, name in known:
        if abs(r / rk - 1.0) <= 1e-9 or (r < lo and rk == lo) or (r > hi and rk == hi):
            return load_reference(name)
    (ra, na), (rb, nb) = next((known[i], known[i + 1]) for i in range(len(known) - 1) if known[i][0] < r < known[i + 1][0])
    a, b = load_reference(na), load_reference(nb)
    theta = math.log(r / ra) / math.log(rb / ra)
    # points: a's in wall units near the wall (fixed y+: profiles there are linear in ln Re_tau at
    # every y+, so monotone), a's in outer units beyond
    yplus = np.concatenate([a.yplus[a.yplus <= INNER_LIMIT], a.y_delta[a.y_delta * r > INNER_LIMIT] * r])
    eta = yplus / r
    # blend weight of the outer representation: 0 at y+ <= INNER_LIMIT, 1 at y/delta >= OUTER_LIMIT
    lo_y, hi_y = INNER_LIMIT / r, OUTER_LIMIT
    with np.errstate(divide="ignore"):
        w = np.clip((np.log(np.maximum(eta, 1e-300)) - math.log(lo_y)) / math.log(hi_y / lo_y), 0.0, 1.0)
    prof = {}
    for k in PROFILES:
        inner = (1 - theta) * np.interp(yplus, a.yplus, a.profiles[k]) + theta * np.interp(yplus, b.yplus, b.profiles[k])
        outer = (1 - theta) * np.interp(eta, a.y_delta, a.profiles[k]) + theta * np.interp(eta, b.y_delta, b.profiles[k])
        prof[k] = (1 - w) * inner + w * outer
    return Reference(name=f"lee-moser interpolated to Re_tau {r:.6g} (between {na} and {nb})", re_tau=r,
                     citation=a.citation, files=a.files + b.files, yplus=yplus, y_delta=eta, profiles=prof)


def _symmetric_fit(y: np.ndarray, full: np.ndarray, ly: float, sym: int) -> np.ndarray:
    """Chebyshev coefficients of the symmetrised (``sym`` +1) or antisymmetrised full-channel profile."""
    from numpy.polynomial import chebyshev as cheb

    prof = 0.5 * (full + sym * full[::-1])
    return cheb.chebfit(2 * y / ly - 1, prof, y.size - 1)


def compare_profiles(y: np.ndarray, full: dict[str, np.ndarray], ly: float, nu: float, u_tau: float = 1.0,
                     reference: str = "lee-moser-180") -> dict[str, object]:
    """A channel's mean profiles against a published reference, in the channel's own wall units.

    ``y`` (ny,) Chebyshev points of the full channel (walls at 0 and ``ly``), ``full`` time-averaged
    ``U, uu, vv, ww, uv`` on them (second moments about the mean), ``u_tau`` the friction velocity
    that sets the wall units (1 for the imposed body force; sqrt of the measured mean wall shear
    under a held flow rate). Halves are folded (uv antisymmetric). Returns ``re_tau`` (u_tau h / nu),
    ``u_plus_rel_l2`` (relative L2 of U+ over the reference points up to the centre, trapezoid rule),
    ``centreline_u_plus``, ``peaks`` and ``reference_peaks`` (``{"u'+": (value, y+)}``, ...),
    ``peak_u_rel_err``, ``min_uv_plus`` and ``reference_min_uv_plus``, and ``curves`` (the
    evaluated profiles, for plots).
    """
    from numpy.polynomial import chebyshev as cheb

    ref = load_reference(reference)
    h = ly / 2
    re_tau = u_tau * h / nu
    yp_ref = ref.yplus[ref.yplus <= re_tau]
    to_s = lambda yplus: 2 * (yplus * nu / u_tau) / ly - 1  # noqa: E731 - y+ -> Chebyshev coordinate
    cU = _symmetric_fit(y, full["U"] / u_tau, ly, +1)
    U = cheb.chebval(to_s(yp_ref), cU)
    Uref = np.interp(yp_ref, ref.yplus, ref.profiles["U+"])
    l2 = math.sqrt(np.trapezoid((U - Uref) ** 2, yp_ref) / np.trapezoid(Uref**2, yp_ref))
    fine = np.linspace(0, re_tau, 2001)
    rms = {}
    for k, key in (("uu", "u'+"), ("vv", "v'+"), ("ww", "w'+")):
        var = cheb.chebval(to_s(fine), _symmetric_fit(y, full[k] / u_tau**2, ly, +1))
        rms[key] = np.sqrt(np.maximum(var, 0))
    uv = cheb.chebval(to_s(fine), _symmetric_fit(y, full["uv"] / u_tau**2, ly, -1))
    peak = {k: (float(v.max()), float(fine[np.argmax(v)])) for k, v in rms.items()}
    ref_peak = {k: (float(ref.profiles[k].max()), float(ref.yplus[np.argmax(ref.profiles[k])])) for k in rms}
    return dict(
        reference=ref.name, reference_re_tau=ref.re_tau, re_tau=re_tau, u_tau=u_tau,
        u_plus_rel_l2=l2, centreline_u_plus=float(cheb.chebval(0.0, cU)),
        reference_centreline_u_plus=ref.centreline(), peaks=peak, reference_peaks=ref_peak,
        peak_u_rel_err=abs(peak["u'+"][0] / ref_peak["u'+"][0] - 1),
        min_uv_plus=float(uv.min()), reference_min_uv_plus=float(ref.profiles["uv+"].min()),
        curves=dict(yp_ref=yp_ref, U=U, fine=fine, rms=rms, uv=uv),
    )
