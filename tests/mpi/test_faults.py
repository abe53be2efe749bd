"""Fault injection: an exception on exactly one rank at each stage of the collective entry points.

Every stage of ``init_field`` and ``check_field`` (argument validation, grid agreement, the source,
enforcement, transport, the constraint kernels) is made to fail on one rank only — the root, and
the last rank — and every rank must end promptly with the same exception type and the injected
message. Run on 1–4 ranks by tests/test_mpi.py, whose timeout catches a hang.
"""

from __future__ import annotations


import numpy as np
import pytest
from mpi4py import MPI

import cfdseed
from cfdseed import Grid
from cfdseed import constraints, enforce, halo, transport
from cfdseed import grid as grid_mod
from cfdseed.sources import baselines

comm = MPI.COMM_WORLD
size, rank = comm.Get_size(), comm.Get_rank()
SHAPE, LENGTHS = (12, 17, 10), (2 * np.pi, 2.0, np.pi)


def boom(*args, **kwargs):
    raise OSError(f"injected on rank {rank}")  # a type every rank can raise alike


# stage -> (object, attribute) patched on the failing rank; which ranks the stage runs on
STAGES = {
    "validation": (transport, "block_views"),      # argument checks of prepare / check_field
    "grid agreement": (grid_mod, "check_tiling"),  # inside the collective grid agreement
    "source": (baselines, "smooth_noise"),          # root only: the plug source's noise
    "enforcement": (enforce, "_project"),           # root only: the divergence projection
    "transport": (transport, "_allocate"),          # a transport buffer (root or receiver)
    "checks": (constraints._core, "stats"),         # the C++ kernels of check_field
}
ROOT_ONLY = {"source", "enforcement"}


def failing_ranks(stage):
    if stage in ROOT_ONLY:
        return [0]
    if stage == "transport":
        return sorted({0, size - 1}) if size > 1 else []  # one rank moves no message
    return sorted({0, size - 1})


CASES = [(s, r) for s in STAGES for r in failing_ranks(s)]


def grid():
    return Grid.block(comm, SHAPE, LENGTHS, dims=None, y="chebyshev")


def solver_arrays(g):
    """(u, v, w) as a float32 spectral solver keeps them, Fortran-ordered (x, z, y): the root must
    pack (a cast) and the receivers unpack (strided destinations), so both need buffers."""
    sx, sy, sz = g.local_shape
    return tuple(np.zeros((sx, sz, sy), dtype=np.float32, order="F") for _ in range(3))


@pytest.mark.parametrize("stage,bad", CASES, ids=[f"{s}-rank{r}" for s, r in CASES])
def test_init_field_fails_on_every_rank_alike(stage, bad, monkeypatch):
    g = grid()
    obj, attr = STAGES[stage]
    if not hasattr(obj, attr):
        pytest.fail(f"stage {stage!r}: {obj!r} has no {attr!r} to patch (the test is stale)")
    if rank == bad:
        monkeypatch.setattr(obj, attr, boom)
    with pytest.raises(Exception) as info:
        cfdseed.init_field(comm, g, source="plug", options={"bulk": 15.0}, seed=1, out=solver_arrays(g), axes="xzy")
    monkeypatch.undo()
    names = comm.allgather(type(info.value).__name__)
    msgs = comm.allgather(str(info.value))
    expected = "SourceError" if stage in ROOT_ONLY else "OSError"  # a source's failure is a SourceError
    assert names == [expected] * size, names
    assert all(f"injected on rank {bad}" in m for m in msgs), msgs


