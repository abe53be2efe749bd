"""Generator/Critic shapes, periodicity, presets, checkpoint loading and its errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cfdseed import CheckpointError
from cfdseed.model import (
    CHECKPOINT_FORMAT,
    Critic,
    Generator,
    arch_config,
    count_parameters,
    default_model,
    load_generator,
    read_checkpoint,
    save_checkpoint,
)

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


def _ckpt(tmp_path, ny=9, nz=8):
    arch = arch_config("cpu-tiny", ny, nz, latent_dim=8)
    torch.manual_seed(1)
    g = Generator(arch)
    y = torch.linspace(0, 2, ny, dtype=torch.float64)
    payload = {
        "format": CHECKPOINT_FORMAT, "format_version": 1, "arch": arch,
        "generator": g.state_dict(),
        "norm": {"mean": torch.full((3, ny), 2.0, dtype=torch.float64),
                 "std": torch.full((3, ny), 3.0, dtype=torch.float64)},
        "grid": {"ny": ny, "nz": nz, "y": y, "ly": 2.0, "lz": 3.0, "re_tau": 180.0, "u_tau": 1.0,
                 "nu": 1 / 180},
        "metadata": {"source": "test"},
    }
    p = tmp_path / "m.pt"
    save_checkpoint(p, payload)
    return p, g, payload


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


def test_checkpoint_errors(tmp_path):
    p, _, payload = _ckpt(tmp_path)
    data = p.read_bytes()
    (tmp_path / "trunc.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_generator(tmp_path / "trunc.pt")
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(CheckpointError, match="not a readable"):
        load_generator(tmp_path / "text.pt")
    torch.save({"model": 1}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a cfdseed checkpoint"):
        load_generator(tmp_path / "other.pt")
    save_checkpoint(tmp_path / "v2.pt", {**payload, "format_version": 2})
    with pytest.raises(CheckpointError, match="format_version 2"):
        read_checkpoint(tmp_path / "v2.pt")
    wrong = dict(payload, arch={**payload["arch"], "g_channels": [32, 16, 8]})
    save_checkpoint(tmp_path / "foreign.pt", wrong)
    with pytest.raises(CheckpointError, match="do not fit"):
        load_generator(tmp_path / "foreign.pt")
    save_checkpoint(tmp_path / "alien.pt", dict(payload, arch={"layers": 5}))
    with pytest.raises(CheckpointError, match="foreign architecture"):
        load_generator(tmp_path / "alien.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_generator(tmp_path / "missing.pt")

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"format": CHECKPOINT_FORMAT, "x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="weights_only"):
        load_generator(tmp_path / "evil.pt")


def test_default_model_reports_missing_package_model(tmp_path, monkeypatch):
    import cfdseed.model as model_mod

    monkeypatch.setattr(model_mod, "DEFAULT_MODEL", tmp_path / "absent.pt")
    with pytest.raises(CheckpointError, match="no default model is packaged"):
        default_model()
