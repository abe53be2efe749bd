"""Every named source delivered by init_field on 1-4 ranks passes check_field, for several grids and
decompositions; the delivered blocks are the root's field; bad input raises on every rank."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from mpi4py import MPI

from cfdseed import ConstraintError, Grid, SourceError
from cfdseed.constraints import check_field
from cfdseed.coupling import init_field

from _tilings import decompose

comm = MPI.COMM_WORLD
size, rank = comm.Get_size(), comm.Get_rank()

GRIDS = [
    ((8, 11, 6), (4.0, 2.0, 3.0), "tanh:2.0"),
    ((7, 10, 6), (2.0, 2.0, 1.5), "chebyshev-cc"),
]
KINDS = ("block", "pencil", "bisect1")
BASELINES = [("plug", {}), ("laminar", {}), ("trig", {"mean": "turbulent"}), ("streaks", {})]


def _tiny_model() -> str:
    """Root writes an untrained cpu-tiny generator checkpoint; every rank gets its path."""
    path = None
    if rank == 0:
        import torch

        from cfdseed.model import CHECKPOINT_FORMAT, Generator, arch_config, save_checkpoint

        torch.set_num_threads(1)
        ny, nz = 9, 8
        arch = arch_config("cpu-tiny", ny, nz, latent_dim=8)
        torch.manual_seed(0)
        y = 1.0 - np.cos(np.pi * np.arange(ny) / (ny - 1))
        mean = np.zeros((3, ny))
        mean[0] = 15.0 * y * (2.0 - y)
        std = np.tile(np.sin(np.pi * y / 2.0), (3, 1)) + 1e-3
        path = str(Path(tempfile.mkdtemp()) / "tiny.pt")
        save_checkpoint(path, {
            "format": CHECKPOINT_FORMAT, "format_version": 1, "arch": arch,
            "generator": Generator(arch).state_dict(),
            "norm": {"mean": torch.as_tensor(mean), "std": torch.as_tensor(std)},
            "grid": {"ny": ny, "nz": nz, "y": torch.as_tensor(y), "ly": 2.0, "lz": 3.0, "re_tau": 180.0,
                     "u_tau": 1.0, "nu": 1 / 180},
            "metadata": {"source": "test"},
        })
    return comm.bcast(path, root=0)


MODEL = _tiny_model()
SOURCES = BASELINES + [("gan", {"model": MODEL, "device": "cpu"})]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape,lengths,y", GRIDS)
@pytest.mark.parametrize("name,options", SOURCES)
def test_named_source_passes_checks(name, options, shape, lengths, y, kind):
    g = decompose(comm, kind, shape, lengths, y)
    block = init_field(comm, g, source=name, options=dict(options), seed=3)  # check=True raises on failure
    rep = check_field(comm, g, block)
    assert rep.passed and rep.divergence_max < 1e-10
    # the blocks are the root's field: compare with a serial build on every rank (same seed)
    if kind == "bisect1":
        full = init_field(MPI.COMM_SELF, g.global_grid(), source=name, options=dict(options), seed=3)
        np.testing.assert_array_equal(block, full[(slice(None), *g.local)])


@pytest.mark.parametrize("name", ["plug", "gan"])
def test_float32_delivery_passes(name):
    opts = {"model": MODEL, "device": "cpu"} if name == "gan" else {}
    g = decompose(comm, "block", (8, 12, 6), (4.0, 2.0, 3.0), "uniform")
    block = init_field(comm, g, source=name, options=opts, seed=1, dtype=np.float32)
    assert block.dtype == np.float32


def test_errors_on_every_rank():
    g = decompose(comm, "block", (6, 9, 6), (2.0, 2.0, 1.0), "uniform")
    with pytest.raises(SourceError, match="unknown source"):
        init_field(comm, g, source="sinusoid")
    with pytest.raises(SourceError, match="does not exist"):
        init_field(comm, g, source="gan", options={"model": "/nonexistent/model.pt"})
    with pytest.raises(SourceError, match="supports ratios"):
        init_field(comm, g, source="gan", options={"model": MODEL, "re_tau": 5000.0, "device": "cpu"})
    with pytest.raises(SourceError, match="unknown option"):
        init_field(comm, g, source="streaks", options={"amplitud": 0.1})
    small = decompose(comm, "xslab", (size, 9, 1), (2.0, 2.0, 1.0), "uniform")
    with pytest.raises(SourceError, match="too small"):
        init_field(comm, small, source="laminar")
    # a source with enforcement switched off fails the checks on every rank
    with pytest.raises(ConstraintError):
        init_field(comm, g, source="plug", options={"no_slip": False, "divergence_free": False}, seed=0)