@pytest.mark.parametrize("stage", ["validation", "grid agreement", "checks"])
def test_check_field_fails_on_every_rank_alike(stage, monkeypatch):
    g = grid()
    local = np.zeros((3, *g.local_shape))
    obj, attr = (constraints, "block_views") if stage == "validation" else STAGES[stage]
    for bad in sorted({0, size - 1}):
        if rank == bad:
            monkeypatch.setattr(obj, attr, boom)
        with pytest.raises(Exception) as info:
            cfdseed.check_field(comm, g, local)
        monkeypatch.undo()
        names = comm.allgather(type(info.value).__name__)
        msgs = comm.allgather(str(info.value))
        assert names == ["OSError"] * size and all(f"injected on rank {bad}" in m for m in msgs), (names, msgs)


def test_check_field_on_a_spectral_grid_fails_alike_when_the_root_cannot_hold_the_field(monkeypatch):
    """Spectral operators check the field gathered on the root: a root that cannot allocate it
    (memory) raises, and every rank raises the same instead of waiting to send."""
    g = Grid.block(comm, SHAPE, LENGTHS, dims=None, y="chebyshev-cc", operators="spectral")
    local = np.zeros((3, *g.local_shape))
    if rank == 0:
        monkeypatch.setattr(transport, "_allocate", boom)
    with pytest.raises(Exception) as info:
        cfdseed.check_field(comm, g, local)
    monkeypatch.undo()
    names = comm.allgather(type(info.value).__name__)
    msgs = comm.allgather(str(info.value))
    assert names == ["OSError"] * size and all("injected on rank 0" in m for m in msgs), (names, msgs)


@pytest.mark.parametrize("bad_slab", ["wrong shape", "None", "NaN"])
def test_a_user_source_s_bad_slab_on_one_rank_fails_every_rank(bad_slab):
    """The distributed strategy takes a user's Source: a slab of the wrong shape or type, or with
    NaN, on the last rank is a SourceError on every rank (the exchange would have hung)."""
    from cfdseed.grid import block_split
    from cfdseed.sources import Source, SourceInfo

    g = grid()
    nx, ny, nz = SHAPE

    def make(gg, rng):
        return np.zeros((3, *SHAPE)), SourceInfo()

    def make_slabs(c, gg, rng):
        xs = block_split(nx, c.Get_size(), c.Get_rank())
        slab = np.zeros((3, xs.stop - xs.start, ny, nz))
        if c.Get_rank() == c.Get_size() - 1:
            slab = {"wrong shape": slab[:, :, :-1], "None": None, "NaN": slab + np.nan}[bad_slab]
        return slab, SourceInfo()

    with pytest.raises(cfdseed.SourceError) as info:
        cfdseed.init_field(comm, g, source=Source("user", make, make_slabs), strategy="distributed",
                           out=solver_arrays(g), axes="xzy", check=False)
    msgs = comm.allgather(str(info.value))
    assert all(f"rank {size - 1}" in m for m in msgs), msgs


# init_field arguments every rank must pass alike (a mismatch used to hang): name -> (kwargs, the
# last rank's change)
ALIKE = {
    "check": (dict(source="plug", options={"bulk": 15.0}, strategy="root"), {"check": False}),
    "strategy": (dict(source="sem", strategy="distributed"), {"strategy": "root"}),
    "the seed": (dict(source="sem", strategy="distributed"), {"seed": None}),
    "the seed ": (dict(source="sem", strategy="distributed"), {"seed": 2}),  # another value, not only None
    "the options (digest)": (dict(source="sem", strategy="distributed"), {"options": {"divergence_free": False}}),
    "the tolerances": (dict(source="plug", options={"bulk": 15.0}, strategy="root"),
                       {"tolerances": cfdseed.Tolerances(divergence_max=0.0)}),
}


@pytest.mark.parametrize("what", ALIKE)
def test_init_field_arguments_that_steer_the_collectives_are_compared(what):
    if size == 1:
        pytest.skip("one rank cannot disagree")
    kwargs, change = ALIKE[what]
    kwargs = {"seed": 1, "check": True, **kwargs, **(change if rank == size - 1 else {})}
    with pytest.raises(cfdseed.TransportError) as info:
        cfdseed.init_field(comm, grid(), **kwargs)
    msgs = comm.allgather(str(info.value))
    assert all(f"ranks disagree on {what.strip()}" in m for m in msgs), msgs


