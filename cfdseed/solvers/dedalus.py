"""Dedalus 3 plane-channel adapter: problem, cfdseed grid, seeding, diagnostics and checkpoints.

Owns everything that touches Dedalus objects:

- :class:`ChannelSpec`: box, resolution, Re_tau, driving and time-stepping settings (units
  h = u_tau = 1, so nu = h / Re_tau; ``driving="force"``, the default: the constant streamwise body
  force u_tau^2 / h; ``"flow_rate"``: the bulk velocity held at ``bulk`` by a uniform streamwise
  pressure gradient solved with the flow); it, the Gauss
  quadrature and :class:`Diagnostics` live in :mod:`cfdseed.solvers.dedalus_case` (plain data,
  no Dedalus) and are re-exported here, so a driver imports the adapter from one place.
- :class:`DedalusChannel`: builds the incompressible channel problem (RealFourier in x and z,
  Chebyshev in y on [0, ly], no-slip walls, first-order tau formulation with one lifted tau term
  in the velocity gradient, pressure gauge ``integ(p) = 0``), a CFL-adaptive SBDF2 solver, the
  :class:`cfdseed.Grid` of this rank's block of the (non-dealiased) grid, and views of the
  velocity grid data that :func:`cfdseed.init_field` writes into directly.

Dedalus stores the grid data of the vector ``u`` as ``(component, x, z, y)`` with the
coordinate order ``('x', 'z', 'y')`` chosen here, so the component order is (u, w, v); the views
returned by :meth:`DedalusChannel.velocity_views` reorder them to (u, v, w) with ``axes="xzy"``.
The Chebyshev grid consists of the Gauss points (no wall points), increasing in y. The cfdseed
grid carries the spectral operator set (``operators="spectral"``: Fourier in x and z, the
derivative of the Chebyshev interpolant in y, wall values of that interpolant), so a seeded field
is divergence-free and no-slip to round-off in Dedalus' own discretisation.

Collective methods (``diagnostics``, ``slices``, checkpoints, seeding) must be called on every
rank of the solver's communicator.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from numpy.polynomial import chebyshev as cheb

from .._collective import agree, run_agreed
from ..errors import CfdseedError, CheckpointError, ConfigError
from ..grid import Grid
from .dedalus_case import DRIVINGS, ChannelSpec, Diagnostics, gauss_weights, read_state

__all__ = ["ChannelSpec", "DedalusChannel", "Diagnostics", "import_dedalus", "gauss_weights", "DRIVINGS",
           "FFTW_RIGORS", "set_fftw_rigor"]

log = logging.getLogger(__name__)

_INSTALL_HINT = "install the Dedalus environment with .ci/setup-dedalus.sh and use .venv-dedalus/bin/python"


def import_dedalus() -> Any:
    """Return ``dedalus.public`` or raise :class:`CfdseedError` with the set-up instructions."""
    try:
        import dedalus.public as d3
    except ImportError as exc:
        raise CfdseedError(f"Dedalus 3 is not importable ({exc}); {_INSTALL_HINT}") from exc
    return d3


#: FFTW planning rigors, fastest planning first (:class:`DedalusChannel`'s ``fftw_rigor``).
FFTW_RIGORS = ("estimate", "measure", "patient", "exhaustive")


def set_fftw_rigor(rigor: str) -> None:
    """Set Dedalus' FFTW planning rigor for the transforms planned from now on in this process
    (its MPI transposes plan with their own fixed flags); raises :class:`ConfigError` for an
    unknown rigor."""
    if rigor not in FFTW_RIGORS:
        raise ConfigError(f"fftw_rigor={rigor!r} unknown; must be one of {', '.join(FFTW_RIGORS)}")
    from dedalus.tools.config import config

    config["transforms-fftw"]["PLANNING_RIGOR"] = rigor


class DedalusChannel:
    """Incompressible channel flow in Dedalus 3 with cfdseed seeding and diagnostics.

    Parameters
    ----------
    spec
        Box, resolution and time-stepping settings.
    comm
        mpi4py communicator (default ``MPI.COMM_WORLD``).
    mesh
        Optional Dedalus process mesh, 1-D (default: the ranks split z in grid space, x in
        coefficient space). A 2-D mesh distributes y in grid space, which the coupling does not
        allow: refused.
    fftw_rigor
        FFTW planning rigor for Dedalus' spectral transforms (one of :data:`FFTW_RIGORS`);
        None keeps Dedalus' configuration (``measure`` unless a ``dedalus.cfg`` says otherwise).
        Process-wide: it sets Dedalus' configuration, which Dedalus reads when it first plans a
        transform of a given shape. ``patient`` plans longer (seconds at 32 x 64 x 32) and steps
        ~15 % faster there (``benchmarks/README.md``); either rigor's results agree to round-off
        (so do two ``measure`` runs: FFTW picks its plans by timing them).
    """

    def __init__(self, spec: ChannelSpec, comm: Any = None, mesh: tuple[int, ...] | None = None,
                 *, fftw_rigor: str | None = None) -> None:
        d3 = import_dedalus()
        from mpi4py import MPI

        if fftw_rigor is not None:
            set_fftw_rigor(fftw_rigor)

        self.spec = spec
        self.comm = MPI.COMM_WORLD if comm is None else comm
        nx, ny, nz = spec.shape
        lx, ly, lz = spec.lengths
        coords = d3.CartesianCoordinates("x", "z", "y")
        dist = d3.Distributor(coords, dtype=np.float64, comm=self.comm, mesh=mesh)
        xb = d3.RealFourier(coords["x"], size=nx, bounds=(0, lx), dealias=spec.dealias)
        zb = d3.RealFourier(coords["z"], size=nz, bounds=(0, lz), dealias=spec.dealias)
        yb = d3.ChebyshevT(coords["y"], size=ny, bounds=(0, ly), dealias=spec.dealias)
        bases = (xb, zb, yb)
        p = dist.Field(name="p", bases=bases)
        u = dist.VectorField(coords, name="u", bases=bases)
        tau_p = dist.Field(name="tau_p")
        tau_u1 = dist.VectorField(coords, name="tau_u1", bases=(xb, zb))
        tau_u2 = dist.VectorField(coords, name="tau_u2", bases=(xb, zb))
        drive = dist.Field(name="drive")  # flow_rate: the uniform pressure gradient that holds U_b
        ex, _ez, ey = coords.unit_vector_fields(dist)
        lift_basis = yb.derivative_basis(1)

        def lift(a: Any) -> Any:
            return d3.Lift(a, lift_basis, -1)

        grad_u = d3.grad(u) + ey * lift(tau_u1)
        namespace = dict(
            u=u, p=p, tau_p=tau_p, tau_u1=tau_u1, tau_u2=tau_u2, grad_u=grad_u, lift=lift,
            ex=ex, nu=spec.nu, force=spec.force, ly=ly, drive=drive,
            flux=spec.bulk * math.prod(spec.lengths),
        )
        unknowns = [p, u, tau_p, tau_u1, tau_u2] + ([drive] if spec.driving == "flow_rate" else [])
        problem = d3.IVP(unknowns, namespace=namespace)
        problem.add_equation("trace(grad_u) + tau_p = 0")
        if spec.driving == "flow_rate":
            problem.add_equation("dt(u) - nu*div(grad_u) + grad(p) + lift(tau_u2) - drive*ex = - u@grad(u)")
        else:
            problem.add_equation("dt(u) - nu*div(grad_u) + grad(p) + lift(tau_u2) = - u@grad(u) + force*ex")
        problem.add_equation("u(y=0) = 0")
        problem.add_equation("u(y=ly) = 0")
        problem.add_equation("integ(p) = 0")
        if spec.driving == "flow_rate":
            problem.add_equation("integ(ex@u) = flux")
        self.solver = problem.build_solver(d3.SBDF2)
        self.cfl = d3.CFL(
            self.solver, initial_dt=spec.initial_step, cadence=5, safety=spec.cfl_safety,
            threshold=0.05, max_change=1.5, min_change=0.5, max_dt=spec.max_step,
        )
        self.cfl.add_velocity(u)
        # volume integral of |grad u|^2 (Frobenius), for the dissipation diagnostic
        grad = d3.grad(u)
        self._grad_sq = d3.integ(d3.trace(grad @ d3.transpose(grad)))
        self.timestep = spec.initial_step
        self._d3, self._dist, self._bases, self._coords = d3, dist, bases, coords
        self.u, self.p, self._drive = u, p, drive
        self._work = dist.VectorField(coords, name="u_work", bases=bases)
        self.grid = run_agreed(self.comm, self._make_grid)
        self._weights = gauss_weights(ny, ly)

    # -- grid and seeding ---------------------------------------------------------------------
    def local_coordinates(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """This rank's x, z, y grid coordinates at scale 1 as 1-D arrays (Dedalus' own)."""
        x, z, y = self._dist.local_grids(*self._bases, scales=1)
        return np.ravel(x), np.ravel(z), np.ravel(y)

    def _make_grid(self) -> Grid:
        nx, ny, nz = self.spec.shape
        lx, ly, lz = self.spec.lengths
        x, z, y = self.local_coordinates()
        slices = []
        for name, vals, n, length in (("x", x, nx, lx), ("z", z, nz, lz)):
            if vals.size == 0:
                slices.append(slice(0, 0))
                continue
            start = int(round(vals[0] / (length / n)))
            expect = (start + np.arange(vals.size)) * length / n
            if not np.allclose(vals, expect, rtol=0, atol=1e-9 * length):
                raise CfdseedError(f"Dedalus {name} grid on this rank is not a contiguous uniform block: {vals}")
            slices.append(slice(start, start + vals.size))
        if y.size != ny:
            raise CfdseedError(f"Dedalus y grid is distributed ({y.size} of {ny} points): a 2-D process mesh "
                               "distributes y; use a 1-D mesh (the default)")
        if np.all(np.diff(y) > 0):
            self._y_reversed = False
        elif np.all(np.diff(y) < 0):
            self._y_reversed = True
            y = y[::-1]
        else:
            raise CfdseedError("Dedalus y grid is not monotonic")
        return Grid(self.spec.shape, self.spec.lengths, y=y, local=(slices[0], slice(0, ny), slices[1]),
                    operators="spectral")

    def velocity_views(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Writable views ``(u, v, w)`` of the velocity grid data at scale 1, axes ``"xzy"``.

        Each view has shape ``(local nx, local nz, ny)`` with y increasing. Writing through them
        sets the solver state; call before stepping (to overwrite the state of a channel that has
        stepped, use :meth:`seed`, :meth:`perturb` or the loaders: they restart the multistep
        scheme's history, which written views alone do not).
        """
        self.u.change_scales(1)
        g = self.u["g"]  # (3, lnx, lnz, ny), components (x, z, y)
        comps = (g[0], g[2], g[1])
        if self._y_reversed:
            comps = tuple(c[..., ::-1] for c in comps)
        return comps  # type: ignore[return-value]

    def source_options(self, source: Any, options: dict[str, Any] | None, units: str = "solver") -> dict[str, Any]:
        """A source's options with this channel's units (``units="solver"``): ``re_tau`` and ``nu``
        (so u_tau = 1, the body force's unit), and under ``"flow_rate"`` the target ``bulk``, each
        where the options give no unit of their own (none of ``re_tau, u_tau, nu``; ``bulk`` apart).
        Only built-in sources that take units get them, and not the file sources (``snapshot``,
        ``phase-randomised``: a file keeps its own velocities unless its options rescale it).
        ``units="source"``: the options as given (the source's own defaults: Re_tau 180 or the
        model's, u_tau = 1 or from ``bulk``)."""
        from ..sources import BUILT_IN, FILE_SOURCES

        if units not in ("solver", "source"):
            raise ValueError(f"units must be 'solver' or 'source', got {units!r}")
        opts = dict(options or {})
        takes = isinstance(source, str) and source in BUILT_IN and source not in FILE_SOURCES
        if units == "source" or not takes:
            return opts
        if not any(k in opts for k in ("re_tau", "u_tau", "nu")):
            opts.update(re_tau=self.spec.re_tau, nu=self.spec.nu)
        if self.spec.driving == "flow_rate" and "bulk" not in opts:
            opts["bulk"] = self.spec.bulk
        return opts

    def seed(self, source: Any = "analytic", *, options: dict[str, Any] | None = None,
             seed: int | None = None, check: bool = True, tolerances: Any = None, units: str = "solver") -> Any:
        """Write an initial velocity through :func:`cfdseed.init_field` straight into the state, in
        this channel's units (:meth:`source_options`; ``units="source"``: the source's defaults).

        Raises :class:`cfdseed.ConstraintError` (every rank) if ``check`` and the delivered field
        violates the tolerances or holds content Dedalus does not represent (the x/z Nyquist modes:
        the first transform drops them; without ``check`` a warning), :class:`cfdseed.ConfigError`
        under ``"flow_rate"`` when its bulk velocity is not the held one (the first step would
        impose it impulsively); returns the :class:`cfdseed.ConstraintReport` of the delivered field
        (the one init_field made; with ``check=False`` made here, without raising). Collective.
        """
        from .. import check_field, init_field
        from ..errors import ConstraintError

        options = self.source_options(source, options, units)
        self.p["g"] = 0.0
        views = self.velocity_views()
        done = init_field(
            self.comm, self.grid, source=source, options=options, seed=seed,
            out=views, axes="xzy", check=check, tolerances=tolerances, result=True,
        )
        self._restart_history(first_step=True)
        lost, scale = self._dropped_by_dedalus(views)
        views = self.velocity_views()
        if lost > 1e-8 * scale:
            text = (f"the seeded field holds content at the x/z Nyquist modes, which Dedalus does not represent: "
                    f"its first transform changed it by up to {lost:.3g} (max |u| {scale:.3g})")
            if check:
                raise ConstraintError(text)
            log.warning("%s", text)
        report = done.report if done.report is not None else \
            check_field(self.comm, self.grid, views, axes="xzy", tolerances=tolerances)
        if self.spec.driving == "flow_rate" and not math.isclose(report.bulk_velocity, self.spec.bulk, rel_tol=1e-6):
            # the held flow rate would be imposed in the first step by an impulsive pressure gradient
            raise ConfigError(f"seeded bulk velocity {report.bulk_velocity:.6g} != the held {self.spec.bulk:g} of this "
                              f"flow_rate channel: give the source the option bulk={self.spec.bulk:g} (options="
                              f"{{'bulk': {self.spec.bulk:g}}}: units='solver' adds it where the options give none, "
                              "except to the file sources snapshot and phase-randomised, which keep the file's bulk) "
                              "or change spec.bulk")
        return report

    def perturb(self, source: Any, *, options: dict[str, Any] | None = None, seed: int | None = None,
                units: str = "solver") -> float:
        """Add the fluctuating part of an :func:`cfdseed.init_field` source to the current state.

        The source field is delivered through init_field (unchecked: only its fluctuations are
        used), its plane average (a function of y) is removed so the mean flow is unchanged, and
        the rest is added to the velocity. The solver's pressure projection removes any
        non-solenoidal part on the next step. Used to trigger transition at a wall that
        relaminarised during a transient. Units as for :meth:`seed`. Returns the RMS of the added
        field. Collective.
        """
        from mpi4py import MPI

        from .. import init_field

        options = self.source_options(source, options, units)
        nx, ny, nz = self.spec.shape
        extra = init_field(self.comm, self.grid, source=source, options=options, seed=seed,
                           axes="xzy", check=False)  # (3, lnx, lnz, ny) in (u, v, w) order

        # the local stretches between the collectives are agreed: one rank failing (memory) must
        # not leave the others waiting in the next Allreduce or transform
        def plane_sums(field: Any) -> tuple[np.ndarray, np.ndarray]:
            field = np.asarray(field, dtype=np.float64)
            return field, field.sum(axis=(1, 2))  # (3, ny)

        def remove_mean(field: np.ndarray, mean: np.ndarray) -> np.ndarray:
            field -= (mean / (nx * nz))[:, None, None, :]
            return np.array([float(np.vdot(field, field))])  # sum of squares, no field-sized temporary

        def add(views: tuple[np.ndarray, ...], field: np.ndarray) -> None:
            for view, comp in zip(views, field):
                view += comp
            self._restart_history()

        extra, mean = run_agreed(self.comm, plane_sums, extra)
        self.comm.Allreduce(MPI.IN_PLACE, mean, op=MPI.SUM)
        sq = run_agreed(self.comm, remove_mean, extra, mean)
        self.comm.Allreduce(MPI.IN_PLACE, sq, op=MPI.SUM)
        run_agreed(self.comm, add, self.velocity_views(), extra)
        return float(np.sqrt(sq[0] / (3 * nx * ny * nz)))

    def _dropped_by_dedalus(self, views: tuple[np.ndarray, ...]) -> tuple[float, float]:
        """Largest change of the grid values ``views`` over a round trip through Dedalus' coefficients
        (what it integrates), and max |u|; global. Take the views again afterwards."""
        from mpi4py import MPI

        def abs_max(a: np.ndarray) -> float:  # max |a| (initial 0) without an |a| temporary
            return max(float(a.max(initial=0.0)), -float(a.min(initial=0.0)))

        def compare(now: tuple[np.ndarray, ...]) -> tuple[float, float]:
            scale = max(abs_max(w) for w in written)
            # the change, component by component in the copies (no longer needed): no temporaries
            lost = max(float(np.abs(np.subtract(b, w, out=w), out=w).max(initial=0.0)) for b, w in zip(now, written))
            return lost, scale

        # the copies and the comparison are local work between Dedalus' transforms and the
        # reductions (collectives): agreed, so one rank failing (memory) fails every rank
        written = run_agreed(self.comm, lambda: [np.array(v) for v in views])
        self.u.change_layout("c")
        lost, scale = run_agreed(self.comm, compare, self.velocity_views())
        return self.comm.allreduce(lost, op=MPI.MAX), self.comm.allreduce(scale, op=MPI.MAX)

    def _restart_history(self, first_step: bool = False) -> None:
        """Restart the multistep scheme from the current state, as on a new channel: SBDF2's next
        step is first order and uses no earlier right-hand side (it keeps the last steps', which
        would mix a state overwritten after stepping with the one before it: a re-seed at U_b 10
        after steps at 15 stepped to 8.33). ``first_step``: also the first time step and a CFL
        evaluation on the next step, as on a new channel. A no-op on a channel that never stepped."""
        ts = self.solver.timestepper
        if hasattr(ts, "_iteration"):  # Dedalus 3's MultistepIMEX: the order follows it
            ts._iteration = 0
        else:  # another Dedalus: a new timestepper of the same scheme holds no history
            self.solver.timestepper = type(ts)(self.solver)
        if first_step:
            self.solver.initial_iteration = self.solver.iteration
            self.timestep = self.cfl.stored_dt = self.spec.initial_step

    def _stored_step(self, dt: float) -> float:
        """A loaded state's time step for the CFL, at most ``spec.max_step`` (a run continued with a
        smaller max_step; the CFL keeps a stored step between its evaluations)."""
        if dt > self.spec.max_step:
            log.info("stored time step %.3g > max_step %.3g: continuing at max_step", dt, self.spec.max_step)
            return self.spec.max_step
        return dt

    # -- stepping -----------------------------------------------------------------------------
    @property
    def sim_time(self) -> float:
        return float(self.solver.sim_time)

    @property
    def iteration(self) -> int:
        return int(self.solver.iteration)

    def step(self) -> float:
        """Advance one CFL-adapted step; return the step size used."""
        self.timestep = float(self.cfl.compute_timestep())
        self.solver.step(self.timestep)
        return self.timestep

    # -- diagnostics --------------------------------------------------------------------------
    def _grid_views(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Views ``(u, v, w)`` of the velocity at scale 1, each (lnx, lnz, ny) with y increasing, in
        the work field (valid until its next use; the state is left as it is). Collective."""
        w = self._work
        w.preset_layout("c")
        w.data[...] = self.u["c"]
        w.change_scales(1)
        g = w["g"]
        comps = (g[0], g[2], g[1])
        if self._y_reversed:
            comps = tuple(c[..., ::-1] for c in comps)
        return comps  # type: ignore[return-value]

    def _grid_velocity(self) -> np.ndarray:
        """Copy of the velocity at scale 1 as (3, lnx, lnz, ny) in (u, v, w) order, y increasing.
        Collective (the copy is agreed: a rank failing to allocate it fails every rank)."""
        return run_agreed(self.comm, np.stack, self._grid_views())

    def diagnostics(self) -> Diagnostics:
        """Plane averages, bulk velocity, wall shear, centreline probe and TKE. Collective."""
        from mpi4py import MPI

        nx, ny, nz = self.spec.shape
        ly = self.spec.lengths[1]
        u, v, w = self._grid_views()  # (lnx, lnz, ny) each, no copy

        def local_sums() -> tuple[np.ndarray, np.ndarray]:
            # products in one reused component-sized buffer (the same sums as (a * b).sum(...))
            buf = np.empty_like(u)

            def prod_sum(a: np.ndarray, b: np.ndarray) -> np.ndarray:
                return np.multiply(a, b, out=buf).sum(axis=(0, 1))

            sums = np.stack([
                u.sum(axis=(0, 1)), v.sum(axis=(0, 1)), w.sum(axis=(0, 1)),
                prod_sum(u, u), prod_sum(v, v), prod_sum(w, w), prod_sum(u, v),
            ])  # (7, ny)
            probe = np.zeros(1)
            if self.grid.local[0].start == 0 and self.grid.local[2].start == 0 and u.size:
                s = 2 * self.grid.y / ly - 1
                probe[0] = cheb.chebval(0.0, cheb.chebfit(s, u[0, 0, :], ny - 1))
            return sums, probe

        # local work between the transforms and the reductions: agreed (one rank failing fails all)
        sums, probe = run_agreed(self.comm, local_sums)
        self.comm.Allreduce(MPI.IN_PLACE, sums, op=MPI.SUM)
        self.comm.Allreduce(MPI.IN_PLACE, probe, op=MPI.SUM)
        mean = sums / (nx * nz)
        U, V, W = mean[0], mean[1], mean[2]
        prof = {
            "U": U, "V": V, "W": W,
            "uu": mean[3] - U * U, "vv": mean[4] - V * V, "ww": mean[5] - W * W, "uv": mean[6] - U * V,
        }
        s = 2 * self.grid.y / ly - 1
        coef = cheb.chebfit(s, U, ny - 1)
        dcoef = cheb.chebder(coef) * (2 / ly)
        bulk = float(self._weights @ U) / ly
        tke = 0.5 * float(self._weights @ (prof["uu"] + prof["vv"] + prof["ww"])) / ly
        return Diagnostics(
            bulk_w=float(self._weights @ W) / ly, dissipation=self._dissipation(), forcing=self.forcing(),
            t=self.sim_time, iteration=self.iteration, bulk=bulk,
            tau_lower=self.spec.nu * float(cheb.chebval(-1.0, dcoef)),
            tau_upper=-self.spec.nu * float(cheb.chebval(1.0, dcoef)),
            probe_u=float(probe[0]), centre_u=float(cheb.chebval(0.0, coef)), tke=tke, profiles=prof,
        )

    def forcing(self) -> float:
        """The streamwise driving per unit mass: the constant body force, or under ``"flow_rate"``
        the pressure gradient that held the bulk velocity at the last step (1 u_tau^2/h in
        equilibrium: it balances the mean wall shear). Collective under ``"flow_rate"``."""
        if self.spec.driving != "flow_rate":
            return self.spec.force
        from mpi4py import MPI

        data = np.ravel(self._drive["g"])  # a constant: one value where it is held
        local = float(data[0]) if data.size else -math.inf
        return float(self.comm.allreduce(local, op=MPI.MAX))

    def _dissipation(self) -> float:
        """nu <|grad u|^2> over the box (identical on every rank). Collective."""
        from mpi4py import MPI

        data = np.ravel(self._grad_sq.evaluate()["g"])  # a constant: one value where it is held
        local = float(data[0]) if data.size else -math.inf
        total = self.comm.allreduce(local, op=MPI.MAX)
        return self.spec.nu * total / math.prod(self.spec.lengths)

    def slices(self, x_indices: list[int] | np.ndarray, root: int = 0) -> np.ndarray | None:
        """Gather y-z planes (u, v, w) at global x indices on ``root``: (n, 3, ny, nz) float64.

        Returns None on the other ranks. Collective.
        """
        nx = self.spec.shape[0]
        idx = [int(i) for i in x_indices]
        bad = [i for i in idx if not 0 <= i < nx]
        if bad:
            raise ConfigError(f"slice x indices {bad} outside [0, {nx})")
        vel = self._grid_views()  # (lnx, lnz, ny) each, no copy
        sx, sz = self.grid.local[0], self.grid.local[2]

        def planes() -> dict[int, tuple[int, np.ndarray]]:  # copies of this rank's planes only
            return {i: (sz.start, np.transpose(np.stack([c[i - sx.start] for c in vel]), (0, 2, 1)))  # (3, ny, lnz)
                    for i in idx if sx.start <= i < sx.stop}

        mine = run_agreed(self.comm, planes)  # local work before the gather: agreed
        parts = self.comm.gather(mine, root=root)
        if self.comm.rank != root:
            return None
        ny, nz = self.spec.shape[1], self.spec.shape[2]
        out = np.zeros((len(idx), 3, ny, nz))
        for k, i in enumerate(idx):
            for part in parts:
                if i in part:
                    z0, block = part[i]
                    out[k, :, :, z0 : z0 + block.shape[2]] = block
        return out

    # -- compact state ------------------------------------------------------------------------
    def save_state(self, path: str | os.PathLike, extra: dict[str, Any] | None = None) -> None:
        """Write the velocity on the grid, float32, as one portable ``.npz`` (root writes). Collective.

        Unlike a checkpoint it is independent of the rank count and about a quarter the size
        (``u (3, nx, ny, nz)`` in (u, v, w) with y increasing, plus time, iteration and step):
        the state a statistical run needs to go on after a move to another machine. The pressure
        and tau variables are not stored: the solver recomputes them on the first step.
        """
        from ..transport import gather

        field = gather(self.comm, self.grid, self._grid_views(), axes="xzy")  # gather copies (agreed)
        err = None
        if self.comm.rank == 0:
            try:
                path = Path(path)
                tmp = path.with_name(path.name + ".tmp.npz")
                meta = dict(sim_time=self.sim_time, iteration=self.iteration, timestep=self.timestep,
                            spec=self.spec.to_dict(), extra=extra or {})
                np.savez_compressed(tmp, u=field.astype(np.float32), meta=json.dumps(meta))
                os.replace(tmp, path)
            except Exception as exc:  # noqa: BLE001 - re-raised on every rank by agree
                err = exc
        agree(self.comm, err)

    def load_state(self, path: str | os.PathLike) -> dict[str, Any]:
        """Restore a :meth:`save_state` file (any rank count); returns its metadata. Collective.

        Raises :class:`CheckpointError` on every rank when the file is unreadable, was written for
        another resolution or box, or, under ``"flow_rate"``, holds another bulk velocity than
        ``spec.bulk`` (as :meth:`seed` refuses). A stored time step above ``spec.max_step``
        continues at max_step.
        """
        from ..transport import scatter

        err, field, meta = None, None, None
        if self.comm.rank == 0:
            try:
                field, meta = read_state(path)
                if tuple(field.shape) != (3, *self.spec.shape):
                    raise CheckpointError(f"{path}: velocity {field.shape} != (3, {self.spec.shape})")
                lengths = tuple(meta["spec"]["lengths"])
                if not np.allclose(lengths, self.spec.lengths, rtol=1e-12):
                    raise CheckpointError(f"{path}: box {lengths} != {self.spec.lengths}")
                if not np.isfinite(field).all():
                    raise CheckpointError(f"{path}: non-finite velocity")
                if self.spec.driving == "flow_rate":  # as seed: the first step would impose the held bulk
                    ly = self.spec.lengths[1]
                    bulk = float(self._weights @ field[0].mean(axis=(0, 2), dtype=np.float64)) / ly
                    # rel 1e-5: a state of this flow rate holds it to float32 round-off (~1e-7)
                    if not math.isclose(bulk, self.spec.bulk, rel_tol=1e-5):
                        raise CheckpointError(
                            f"{path}: bulk velocity {bulk:.6g} != the held {self.spec.bulk:g} of this flow_rate "
                            f"channel (the first step would impose it by an impulsive pressure gradient); load it "
                            f"into a channel holding its bulk (spec.bulk={bulk:.6g}) or driven by the force")
            except CheckpointError as exc:
                err = exc
            except Exception as exc:  # noqa: BLE001 - re-raised on every rank by agree
                err = CheckpointError(f"{path}: unreadable state file ({type(exc).__name__}: {exc})")
        agree(self.comm, err)
        meta = self.comm.bcast(meta, root=0)
        for f in self.solver.state:
            f.preset_layout("c")
            f.data[...] = 0.0
        scatter(self.comm, self.grid, field, out=self.velocity_views(), axes="xzy")
        self.solver.sim_time = meta["sim_time"]
        self.solver.iteration = self.solver.initial_iteration = meta["iteration"]
        self.timestep = self.cfl.stored_dt = self._stored_step(meta["timestep"])
        self._restart_history()
        return meta

    # -- checkpoints --------------------------------------------------------------------------
    def save_checkpoint(self, directory: str | os.PathLike, keep: int = 2, extra: dict[str, Any] | None = None) -> Path:
        """Write the solver state (per-rank coefficient data) under ``directory/it<iteration>``.

        Atomic per file; the checkpoint counts as complete once rank 0 wrote ``meta.json`` after
        every rank finished. Older complete checkpoints beyond ``keep`` are removed. Collective.
        """
        root = Path(directory)
        ck = root / f"it{self.iteration:09d}"
        run_agreed(self.comm, lambda: ck.mkdir(parents=True, exist_ok=True) if self.comm.rank == 0 else None)
        for f in self.solver.state:  # every layout change first (transforms: collective) ...
            f.change_layout("c")

        def write_rank() -> None:  # ... then the local work, agreed: the coefficients written as they lie
            arrays = {f.name: f.data for f in self.solver.state}
            tmp = ck / f"rank{self.comm.rank:04d}.tmp.npz"
            np.savez(tmp, **arrays)
            os.replace(tmp, ck / f"rank{self.comm.rank:04d}.npz")

        run_agreed(self.comm, write_rank)

        def write_meta() -> None:
            if self.comm.rank != 0:
                return
            meta = dict(
                sim_time=self.sim_time, iteration=self.iteration, timestep=self.timestep,
                nranks=self.comm.size, spec=self.spec.to_dict(), extra=extra or {},
            )
            (ck / "meta.tmp.json").write_text(json.dumps(meta, indent=1))
            os.replace(ck / "meta.tmp.json", ck / "meta.json")
            done = sorted(d for d in root.glob("it*") if (d / "meta.json").exists())
            for old in done[:-keep]:
                shutil.rmtree(old, ignore_errors=True)

        run_agreed(self.comm, write_meta)
        return ck

    @staticmethod
    def latest_checkpoint(directory: str | os.PathLike) -> Path | None:
        """The newest complete checkpoint under ``directory`` or None."""
        done = sorted(d for d in Path(directory).glob("it*") if (d / "meta.json").exists())
        return done[-1] if done else None

    def load_checkpoint(self, path: str | os.PathLike) -> dict[str, Any]:
        """Restore the state, time, iteration and time step; returns the checkpoint's metadata.

        The checkpoint must come from the same rank count and resolution, and the same physics:
        box, Re_tau, dealias and driving (and target bulk velocity under ``"flow_rate"``); to go on
        with other physics or ranks from a state, use :meth:`save_state` / :meth:`load_state`. A stored
        time step above ``spec.max_step`` continues at max_step. Raises :class:`CheckpointError` on
        every rank otherwise. Collective.
        """
        ck = Path(path)

        def read() -> tuple[dict[str, Any], dict[str, np.ndarray]]:
            meta = json.loads((ck / "meta.json").read_text())
            if meta["nranks"] != self.comm.size:
                raise CheckpointError(
                    f"{ck}: written by {meta['nranks']} ranks, running on {self.comm.size}; a checkpoint continues on "
                    f"its own rank count. To move the run: load it on {meta['nranks']} ranks and write a compact state "
                    f"(DedalusChannel.save_state; examples/dedalus_channel.py --restart --duration 0 --save-state "
                    f"FILE), which any rank count starts from (load_state; the example's --state FILE)")
            spec = meta["spec"]
            if tuple(spec["shape"]) != tuple(self.spec.shape):
                raise CheckpointError(
                    f"{ck}: shape {tuple(spec['shape'])} != {self.spec.shape}; a checkpoint continues on its own grid. "
                    f"To go on at another resolution, write the state as a field file (cfdseed.fields.write_field) "
                    f"and seed from it with the snapshot source, which interpolates")
            if not np.allclose(spec["lengths"], self.spec.lengths, rtol=1e-12, atol=0):
                raise CheckpointError(f"{ck}: box {tuple(spec['lengths'])} != {self.spec.lengths}")
            driving = spec.get("driving", "force")
            # dealias: another discretisation of the nonlinear term (the coefficients alone load at any)
            same = [("re_tau", spec["re_tau"], self.spec.re_tau), ("driving", driving, self.spec.driving),
                    ("dealias", spec.get("dealias", self.spec.dealias), self.spec.dealias)]
            if self.spec.driving == "flow_rate":
                same.append(("bulk", spec.get("bulk"), self.spec.bulk))
            for name, theirs, ours in same:
                if theirs != ours and not (isinstance(theirs, float) and math.isclose(theirs, ours, rel_tol=1e-12)):
                    raise CheckpointError(f"{ck}: {name} {theirs!r} != {ours!r} (a checkpoint continues its own run; "
                                          "load_state takes a state into other physics)")
            with np.load(ck / f"rank{self.comm.rank:04d}.npz") as data:
                missing = [f.name for f in self.solver.state if f.name not in data]
                if missing:
                    raise CheckpointError(f"{ck}: holds no {', '.join(missing)}")
                arrays = {f.name: data[f.name] for f in self.solver.state}
            for f in self.solver.state:
                f.preset_layout("c")
                if arrays[f.name].shape != f.data.shape:
                    raise CheckpointError(f"{ck}: {f.name} has local shape {arrays[f.name].shape}, expected {f.data.shape}")
            return meta, arrays

        meta, arrays = run_agreed(self.comm, read)
        # the checkpoint of this very point (a driver going on after writing it): the scheme's
        # history is this state's, so the run continues as if never interrupted
        here = self.iteration == meta["iteration"] and self.sim_time == meta["sim_time"]
        for f in self.solver.state:
            f.data[...] = arrays[f.name]
        self.solver.sim_time = meta["sim_time"]
        self.solver.iteration = self.solver.initial_iteration = meta["iteration"]
        self.timestep = self.cfl.stored_dt = self._stored_step(meta["timestep"])
        if not here:
            self._restart_history()
        return meta
