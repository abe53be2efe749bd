"""Generator/Critic shapes, periodicity, presets, and the loaded generator's samples."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cfdseed import CheckpointError
from cfdseed.model import Critic, Generator, arch_config, count_parameters, load_generator

from test_checkpoint import _ckpt

torch.set_num_threads(1)


@pytest.mark.parametrize("ny,nz", [(9, 8), (13, 10), (17, 7), (64, 32)])
def test_any_grid_size(ny, nz):
    arch = arch_config("cpu-tiny", ny, nz, latent_dim=16)
    g, c = Generator(arch), Critic(arch)
    x = g(torch.randn(3, 16))
    assert x.shape == (3, 3, ny, nz)
    assert c(x).shape == (3,)


@pytest.mark.parametrize("preset,ny,nz,g_target,c_target", [
    ("published-128", 128, 128, 6.8e5, 7.1e5),
    ("wide-512", 128, 512, 1.1e6, 3.1e5),
])
def test_published_parameter_counts(preset, ny, nz, g_target, c_target):
    arch = arch_config(preset, ny, nz)
    ng, nc = count_parameters(Generator(arch)), count_parameters(Critic(arch))
    assert abs(ng / g_target - 1) < 0.05 and abs(nc / c_target - 1) < 0.05, (ng, nc)


def test_critic_has_no_batch_norm_and_is_periodic_by_construction():
    torch.manual_seed(0)
    arch = arch_config("cpu-tiny", 9, 8, latent_dim=8)
    c = Critic(arch)
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in c.modules())
    # a circular shift by the total stride (4) commutes with the strided convs: same score
    x = torch.randn(2, 3, 9, 8)
    feats = c.features(x)
    shifted = c.features(torch.roll(x, 4, dims=-1))
    torch.testing.assert_close(shifted, torch.roll(feats, 1, dims=-1))
    # the generator's convs wrap around: the output at z=0 depends on the input at z=nz-1
    g = Generator(arch)
    inp = torch.zeros(1, arch["g_channels"][-1], 9, 8, requires_grad=True)
    g.out(inp)[0, :, 4, 0].sum().backward()
    assert inp.grad[0, :, 4, -1].abs().sum() > 0
    inp.grad = None  # y is zero padded: the first row does not see the last one
    g.out(inp)[0, :, 0, 3].sum().backward()
    assert inp.grad[0, :, -1, :].abs().sum() == 0


def test_arch_validation():
    with pytest.raises(CheckpointError, match="published-128"):
        arch_config("huge", 8, 8)
    with pytest.raises(CheckpointError, match="norm"):
        arch_config("cpu-tiny", 8, 8, norm="batch")


def test_load_generator_samples_physical_units(tmp_path):
    p, g, _ = _ckpt(tmp_path)
    h = load_generator(p, device="cpu")
    assert (h.ny, h.nz, h.latent_dim, h.re_tau) == (9, 8, 8, 180.0)
    assert h.metadata["source"] == "test" and h.y.shape == (9,)
    a, b = h.sample(5, seed=3), h.sample(5, seed=3)
    assert a.shape == (5, 3, 9, 8) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    lat = np.random.default_rng(0).standard_normal((4, 8)).astype(np.float32)
    with torch.no_grad():
        ref = g(torch.from_numpy(lat)).numpy() * 3.0 + 2.0
    np.testing.assert_allclose(h.sample(4, latent=lat), ref, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="latent"):
        h.sample(3, latent=lat)


def test_generator_kinds_load_by_their_arch(tmp_path):
    """Plane checkpoints without an arch kind (written before it existed, e.g. the packaged format-1 model)
    load as plane generators; conditional ones as ConditionalHandle."""
    from cfdseed.checkpoint import save_checkpoint
    from cfdseed.conditional import ConditionalHandle
    from cfdseed.model import GeneratorHandle

    from test_conditional import tiny_conditional

    p, _, payload = _ckpt(tmp_path)
    assert payload["arch"]["kind"] == "plane"
    old = {**payload, "arch": {k: v for k, v in payload["arch"].items() if k != "kind"}}
    save_checkpoint(tmp_path / "old.pt", old)
    for path in (p, tmp_path / "old.pt"):
        h = load_generator(path, device="cpu")
        assert type(h) is GeneratorHandle and h.kind == "plane"
        np.testing.assert_array_equal(h.sample(2, seed=1), load_generator(p, device="cpu").sample(2, seed=1))
    c = load_generator(tiny_conditional(tmp_path / "c.pt"), device="cpu")
    assert isinstance(c, ConditionalHandle) and c.kind == "conditional" and c.sample(2, seed=0).shape == (2, 3, 9, 8)


def test_packaged_format_1_model_still_loads():
    """default-re180-v1 predates checkpoint format 2 (no kind, no statistics, no hashes)."""
    from cfdseed.checkpoint import default_model, read_checkpoint

    ck = read_checkpoint(default_model("default-re180-v1"))
    assert ck["format_version"] == 1 and "kind" not in ck["arch"]
    h = load_generator(default_model("default-re180-v1"), device="cpu")
    assert h.kind == "plane" and h.sample(1, seed=0).shape == (1, 3, 64, 32)