def test_check_field_compares_the_tolerances():
    """Each rank decides pass or fail by its tolerances: differing ones are refused on every rank."""
    if size == 1:
        pytest.skip("one rank cannot disagree")
    g = grid()
    field = cfdseed.init_field(comm, g, source="plug", options={"bulk": 15.0}, seed=1)
    tol = cfdseed.Tolerances(divergence_max=0.0) if rank == size - 1 else None
    with pytest.raises(cfdseed.TransportError) as info:
        cfdseed.check_field(comm, g, field, tolerances=tol)
    assert all("ranks disagree on the tolerances" in m for m in comm.allgather(str(info.value)))


def test_check_must_be_a_bool_on_every_rank():
    with pytest.raises(cfdseed.ConfigError, match="check must be True or False, got 'no'") as info:
        cfdseed.init_field(comm, grid(), source="plug", seed=1, check="no")
    assert all("check must be" in m for m in comm.allgather(str(info.value)))


@pytest.mark.parametrize("seed", [-1, "abc", 1.5])
def test_a_seed_default_rng_cannot_take_is_refused_on_every_rank(seed):
    with pytest.raises(cfdseed.ConfigError, match="seed must be None, a non-negative integer") as info:
        cfdseed.init_field(comm, grid(), source="plug", seed=seed)
    assert all("seed must be" in m for m in comm.allgather(str(info.value)))


def test_the_distributed_path_resolves_the_source_once(monkeypatch):
    """The source resolved by the agreed decision is the one built: a factory that would fail on a
    second call on one rank (a file gone) cannot leave the other ranks in the slab collectives."""
    from cfdseed import coupling

    calls, real = [], coupling.resolve

    def resolve_once(source, options=None):
        calls.append(source)
        if len(calls) > 1 and rank == size - 1:
            raise OSError(f"injected on rank {rank}: resolved twice")
        return real(source, options)

    monkeypatch.setattr(coupling, "resolve", resolve_once)
    field = cfdseed.init_field(comm, grid(), source="sem", seed=1, strategy="distributed", check=False)
    monkeypatch.undo()
    assert field.shape == (3, *grid().local_shape) and comm.allgather(len(calls)) == [1] * size


def _ones_source():
    """A user's source whose slabs are ones (the distributed strategy's all-to-alls, nothing else)."""
    from cfdseed.grid import block_split
    from cfdseed.sources import Source, SourceInfo

    def make(gg, rng):
        return np.ones((3, *SHAPE)), SourceInfo()

    def make_slabs(c, gg, rng):
        xs = block_split(SHAPE[0], c.Get_size(), c.Get_rank())
        return np.ones((3, xs.stop - xs.start, *SHAPE[1:])), SourceInfo()

    return Source("ones", make, make_slabs)


@pytest.mark.parametrize("dims", [None, "y"], ids=["default tiling", "y tiling"])
def test_from_slabs_fails_on_every_rank_alike_when_one_rank_cannot_allocate(dims, monkeypatch):
    """The all-to-all buffers of the slab redistribution fail on the last rank only."""
    g = Grid.block(comm, SHAPE, LENGTHS, dims=(1, size, 1) if dims else None, y="chebyshev")
    if rank == size - 1:
        monkeypatch.setattr(transport, "_allocate", boom)
    with pytest.raises(OSError) as info:
        cfdseed.init_field(comm, g, source=_ones_source(), strategy="distributed", check=False)
    monkeypatch.undo()
    msgs = comm.allgather(str(info.value))
    assert all(f"injected on rank {size - 1}" in m for m in msgs), msgs


@pytest.mark.parametrize("bad,nth", [(0, 1), (0, 3), (size - 1, 1)],
                         ids=["root block copy", "root receive buffer", "last rank block copy"])
