"""The Dedalus channel case as plain data: :class:`ChannelSpec` (box, resolution, Re_tau, driving and
time stepping), the Chebyshev-Gauss points and quadrature weights of its wall-normal grid, and
:class:`Diagnostics` (one time's plane-averaged state). No Dedalus import: a driver, a campaign plan
or a test reads and checks a case without the Dedalus environment; :mod:`cfdseed.solvers.dedalus`
builds and runs it.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
from numpy.polynomial import chebyshev as cheb

from .._values import is_integer, is_real
from ..errors import CheckpointError, ConfigError

__all__ = ["ChannelSpec", "Diagnostics", "DRIVINGS", "DERIVED_KEYS", "gauss_points", "gauss_weights", "read_state"]

#: How the flow is driven (:class:`ChannelSpec`).
DRIVINGS = ("force", "flow_rate")
#: Values :meth:`ChannelSpec.to_dict` adds to the fields (derived, u_tau = 1).
DERIVED_KEYS = ("nu", "force", "u_tau", "h")

@dataclass(frozen=True)
class ChannelSpec:
    """Channel box, resolution and time stepping (units h = ly/2 = 1 by default, u_tau = 1).

    Parameters
    ----------
    shape
        ``(nx, ny, nz)``: Fourier modes in x and z, Chebyshev modes in y (grid points at scale 1).
    lengths
        ``(lx, ly, lz)``; walls at y = 0 and y = ly, half-height h = ly / 2.
    re_tau
        Friction Reynolds number u_tau h / nu that sets nu = h / re_tau (force u_tau^2 / h = 1/h).
    cfl_safety
        CFL safety factor (Dedalus measures it on the dealiased grid; keep <= 0.15: 0.2 was tried
        at Re_tau 180 and pumped grid-scale energy into the core, README "A real solver: Dedalus 3").
    max_step, initial_step
        Largest and first time step, in h / u_tau (initial_step <= max_step).
    dealias
        Dealiasing scale (3/2 rule); >= 1 (below 1 the quadratic terms are under-resolved).
    driving
        ``"force"``: the constant streamwise body force u_tau^2 / h (the bulk velocity follows the
        wall shear, relaxing over ~7-9 h/u_tau); ``"flow_rate"``: the bulk velocity held at
        ``bulk`` exactly by a spatially uniform streamwise pressure gradient solved with the flow
        each step (an extra scalar unknown and the constraint integ(u) = bulk * volume, implicit
        like the pressure gauge), so there is no slow U_b mode; the gradient needed is reported
        as ``Diagnostics.forcing``.
    bulk
        Target bulk velocity of ``"flow_rate"`` (u_tau units; Lee & Moser 180: 15.7).
    """

    shape: tuple[int, int, int] = (32, 64, 32)
    lengths: tuple[float, float, float] = (math.pi, 2.0, math.pi / 2)
    re_tau: float = 180.0
    cfl_safety: float = 0.15
    max_step: float = 0.01
    initial_step: float = 2e-4
    dealias: float = 1.5
    driving: str = "force"
    bulk: float = 15.7

    def __post_init__(self) -> None:
        # integers, not integer-valued floats: Dedalus' bases fail on 8.0 ("deg must be an integer")
        if not (_triple(self.shape) and all(is_integer(n) for n in self.shape)):
            raise ConfigError(f"shape must be three integers (nx, ny, nz), got {self.shape!r}")
        nx, ny, nz = self.shape
        if nx < 4 or nz < 4 or ny < 8 or nx % 2 or nz % 2:
            raise ConfigError(f"shape {self.shape}: need even nx, nz >= 4 and ny >= 8")
        if not (_triple(self.lengths) and all(is_real(v) and math.isfinite(v) and v > 0 for v in self.lengths)):
            raise ConfigError(f"lengths must be three positive numbers, got {self.lengths!r}")
        for name in ("re_tau", "cfl_safety", "max_step", "initial_step", "dealias"):
            v = getattr(self, name)
            if not (is_real(v) and math.isfinite(v) and v > 0):
                raise ConfigError(f"{name}={v!r} must be a positive finite number")
        if self.cfl_safety > 0.5:
            raise ConfigError(f"cfl_safety={self.cfl_safety} too large; allowed (0, 0.5], use <= 0.15 "
                              f"(0.2 pumped grid-scale energy into the core at Re_tau 180)")
        if self.dealias < 1:
            raise ConfigError(f"dealias={self.dealias} under-resolves the quadratic terms; allowed >= 1 "
                              f"(3/2 rule: 1.5)")
        if self.initial_step > self.max_step:
            raise ConfigError(f"initial_step={self.initial_step} > max_step={self.max_step}; the first step "
                              f"may not exceed the largest")
        if self.driving not in DRIVINGS:
            raise ConfigError(f"driving={self.driving!r} unknown; must be one of {', '.join(DRIVINGS)}")
        if not (is_real(self.bulk) and math.isfinite(self.bulk) and self.bulk > 0):
            raise ConfigError(f"bulk={self.bulk!r} must be a positive finite number")

    @property
    def h(self) -> float:
        """Channel half-height ly / 2."""
        return self.lengths[1] / 2

    @property
    def nu(self) -> float:
        """Kinematic viscosity u_tau h / Re_tau with u_tau = 1."""
        return self.h / self.re_tau

    @property
    def force(self) -> float:
        """Constant streamwise body force u_tau^2 / h balancing the mean wall shear."""
        return 1.0 / self.h

    def wall_units(self) -> dict[str, float]:
        """Grid spacings in wall units (Δx+, Δz+, first and centre Δy+)."""
        nx, ny, nz = self.shape
        lx, ly, lz = self.lengths
        y = gauss_points(ny, ly)
        scale = 1.0 / self.nu
        return {
            "dx+": lx / nx * scale,
            "dz+": lz / nz * scale,
            "y1+": float(y[0]) * scale,
            "dy_centre+": float(np.max(np.diff(y))) * scale,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ChannelSpec:
        """The spec from its JSON form (``shape`` and ``lengths`` as lists), e.g. a campaign plan's,
        or :meth:`to_dict`'s as every checkpoint, state and segment stores it: its derived keys
        (:data:`DERIVED_KEYS`) are checked against the spec's own values, not read.

        Raises :class:`ConfigError` for a non-object, an unknown key (named, with the allowed ones)
        or a derived value that is not the spec's (named, with both values).
        """
        if not isinstance(d, Mapping):
            raise ConfigError(f"a ChannelSpec's JSON form is an object (dict), got {type(d).__name__}: {d!r}")
        known = [f.name for f in fields(cls)]
        unknown = [k for k in d if k not in known and k not in DERIVED_KEYS]
        if unknown:
            raise ConfigError(f"unknown ChannelSpec key(s) {', '.join(map(repr, unknown))}; "
                              f"allowed: {', '.join(known)} (and the derived {', '.join(DERIVED_KEYS)})")
        spec = cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in known})
        ours = spec._derived()
        for k in DERIVED_KEYS:
            if k in d and not (is_real(d[k]) and math.isclose(d[k], ours[k], rel_tol=1e-12)):
                raise ConfigError(f"ChannelSpec key {k}={d[k]!r} contradicts the spec's own {k}={ours[k]!r} "
                                  f"(derived: u_tau = 1, h = ly / 2, nu = h / re_tau, force = 1 / h); leave it out "
                                  f"or correct it")
        return spec

    def to_dict(self) -> dict[str, Any]:
        """The fields as a dict plus the derived values (:data:`DERIVED_KEYS`, for readers of the
        stored spec); :meth:`from_json` reads it back."""
        d = asdict(self)
        d.update(self._derived())
        return d

    def _derived(self) -> dict[str, float]:
        return dict(nu=self.nu, force=self.force, u_tau=1.0, h=self.h)




def _triple(v: Any) -> bool:
    """A sequence (tuple, list, 1-D array; not a string) of three items."""
    if isinstance(v, np.ndarray):
        return v.shape == (3,)
    return isinstance(v, Sequence) and not isinstance(v, (str, bytes)) and len(v) == 3


def gauss_points(ny: int, ly: float) -> np.ndarray:
    """Chebyshev-Gauss points on [0, ly], increasing (Dedalus' ChebyshevT grid at scale 1):
    cfdseed's ``"chebyshev-cc"`` distribution."""
    from ..grid import wall_normal

    return wall_normal("chebyshev-cc", ny, ly)


def gauss_weights(ny: int, ly: float) -> np.ndarray:
    """Quadrature weights exact for polynomials of degree < ny on the Gauss points over [0, ly]."""
    s = 2 * gauss_points(ny, ly) / ly - 1  # (ny,) in [-1, 1]
    vander = cheb.chebvander(s, ny - 1)  # (ny, ny)
    k = np.arange(ny)
    moments = np.where(k % 2 == 0, 2.0 / (1.0 - k.astype(float) ** 2 + (k == 1)), 0.0)
    return np.linalg.solve(vander.T, moments) * ly / 2


def read_state(path: str | os.PathLike) -> tuple[np.ndarray, dict[str, Any]]:
    """A state file (``DedalusChannel.save_state``; no Dedalus needed to read it).

    Returns
    -------
    tuple
        The velocity ``(3, nx, ny, nz)`` float32 (u, v, w; y increasing) and its metadata
        (``sim_time``, ``iteration``, ``timestep``, ``spec`` as :meth:`ChannelSpec.to_dict`,
        ``extra``).

    Raises
    ------
    CheckpointError
        Unreadable, or a velocity that is not ``(3, *spec.shape)`` of its own spec.
    """
    try:
        with np.load(path) as f:
            u, meta = f["u"], json.loads(str(f["meta"]))
        shape = tuple(meta["spec"]["shape"])
    except Exception as exc:  # noqa: BLE001 - any failure to read is the file's
        raise CheckpointError(f"{path}: unreadable state file ({type(exc).__name__}: {exc})") from None
    if u.shape != (3, *shape):
        raise CheckpointError(f"{path}: velocity {u.shape} != {(3, *shape)}, its spec's shape")
    return u, meta


@dataclass
class Diagnostics:
    """Plane-averaged state of the channel at one time (identical on every rank).

    ``profiles`` holds (ny,) arrays on the Gauss points: ``U, V, W`` means and ``uu, vv, ww, uv``
    central second moments. Wall shear stresses are in units of u_tau^2 (1 at the force balance).
    ``bulk_w`` is the bulk spanwise velocity; ``dissipation`` the volume-averaged viscous
    dissipation nu <|grad u|^2>, which balances the power input ``forcing * bulk`` in equilibrium;
    ``forcing`` the streamwise driving (the constant body force, or the held pressure gradient).
    """

    t: float
    iteration: int
    bulk: float
    tau_lower: float
    tau_upper: float
    probe_u: float
    centre_u: float
    tke: float
    profiles: dict[str, np.ndarray] = field(repr=False)
    bulk_w: float = 0.0
    dissipation: float = 0.0
    forcing: float = 0.0  #: the streamwise driving (body force or held pressure gradient), u_tau^2 / h

    def row(self) -> dict[str, float]:
        """Scalar fields for a time-series row."""
        return {
            "t": self.t,
            "step": self.iteration,
            "bulk": self.bulk,
            "tau_lower": self.tau_lower,
            "tau_upper": self.tau_upper,
            "probe_u": self.probe_u,
            "centre_u": self.centre_u,
            "tke": self.tke,
            "bulk_w": self.bulk_w,
            "dissipation": self.dissipation,
            "forcing": self.forcing,
        }
