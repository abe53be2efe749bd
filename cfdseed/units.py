"""The unit contract of every source: one velocity scale from ``re_tau``, ``u_tau``, ``nu``, ``bulk``.

Every built-in source that produces a velocity scale takes the same four options and resolves them
with :func:`resolve_units`, so the same options give the same scale whichever source builds the
field. With ``h = ly / 2`` (the half-height of the target grid):

- ``re_tau``: given; else ``u_tau h / nu`` when both are given; else ``default_re_tau`` (180 for
  the baselines, the model's Re_tau for ``gan``);
- ``u_tau``: given; else ``re_tau nu / h`` when ``nu`` is given; else ``bulk / bulk_plus(re_tau)``
  when ``bulk`` is given; else 1 (wall units);
- ``nu``: given; else ``u_tau h / re_tau``;
- ``bulk``: given (set exactly by the source); else ``bulk_plus(re_tau) u_tau``.

``bulk_plus(re_tau)`` is the expected turbulent bulk velocity in wall units: by default
:func:`reichardt_bulk` (the bulk of Reichardt's mean profile, 15.515 at Re_tau 180); ``gan`` passes
its calibration target's (the default; uncalibrated, the generated field's bulk plus the log-law
shift), a calibrated ``sem`` its target's. So ``{}`` and ``{"re_tau": 180}`` give
wall units (u_tau = 1) with bulk 15.515 (``gan``, ``sem``: their ``bulk_plus``), ``{"bulk": 1.0}``
gives bulk exactly 1 (u_tau = 1 / 15.515; ``gan``, ``sem``: 1 / their ``bulk_plus``), for every
source.

Errors (:class:`~cfdseed.errors.SourceError`, one message naming the values): ``re_tau``, ``u_tau``
or ``nu`` not a positive finite number; ``re_tau`` (given or resolved) below :data:`RE_TAU_MIN`;
``bulk`` not finite, or not positive where it has to set the
scale (no ``u_tau`` or ``nu`` given; a zero or negative ``bulk`` is fine once they fix it); all of
``re_tau``, ``u_tau`` and ``nu`` given with ``re_tau != u_tau h / nu`` (relative tolerance
:data:`RE_TAU_RTOL`). ``bulk`` never contradicts the others: it is the bulk velocity the field gets.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._values import number
from .errors import SourceError
from .reference import KAPPA

__all__ = ["Units", "resolve_units", "check_unit_options", "reichardt_profile", "reichardt_bulk",
           "re_tau_from_bulk", "UNIT_OPTIONS", "DEFAULT_RE_TAU", "RE_TAU_RTOL", "RE_TAU_MIN"]

#: The four unit options every built-in source takes (default None: resolved by the rules above).
UNIT_OPTIONS: tuple[str, ...] = ("re_tau", "u_tau", "nu", "bulk")
#: Friction Reynolds number of the target when nothing else fixes it (the baselines).
DEFAULT_RE_TAU = 180.0
#: Relative tolerance of ``re_tau == u_tau h / nu`` when all three are given.
RE_TAU_RTOL = 1e-6
#: Smallest ``re_tau`` of the contract: below it the whole half-channel lies inside y+ < 1, so
#: there is no wall layer to scale (and a ``nu`` in the wrong units usually lands here).
RE_TAU_MIN = 1.0

BulkPlus = Callable[[float], float]


@dataclass(frozen=True)
class Units:
    """The resolved units of a field: ``re_tau = u_tau h / nu`` with ``h = ly / 2``.

    ``bulk`` is the bulk velocity the source delivers (set exactly), in the same units as ``u_tau``.
    """

    re_tau: float  #: friction Reynolds number u_tau h / nu
    u_tau: float  #: friction velocity (1: wall units)
    nu: float  #: kinematic viscosity
    bulk: float  #: bulk velocity of the delivered field
    h: float  #: half-height ly / 2 of the grid the units were resolved for

    def __post_init__(self) -> None:  # built by resolve_units from checked values, or by hand
        for k in ("re_tau", "u_tau", "nu", "h"):
            number(f"Units: {k}", getattr(self, k), minimum=0, strict=True)
        number("Units: bulk", self.bulk)

    @property
    def bulk_plus(self) -> float:
        """The bulk velocity in wall units, ``bulk / u_tau``."""
        return self.bulk / self.u_tau


def reichardt_profile(y: np.ndarray, ly: float, re_tau: float) -> np.ndarray:
    """Turbulent mean profile ``U+`` (Reichardt's law) at the distance to the nearer wall.

    ``U+ = ln(1 + kappa y+) / kappa + 7.8 (1 - exp(-y+/11) - y+/11 exp(-y+/3))`` with
    ``y+ = min(y, ly - y) re_tau / (ly / 2)`` and ``kappa`` = :data:`cfdseed.reference.KAPPA`.
    """
    d = np.minimum(y, ly - y) / (0.5 * ly) * re_tau  # y+
    return np.log1p(KAPPA * d) / KAPPA + 7.8 * (1.0 - np.exp(-d / 11.0) - d / 11.0 * np.exp(-d / 3.0))


def reichardt_bulk(re_tau: float) -> float:
    """Bulk velocity in wall units of :func:`reichardt_profile` over the channel at ``re_tau``.

    ``(1 / re_tau) * integral_0^re_tau U+(y+) dy+`` in closed form (the profile is symmetric about
    the centre): 15.515 at Re_tau 180 (13.443 at 90, 17.627 at 395, 19.984 at 1000). The default
    ``bulk_plus`` of :func:`resolve_units`.

    Raises
    ------
    SourceError
        ``re_tau`` not a positive number.
    """
    r = number("re_tau", re_tau, minimum=0, strict=True)
    k = KAPPA
    log_part = ((1.0 + k * r) * math.log1p(k * r) - k * r) / (k * k)
    damp_part = 7.8 * (r + 11.0 * math.expm1(-r / 11.0))  # integral of 7.8 (1 - exp(-d/11))
    bump_part = 7.8 / 11.0 * (9.0 - (3.0 * r + 9.0) * math.exp(-r / 3.0))  # of 7.8 d/11 exp(-d/3)
    return (log_part + damp_part - bump_part) / r



def re_tau_from_bulk(re_bulk: float) -> float:
    """The ``re_tau`` whose expected bulk velocity matches a bulk Reynolds number ``U_b h / nu``.

    Solves ``re_tau * reichardt_bulk(re_tau) = re_bulk`` (bisection; monotone): 180 for
    ``re_bulk`` 2793, 380 for OpenFOAM's channel395 tutorial (``Ubar`` 0.1335, ``nu`` 2e-5, h = 1).

    Raises
    ------
    SourceError
        ``re_bulk`` not a positive number, or below the laminar-transition range (< 100).
    """
    rb = number("bulk Reynolds number", re_bulk, minimum=0, strict=True)
    if rb < 100.0:
        raise SourceError(f"bulk Reynolds number U_b h / nu = {rb:g} is far below turbulence (< 100); "
                          "give re_tau explicitly")
    lo, hi = 1.0, max(10.0, rb)
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid * reichardt_bulk(mid) < rb:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-10 * hi:
            break
    return 0.5 * (lo + hi)

def check_unit_options(source: str, options: Mapping[str, Any]) -> dict[str, float | None]:
    """The four unit options of ``options`` checked as values (None where not given).

    What can be checked without a grid: ``re_tau``, ``u_tau``, ``nu`` positive finite numbers,
    ``bulk`` finite; :func:`resolve_units` checks the rest when the grid is known.

    Raises
    ------
    SourceError
        A value that is not a number of the allowed range; the message names ``source``.
    """
    out: dict[str, float | None] = {}
    for key in UNIT_OPTIONS:
        value = options.get(key)
        if value is None:
            out[key] = None
        elif key == "bulk":
            out[key] = number(f"{source}: bulk", value)
        else:
            out[key] = number(f"{source}: {key}", value, minimum=0, strict=True)
    if out["re_tau"] is not None:
        _check_re_tau(f"{source}: re_tau={out['re_tau']:g}", out["re_tau"])
    return out


def _check_re_tau(what: str, re_tau: float) -> None:
    if re_tau < RE_TAU_MIN:
        raise SourceError(f"{what} is below {RE_TAU_MIN:g}: the half-channel would lie inside y+ < 1, with no wall "
                          "layer to scale; check the units of re_tau, u_tau, nu and ly")


def resolve_units(ly: float, *, re_tau: float | None = None, u_tau: float | None = None,
                  nu: float | None = None, bulk: float | None = None, default_re_tau: float = DEFAULT_RE_TAU,
                  bulk_plus: float | BulkPlus | None = None, source: str = "") -> Units:
    """Resolve ``re_tau``, ``u_tau``, ``nu`` and ``bulk`` by the rules of the module docstring.

    Parameters
    ----------
    ly : float
        Channel height of the target grid (walls at 0 and ``ly``); ``h = ly / 2``.
    re_tau, u_tau, nu, bulk : float, optional
        The options as given (None: not given).
    default_re_tau : float
        ``re_tau`` when neither it nor ``u_tau`` with ``nu`` is given (``gan``: the model's).
    bulk_plus : float or callable ``re_tau -> float``, optional
        Expected bulk velocity in wall units at the resolved ``re_tau`` (default
        :func:`reichardt_bulk`); used for ``u_tau`` from ``bulk`` and for ``bulk`` when not given.
    source : str
        Name put in front of the messages (e.g. ``"plug"``).

    Returns
    -------
    Units

    Raises
    ------
    SourceError
        Non-positive or non-finite values, a non-positive ``bulk`` that would have to set the
        scale, or ``re_tau`` contradicting ``u_tau h / nu``.
    """
    pre = f"{source}: " if source else ""
    given = check_unit_options(source or "units", {"re_tau": re_tau, "u_tau": u_tau, "nu": nu, "bulk": bulk})
    re_tau, u_tau, nu, bulk = (given[k] for k in UNIT_OPTIONS)
    h = 0.5 * number(f"{pre}ly", ly, minimum=0, strict=True)
    if u_tau is not None and nu is not None:
        implied = u_tau * h / nu
        if re_tau is not None and abs(implied - re_tau) > RE_TAU_RTOL * re_tau:
            raise SourceError(f"{pre}re_tau={re_tau:g} contradicts u_tau * h / nu = {u_tau:g} * {h:g} / {nu:g} = "
                              f"{implied:g} (h = ly / 2); give at most two of re_tau, u_tau, nu, or consistent values")
        _check_re_tau(f"{pre}re_tau = u_tau * h / nu = {u_tau:g} * {h:g} / {nu:g} = {implied:g} (h = ly / 2)", implied)
        re_tau = implied
    if re_tau is None:
        re_tau = number(f"{pre}default re_tau", default_re_tau, minimum=0, strict=True)
        _check_re_tau(f"{pre}default re_tau={re_tau:g}", re_tau)

    def expected() -> float:  # bulk_plus at the resolved re_tau
        bp = reichardt_bulk(re_tau) if bulk_plus is None else bulk_plus(re_tau) if callable(bulk_plus) else bulk_plus
        return number(f"{pre}expected bulk velocity in wall units (bulk_plus at re_tau={re_tau:g})", bp)

    if u_tau is None:
        if nu is not None:
            u_tau = re_tau * nu / h
        elif bulk is not None:
            bp = expected()
            if bulk <= 0 or bp <= 0:
                raise SourceError(f"{pre}bulk={bulk:g} cannot set the velocity scale u_tau = bulk / bulk_plus = "
                                  f"{bulk:g} / {bp:g}: both must be positive; give u_tau or nu as well, or a "
                                  "positive bulk")
            u_tau = bulk / bp
        else:
            u_tau = 1.0  # wall units
    if nu is None:
        nu = u_tau * h / re_tau
    if bulk is None:
        bulk = expected() * u_tau
    return Units(re_tau=float(re_tau), u_tau=float(u_tau), nu=float(nu), bulk=float(bulk), h=h)