def test_gather_fails_on_every_rank_alike_when_one_rank_cannot_allocate(bad, nth, monkeypatch):
    """check_field's spectral figures gather the field on the root: the nth transport buffer of
    one rank (1: its block copy; on the root 2: the field, 3: the receive buffer) fails."""
    g = Grid.block(comm, SHAPE, LENGTHS, dims=None, y="chebyshev-cc", operators="spectral")
    local = np.zeros((3, *g.local_shape))
    calls, real = [], transport._allocate

    def fail_nth(n, dtype):
        calls.append(n)
        return boom() if len(calls) == nth else real(n, dtype)

    if rank == bad:
        monkeypatch.setattr(transport, "_allocate", fail_nth)
    with pytest.raises(OSError) as info:
        cfdseed.check_field(comm, g, local)
    monkeypatch.undo()
    msgs = comm.allgather(str(info.value))
    assert all(f"injected on rank {bad}" in m for m in msgs), msgs


def test_halo_exchange_fails_on_every_rank_alike_when_one_rank_fails_before_its_messages(monkeypatch):
    """A local step of the last rank's halo exchange (buffers, packing) fails while the other ranks
    would wait for its planes."""
    g = grid()
    if rank == size - 1:
        monkeypatch.setattr(halo, "_shift", boom)
    with pytest.raises(OSError) as info:
        cfdseed.check_field(comm, g, np.zeros((3, *g.local_shape)))
    monkeypatch.undo()
    msgs = comm.allgather(str(info.value))
    assert all(f"injected on rank {size - 1}" in m for m in msgs), msgs


@pytest.mark.parametrize("step", ["copy", "write", "xdmf"])
def test_a_slab_write_failing_on_one_rank_fails_every_rank(step, tmp_path_factory, monkeypatch):
    """write_field_slabs (MPI-IO): one rank's component copy, its part of a collective write
    (completed, with an error returned on that rank alone: a disk full) or the root's XDMF sidecar
    fails: every rank raises, and the next collective write works (no rank left in the last one)."""
    from cfdseed import fields
    from cfdseed.pencils import Slabs

    g = Grid(SHAPE, LENGTHS, y="chebyshev")
    slabs = Slabs(comm, g)
    slab = np.ones(slabs.slab_shape())
    folder = comm.bcast(str(tmp_path_factory.mktemp("slabs")) if rank == 0 else None)
    bad = 0 if step == "xdmf" else size - 1
    if rank == bad and step == "copy":
        monkeypatch.setattr(fields, "np", _Failing(np, "ascontiguousarray"))
    elif rank == bad and step == "write":
        real = MPI.File

        class File:  # MPI.File as fields sees it: this rank's Write_all reports an error after the write
            @staticmethod
            def Open(*args):
                fh = real.Open(*args)

                class Handle:
                    def __getattr__(self, name):
                        return getattr(fh, name)

                    def Write_all(self, buf):
                        fh.Write_all(buf)
                        raise OSError(f"injected on rank {rank}")
                return Handle()
        monkeypatch.setattr(MPI, "File", File)
    elif rank == bad:
        monkeypatch.setattr(fields, "write_xdmf", boom)
    with pytest.raises(Exception) as info:
        fields.write_field_slabs(comm, f"{folder}/f.h5", slab, slabs.x, g, {})
    monkeypatch.undo()
    msgs = comm.allgather(str(info.value))
    assert all(f"injected on rank {bad}" in m for m in msgs), msgs
    fields.write_field_slabs(comm, f"{folder}/g.h5", slab, slabs.x, g, {})
    if rank == 0:
        np.testing.assert_array_equal(fields.read_field(f"{folder}/g.h5")[0], 1.0)


@pytest.mark.parametrize("fault", ["past-nx", "overlap", "gap"])
def test_slab_ranges_that_do_not_tile_the_grid_are_refused_on_every_rank(fault, tmp_path_factory):
    """write_field_slabs accepted an x_range past nx (success on every rank) and never compared the
    ranks' ranges: overlaps and gaps were written as they fell."""
    from cfdseed import fields
    from cfdseed.pencils import Slabs

    g = Grid(SHAPE, LENGTHS, y="chebyshev")
    x = Slabs(comm, g).x
    last = rank == size - 1
    if fault == "past-nx":
        x = slice(x.start, x.stop + 1) if last else x
    elif fault == "overlap" and size > 1:
        x = slice(x.start - 1, x.stop) if last else x
    elif fault == "gap":
        x = slice(x.start + 1, x.stop) if rank == 0 else x
    slab = np.ones((3, x.stop - x.start, *SHAPE[1:]))
    folder = comm.bcast(str(tmp_path_factory.mktemp("tiles")) if rank == 0 else None)
    want = {"past-nx": "x_range must be a slice start:stop with 0 <= start <= stop <= nx",
            "overlap": "do not tile", "gap": "do not tile"}[fault]
    if fault == "overlap" and size == 1:
        pytest.skip("one rank: nothing to overlap")
    with pytest.raises(ValueError) as info:
        fields.write_field_slabs(comm, f"{folder}/f.h5", slab, x, g, {})
    msgs = comm.allgather(str(info.value))
    assert all(want in m for m in msgs), msgs


class _Failing:
    """A module as one module sees it, with one of its functions failing (injected on this rank)."""

    def __init__(self, module, name):
        self._module, self._name = module, name

    def __getattr__(self, name):
        return boom if name == self._name else getattr(self._module, name)


# -- values a float32 delivery cannot hold ---------------------------------------------------------
def _strict(how):
    """A context in which a float64 -> float32 cast that overflows raises (as a solver may run)."""
    import contextlib
    import warnings

    if how == "np.errstate(over='raise')":
        return np.errstate(over="raise")
    stack = contextlib.ExitStack()
    stack.enter_context(warnings.catch_warnings())
    warnings.simplefilter("error")
    return stack


def _huge_slab_source(where):
    """A Source whose field (root path) or x slabs (distributed path) hold 1e300 at ``where``: a finite
    float64 beyond float32, in the last rank's block of a (1, size, 1) tiling."""
    from cfdseed.grid import block_split
    from cfdseed.sources import Source, SourceInfo

    def make(gg, rng):
        f = np.zeros((3, *gg.shape))
        f[(0, *where)] = 1e300
        return f, SourceInfo()

    def make_slabs(c, gg, rng):
        xs = block_split(gg.shape[0], c.Get_size(), c.Get_rank())
        return np.ascontiguousarray(make(gg, rng)[0][:, xs]), SourceInfo()

    return Source("huge", make, make_slabs)


@pytest.mark.parametrize("how", ["np.errstate(over='raise')", "warnings as errors"])
@pytest.mark.parametrize("path", ["scatter", "init_field", "init_field distributed", "from_slabs"])
def test_values_beyond_float32_are_refused_on_every_rank(path, how):
    """A finite float64 beyond float32 passed the checks, then its cast raised mid-transfer on one
    rank (np.seterr, warnings as errors) while the others waited: refused first, on every rank."""
    from cfdseed.pencils import Slabs

    g = Grid.block(comm, SHAPE, LENGTHS, dims=(1, size, 1), y="chebyshev")
    where = (0, SHAPE[1] - 1, 2)  # x = 0: the root's slab; y: the last rank's block
    src = _huge_slab_source(where)
    with _strict(how), pytest.raises((cfdseed.TransportError, cfdseed.SourceError)) as info:
        if path == "scatter":
            field = src.build(g.global_grid(), None).field if rank == 0 else None
            transport.scatter(comm, g, field, dtype=np.float32, chunk_bytes=4 * 3 * SHAPE[1] * SHAPE[2])
        elif path == "from_slabs":
            plan = transport.prepare(comm, g, dtype=np.float32)
            slabs = Slabs(comm, g)
            plan.from_slabs(src.build_slabs(comm, g.global_grid(), None).field, slabs.x_ranges)
        else:
            cfdseed.init_field(comm, g, source=src, dtype=np.float32, check=False,
                               strategy="distributed" if "distributed" in path else "root")
    names = comm.allgather(type(info.value).__name__)
    assert names == [("TransportError" if path in ("scatter", "from_slabs") else "SourceError")] * size, names
    assert all("beyond the range of float32" in m for m in comm.allgather(str(info.value)))


def test_a_non_finite_field_is_cast_quietly_however_the_solver_treats_overflow():
    """Non-finite values hide the range from the check (min and max): the casts themselves must not
    raise on one rank, so the field arrives as float32 (Inf stays Inf, 1e300 becomes Inf)."""
    g = Grid.block(comm, SHAPE, LENGTHS, dims=(1, size, 1), y="chebyshev")
    field = None
    if rank == 0:
        field = np.zeros((3, *SHAPE))
        field[0, 0, -1, 2], field[1, 0, -1, 2] = 1e300, np.inf
    with np.errstate(over="raise", invalid="raise"):
        out = transport.scatter(comm, g, field, dtype=np.float32, chunk_bytes=4 * 3 * SHAPE[1] * SHAPE[2])
    got = comm.allreduce(int(np.isinf(out).sum()))
    assert out.dtype == np.float32 and got == 2


# -- a SystemExit or KeyboardInterrupt where user code runs ------------------------------------------
EXITS = {"SystemExit": lambda: SystemExit("source gave up"), "KeyboardInterrupt": KeyboardInterrupt}


def _exited_alike(info, exc, bad):
    """The failing rank raised its own exception object; every other rank a RuntimeError naming it."""
    kinds = comm.allgather("own" if info.value is exc else type(info.value).__name__)
    assert kinds == ["own" if r == bad else "RuntimeError" for r in range(size)], kinds
    if rank != bad:
        assert str(info.value).startswith(f"{type(exc).__name__}: [rank {bad}]"), str(info.value)


@pytest.mark.parametrize("kind", EXITS)
@pytest.mark.parametrize("path", ["run_agreed", "root", "distributed", "rollout"])
def test_an_exit_in_user_code_on_one_rank_ends_every_rank(path, kind, monkeypatch):
    """``except Exception`` let a SystemExit (a library's sys.exit, argparse in a user's source) or a
    KeyboardInterrupt past the agreement: that rank left, the others waited for it forever."""
    import types

    from cfdseed import synthesis_slabs
    from cfdseed._collective import run_agreed
    from cfdseed.sources import Source

    exc = EXITS[kind]()
    bad = size - 1 if path == "run_agreed" else 0

    def leave(*args, **kwargs):
        if rank == bad:
            raise exc
        return np.zeros((3, *SHAPE)), None

    def leave_slabs(c, g, rng):
        from cfdseed.grid import block_split

        xs = block_split(SHAPE[0], size, rank)
        return leave()[0][:, xs], None

    with pytest.raises((type(exc), RuntimeError)) as info:
        if path == "run_agreed":
            run_agreed(comm, leave)
        elif path == "rollout":  # the root's ring of the distributed gan synthesis
            monkeypatch.setattr(synthesis_slabs, "_rollout", leave)
            plan = types.SimpleNamespace(info=types.SimpleNamespace(anchor=None), gen=None, h=1.0, re_tau=180.0,
                                         tiles=1)
            synthesis_slabs._scatter_ring(comm, plan, grid(), np.random.default_rng(1), 1)
        else:
            cfdseed.init_field(comm, grid(), source=Source("leaving", leave, leave_slabs),
                               strategy=path, check=False)
    _exited_alike(info, exc, bad)
    assert comm.allreduce(1) == size  # nobody left behind in a collective
