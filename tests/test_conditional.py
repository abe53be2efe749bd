"""The conditional plane generator (cfdseed.conditional): presets on any grid, periodicity, the bilinear
resize, the pair critic, and the loaded model's step / rollout / sample."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cfdseed import CheckpointError, SourceError, load_generator
from cfdseed.conditional import ConditionalHandle, CondGenerator, PairCritic, latent_size, resize_matrix
from cfdseed.grid import wall_normal
from cfdseed.model import COND_PRESETS, arch_config, count_parameters

torch.set_num_threads(1)


def tiny_conditional(path, ny=9, nz=8, re_tau=180.0, lz=3.0, dx_plus=18.0, seed=1):
    """An untrained cond-tiny checkpoint (format 3) with a channel-like normalisation."""
    from cfdseed.targets import stress_target
    from cfdseed.checkpoint import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, save_checkpoint

    arch = arch_config("cond-tiny", ny, nz, kind="conditional", latent_dim=8)
    torch.manual_seed(seed)
    g = CondGenerator(arch)
    y = wall_normal("chebyshev", ny, 2.0)
    mean = np.zeros((3, ny))
    mean[0] = 15.0 * (1 - (y - 1.0) ** 2)
    std = np.tile(np.sin(np.pi * y / 2.0), (3, 1)) + 1e-3
    payload = {
        "format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_VERSION, "arch": arch,
        "generator": g.state_dict(),
        "norm": {"mean": torch.as_tensor(mean), "std": torch.as_tensor(std)},
        "grid": {"ny": ny, "nz": nz, "y": torch.as_tensor(y), "ly": 2.0, "lz": lz, "re_tau": re_tau,
                 "u_tau": 1.0, "nu": 1.0 / re_tau, "dx_plus": dx_plus},
        "metadata": {"source": "test"},
        "statistics": stress_target("lee-moser-180").to_dict(),
    }
    save_checkpoint(path, payload)
    return path


@pytest.mark.parametrize("preset", list(COND_PRESETS))
@pytest.mark.parametrize("ny,nz", [(9, 8), (13, 10), (17, 7), (8, 9), (64, 32)])
def test_presets_build_for_odd_and_even_grids(preset, ny, nz):
    arch = arch_config(preset, ny, nz, kind="conditional", latent_dim=16)
    assert arch["kind"] == "conditional" and arch["residual"] is True
    g, c = CondGenerator(arch), PairCritic(arch)
    prev = torch.randn(2, 3, ny, nz)
    nxt = g(prev, torch.randn(2, latent_size(arch)))
    assert nxt.shape == (2, 3, ny, nz) and torch.isfinite(nxt).all()
    assert c(prev, nxt).shape == (2,)


def test_parameter_counts_of_the_cpu_preset():
    arch = arch_config("cond-small", 64, 32, kind="conditional")
    ng, nc = count_parameters(CondGenerator(arch)), count_parameters(PairCritic(arch))
    assert abs(ng / 3.1e5 - 1) < 0.05 and abs(nc / 4.8e4 - 1) < 0.05, (ng, nc)
    assert latent_size(arch) == 128 + 2 * (64 * 32 + 32 * 16 + 16 * 8 + 8 * 4)


def test_generator_is_spanwise_shift_equivariant_and_residual():
    """Circular padding and a periodic bilinear resize: shifting prev by the total stride shifts next."""
    torch.manual_seed(0)
    arch = arch_config(None, 9, 16, kind="conditional", latent_dim=8, g_channels=[8, 8, 8], c_channels=[8])
    g = CondGenerator(arch).double()  # double: equal to rounding, not to float32's summation order
    prev = torch.randn(2, 3, 9, 16, dtype=torch.float64)
    z = torch.randn(2, latent_size(arch), dtype=torch.float64)
    glob, maps = g.split_latent(z)  # noise maps at widths 4, 8, 16: shifted by 1, 2, 4 cells
    shifted = torch.cat([glob] + [torch.roll(m, 4 * m.shape[-1] // 16, dims=-1).flatten(1) for m in maps], dim=1)
    with torch.no_grad():
        a = g(torch.roll(prev, 4, dims=-1), shifted)
        b = torch.roll(g(prev, z), 4, dims=-1)
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    with pytest.raises(ValueError, match="latent must have shape"):
        g(prev, z[:, :-1])
    # residual: next = prev + increment, and the increment starts small
    with torch.no_grad():
        inc = g(prev, z) - prev
    assert 0 < inc.abs().mean() < 0.5 * prev.abs().mean()
    flat = CondGenerator({**arch, "residual": False}).double()
    with torch.no_grad():
        assert flat(prev, z).abs().mean() < 0.5 * prev.abs().mean()  # no prev in the output


def test_resize_is_bilinear_periodic_in_z_and_clamped_in_y():
    for n_in, n_out in ((4, 8), (5, 9), (3, 7), (8, 8)):
        for periodic in (True, False):
            m = resize_matrix(n_in, n_out, periodic).numpy()
            assert m.shape == (n_out, n_in)
            np.testing.assert_allclose(m.sum(axis=1), 1.0, atol=1e-6)
            assert np.all(m >= 0)
    m = resize_matrix(4, 8, periodic=True).numpy()
    assert m[0, 3] == pytest.approx(0.25) and m[0, 0] == pytest.approx(0.75)  # wraps around
    # exact doubling commutes with a shift by one coarse cell
    v = np.random.default_rng(0).standard_normal(4)
    np.testing.assert_allclose(m @ np.roll(v, 1), np.roll(m @ v, 2), atol=1e-6)
    m = resize_matrix(4, 8, periodic=False).numpy()
    assert m[0, 0] == pytest.approx(1.0) and m[-1, -1] == pytest.approx(1.0)  # held at the ends
    ramp = np.arange(4.0)
    np.testing.assert_allclose((m @ ramp)[1:-1], (np.arange(1, 7) + 0.5) / 2 - 0.5, atol=1e-6)  # linear inside
    # not nearest: no two neighbouring outputs repeat a value of a smooth input
    assert np.all(np.diff(m @ ramp)[1:-1] > 0)


def test_pair_critic_sees_both_planes():
    torch.manual_seed(0)
    arch = arch_config("cond-tiny", 9, 8, kind="conditional", latent_dim=8)
    c = PairCritic(arch)
    prev = torch.randn(1, 3, 9, 8, requires_grad=True)
    nxt = torch.randn(1, 3, 9, 8, requires_grad=True)
    c(prev, nxt).sum().backward()
    assert prev.grad.abs().sum() > 0 and nxt.grad.abs().sum() > 0
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in c.modules())


def test_arch_kinds_and_validation():
    plane = arch_config("cpu-tiny", 9, 8)
    assert plane["kind"] == "plane"
    from cfdseed.model import Generator, check_arch

    old = {k: v for k, v in plane.items() if k != "kind"}  # written before the kind existed: a plane model
    check_arch(old)
    Generator(old)
    with pytest.raises(CheckpointError, match="for kind 'conditional'; must be one of cond-small, cond-tiny"):
        arch_config("cpu-tiny", 9, 8, kind="conditional")
    with pytest.raises(CheckpointError, match="kind 'sequence' unknown; must be one of plane, conditional"):
        arch_config("cond-tiny", 9, 8, kind="sequence")
    cond = arch_config("cond-tiny", 9, 8, kind="conditional")
    with pytest.raises(CheckpointError, match="conditional architecture must have keys.*noise_channels, residual"):
        check_arch({k: v for k, v in cond.items() if k != "residual"})
    with pytest.raises(CheckpointError, match="residual"):
        check_arch({**cond, "residual": 1})
    with pytest.raises(CheckpointError, match="noise_channels"):
        check_arch({**cond, "noise_channels": 0})
    with pytest.raises(CheckpointError, match="Generator builds plane"):
        Generator(cond)
    with pytest.raises(CheckpointError, match="CondGenerator builds conditional"):
        CondGenerator(plane)


def test_handle_step_rollout_sample(tmp_path):
    p = tiny_conditional(tmp_path / "c.pt")
    h = load_generator(p, device="cpu")
    assert isinstance(h, ConditionalHandle) and h.kind == "conditional"
    assert h.dx_plus == 18.0 and h.dx == pytest.approx(0.1)
    assert h.burn_in == int(np.ceil(6.0 * 1.0 / 0.1))  # 6 half-heights of 0.1
    prev = h.sample(4, seed=0)
    assert prev.shape == (4, 3, 9, 8) and prev.dtype == np.float32
    np.testing.assert_array_equal(prev, h.sample(4, seed=0))
    a, b = h.step(prev, seed=1), h.step(prev, seed=1)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, h.step(prev, seed=2))
    assert h.latent_size == 8 + 2 * (5 * 4 + 9 * 8)
    lat = np.random.default_rng(1).standard_normal((4, h.latent_size))
    np.testing.assert_allclose(h.step(prev, latent=lat), a, rtol=1e-6, atol=1e-6)
    r = h.rollout(5, chains=3, rng=np.random.default_rng(4), burn_in=2)
    assert r.shape == (3, 5, 3, 9, 8) and np.all(np.isfinite(r))
    np.testing.assert_array_equal(r, h.rollout(5, chains=3, rng=4, burn_in=2))
    # chains do not depend on the batch they run in (up to float32 summation order)
    np.testing.assert_allclose(r, h.rollout(5, chains=3, rng=4, burn_in=2, batch=2), rtol=1e-5, atol=1e-5)
    # a given start is the rollout's first condition
    start = r[:, -1]
    first = h.rollout(1, chains=3, rng=np.random.default_rng(7), burn_in=0, start=start)[:, 0]
    # the rollout draws one latent per step for all chains
    np.testing.assert_allclose(first, h.step(start, latent=np.random.default_rng(7).standard_normal((3, h.latent_size))),
                               rtol=1e-5, atol=1e-5)
    # sample: the last planes of chains anchored as the synthesis anchors a tile's one chain, each
    # to its own averages (cfdseed evaluate judged unanchored, drifting chains before)
    from cfdseed.synthesis import ROLLOUT_ANCHOR

    np.testing.assert_array_equal(prev, h.rollout(1, chains=4, rng=0, anchor=ROLLOUT_ANCHOR, anchor_per_chain=True)[:, 0])
    assert not np.array_equal(prev, h.rollout(1, chains=4, rng=0, anchor=ROLLOUT_ANCHOR)[:, 0])
    # per chain: a chain started far off changes no other chain (anchored together it changes them all)
    start = h.sample(4, seed=1)
    off = start.copy()
    off[0] *= 3.0
    for per_chain, same in ((True, True), (False, False)):
        a, b = (h.rollout(2, chains=4, rng=5, burn_in=3, start=s0, anchor=ROLLOUT_ANCHOR, anchor_per_chain=per_chain)
                for s0 in (start, off))
        assert np.array_equal(a[1:], b[1:]) == same and not np.array_equal(a[0], b[0])
    np.testing.assert_array_equal(h.sample(4, seed=0, anchor=None), h.rollout(1, chains=4, rng=0)[:, 0])
    assert not np.array_equal(prev, h.sample(4, seed=0, anchor=None))
    with pytest.raises(ValueError, match="latent= is for plane models"):
        h.sample(2, latent=lat)
    with pytest.raises(ValueError, match="prev must have shape"):
        h.step(prev[:, :, :5])
    with pytest.raises(ValueError, match="steps must be an int"):
        h.rollout(0)


def test_noise_scale_multiplies_each_map_s_draw(tmp_path):
    """``sampling.noise_scale`` in a checkpoint: each noise map's standard normal draw times its
    factor (the global vector untouched), in step and rollout alike; checked on load."""
    from cfdseed.checkpoint import model_summary, read_checkpoint, save_checkpoint

    p = tiny_conditional(tmp_path / "c.pt")
    plain = load_generator(p, device="cpu")
    assert plain.noise_scale == (1.0, 1.0) and plain.noise_band == (None, None) and model_summary(p)["sampling"] is None

    def with_sampling(name, sampling):
        ck = read_checkpoint(p)
        ck.pop("sha256")
        ck["sampling"] = sampling
        save_checkpoint(tmp_path / name, ck)
        return tmp_path / name

    half = load_generator(with_sampling("half.pt", {"noise_scale": [1.0, 0.5]}), device="cpu")
    assert half.noise_scale == (1.0, 0.5) and model_summary(tmp_path / "half.pt")["sampling"] == {"noise_scale": [1.0, 0.5]}
    prev = plain.sample(3, seed=0)
    lat = np.random.default_rng(2).standard_normal((3, plain.latent_size))
    fine = slice(8 + 2 * 5 * 4, None)  # the finest map: the last part of the latent (global 8, bottleneck 2x5x4)
    scaled = lat.copy()
    scaled[:, fine] *= 0.5
    np.testing.assert_allclose(half.step(prev, latent=lat), plain.step(prev, latent=scaled), rtol=1e-6, atol=1e-6)
    assert not np.allclose(half.step(prev, latent=lat), plain.step(prev, latent=lat))
    off = load_generator(with_sampling("off.pt", {"noise_scale": [1, 0]}), device="cpu")
    other = lat.copy()
    other[:, fine] = np.random.default_rng(3).standard_normal(other[:, fine].shape)
    np.testing.assert_array_equal(off.step(prev, latent=lat), off.step(prev, latent=other))  # the map is off
    # the rollout draws what step is given: the same scaled latents
    start = prev
    first = half.rollout(1, chains=3, rng=np.random.default_rng(7), burn_in=0, start=start)[:, 0]
    np.testing.assert_allclose(first, half.step(start, latent=np.random.default_rng(7).standard_normal((3, half.latent_size))),
                               rtol=1e-5, atol=1e-5)
    assert not np.allclose(first, plain.rollout(1, chains=3, rng=np.random.default_rng(7), burn_in=0, start=start)[:, 0])
    # noise_band: the finest map's draw keeps spanwise modes 0..1 of its 8 points, at the draw's variance
    banded = load_generator(with_sampling("band.pt", {"noise_band": [None, 1], "noise_scale": [1.0, 0.5]}), device="cpu")
    assert banded.noise_band == (None, 1) and banded.noise_scale == (1.0, 0.5)
    f = np.fft.rfft(lat[:, fine].reshape(3, 2, 9, 8), axis=-1)
    f[..., 2:] = 0
    filtered = lat.copy()
    filtered[:, fine] = 0.5 * np.sqrt(8 / 3) * np.fft.irfft(f, n=8, axis=-1).reshape(3, -1)
    np.testing.assert_allclose(banded.step(prev, latent=lat), plain.step(prev, latent=filtered), rtol=1e-5, atol=1e-5)
    z = banded._scaled(torch.randn(20000, banded.latent_size, generator=torch.Generator().manual_seed(0)))[:, fine]
    assert float(z.var()) == pytest.approx(0.25, rel=0.02)  # 0.5 squared: the band keeps the variance
    spec = torch.fft.rfft(z.reshape(-1, 2, 9, 8), dim=-1).abs().amax(dim=(0, 1, 2))
    assert float(spec[2:].max()) < 1e-5 < float(spec[:2].min())
    for bad, why in (({"noise_scale": [1.0]}, "must be 2 finite numbers"), ({"noise_scale": [1.0, -0.1]}, "must be 2"),
                     ({"noise_scale": [1.0, float("nan")]}, "must be 2"), ({"noise_scale": [1.0, True]}, "must be 2"),
                     ({"noise_scale": [1, 1], "temperature": 1}, "keys among noise_scale, noise_band"),
                     ([1, 1], "must be a dict"), ({}, "must be a dict"), ({"noise_band": [None, 4]}, "2 K \\+ 1 <="),
                     ({"noise_band": [None, -1]}, "noise_band must be 2"), ({"noise_band": [None, 1.5]}, "noise_band")):
        with pytest.raises(CheckpointError, match=why):
            load_generator(with_sampling("bad.pt", bad), device="cpu")


def test_spanwise_gain_shapes_the_kept_planes_and_is_fitted_to_data(tmp_path):
    """``sampling.spanwise_gain``: every plane a rollout keeps has its spanwise modes 1 .. nz // 2
    multiplied per component and row (mode 0 untouched, the chain itself unchanged, ``step`` the
    generator's own); :func:`spanwise_gain` recovers a known gain exactly from planes that carry it,
    whatever gain the handle has; a gain of the wrong shape or sign is refused on load."""
    from cfdseed.checkpoint import model_summary, read_checkpoint, save_checkpoint
    from cfdseed.conditional import spanwise_gain

    p = tiny_conditional(tmp_path / "c.pt")
    plain = load_generator(p, device="cpu")
    gain = np.random.default_rng(4).uniform(0.2, 1.5, (3, 9, 4))

    def with_gain(name, g):
        ck = read_checkpoint(p)
        ck.pop("sha256")
        ck["sampling"] = {"spanwise_gain": g}
        save_checkpoint(tmp_path / name, ck)
        return tmp_path / name

    shaped = load_generator(with_gain("g.pt", gain.tolist()), device="cpu")
    assert plain.spanwise_gain is None and tuple(shaped.spanwise_gain.shape) == (3, 9, 4)
    assert model_summary(tmp_path / "g.pt")["sampling"]["spanwise_gain"] == {
        "shape": [3, 9, 4], "min": pytest.approx(gain.min()), "max": pytest.approx(gain.max())}
    a = plain.rollout(5, chains=3, rng=11, burn_in=2)
    b = shaped.rollout(5, chains=3, rng=11, burn_in=2)
    f = np.fft.rfft(a, axis=-1)
    f[..., 1:] *= gain  # (3, ny, 4) on the last three axes
    np.testing.assert_allclose(b, np.fft.irfft(f, n=8, axis=-1), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(b.mean(axis=-1), a.mean(axis=-1), rtol=1e-5, atol=1e-5)  # plane means kept
    assert not np.allclose(a, b)
    prev = a[:, 0]
    lat = np.random.default_rng(2).standard_normal((3, plain.latent_size))
    np.testing.assert_array_equal(shaped.step(prev, latent=lat), plain.step(prev, latent=lat))
    # fitted: planes that are the model's own draws with the gain applied give back the gain
    own = plain.sample(64, seed=5)
    f = np.fft.rfft(own.astype(np.float64), axis=-1)
    f[..., 1:] *= gain
    data = np.fft.irfft(f, n=8, axis=-1)
    for h in (plain, shaped):
        np.testing.assert_allclose(spanwise_gain(h, data, samples=64, seed=5), gain, rtol=1e-4)
    assert shaped.spanwise_gain is not None  # the fit leaves the handle's gain in place
    other = spanwise_gain(plain, data, samples=64, seed=6)  # other draws: near, not equal
    assert not np.allclose(other, gain, rtol=1e-3) and np.median(np.abs(np.log(other / gain))) < 0.5
    with pytest.raises(ValueError, match="at least 2 finite planes"):
        spanwise_gain(plain, data[:1])
    for bad in (gain[:, :, :3], -gain, np.where(gain > 1, np.nan, gain), "x"):
        with pytest.raises(CheckpointError, match="spanwise_gain must be finite factors >= 0 of shape \\(3, 9, 4\\)"):
            load_generator(with_gain("bad.pt", bad.tolist() if isinstance(bad, np.ndarray) else bad), device="cpu")


def test_conditional_checkpoint_needs_its_step(tmp_path):
    import torch as t

    from cfdseed.checkpoint import read_checkpoint, save_checkpoint

    p = tiny_conditional(tmp_path / "c.pt")
    ck = t.load(p, weights_only=True)
    ck.pop("sha256")
    del ck["grid"]["dx_plus"]
    save_checkpoint(tmp_path / "nodx.pt", ck)
    with pytest.raises(CheckpointError, match="needs grid dx_plus"):
        read_checkpoint(tmp_path / "nodx.pt")


def test_diverging_rollout_is_an_error(tmp_path):
    p = tiny_conditional(tmp_path / "c.pt")
    h = load_generator(p, device="cpu")
    with torch.no_grad():
        h.module.out.conv.bias.fill_(float("inf"))
    with pytest.raises(SourceError, match="left the finite numbers at step 0"):
        h.rollout(2, burn_in=0)


def test_anchored_rollout_holds_a_growing_chain(tmp_path):
    """A model whose energy grows 1.44x per step, with a drifting mean, runs away alone; anchored,
    each row's mean square over chains and z stays near the training data's (1 in normalised
    units), its mean near 0, and rows without variance in the data sit at the mean."""
    p = tiny_conditional(tmp_path / "c.pt")
    h = load_generator(p, device="cpu")
    start = h.sample(8, seed=0)
    noise = torch.Generator().manual_seed(0)

    class Growing(torch.nn.Module):
        def forward(self, prev, z):
            return 1.2 * prev + 0.3 + 0.3 * torch.randn(prev.shape, generator=noise)

    h.module = Growing()
    free = h.rollout(60, chains=8, rng=3, burn_in=0, start=start)
    held = h.rollout(60, chains=8, rng=3, burn_in=0, start=start, anchor=0.1)
    x = (torch.as_tensor(held[:, -20:]) - h._mean) / h._std  # normalised, the last 20 planes
    live = (h._std > 2e-6 * h._std.amax(dim=1, keepdim=True))[..., 0]  # (3, ny)
    energy = x.pow(2).mean(dim=(0, 1, 4))  # (3, ny)
    mean = x.mean(dim=(0, 1, 4))
    assert np.abs(free[:, -1]).max() > 1e3 * np.abs(held[:, -1]).max()
    assert torch.all((energy[live] > 0.5) & (energy[live] < 2.0)), energy
    assert torch.all(mean[live].abs() < 0.5), mean
    assert torch.all(x.abs().amax(dim=(0, 1, 4))[~live] < 1e-3)
    with pytest.raises(ValueError, match="anchor must be a rate"):
        h.rollout(2, anchor=0.0)


def test_start_modes_keep_the_in_plane_two_point_statistics():
    """Planes with correlated components and rows, of known spanwise spectra: starts drawn from
    full-rank modes have the same per-wavenumber covariance (to sampling error), real mean and
    Nyquist coefficients included; a low rank keeps the leading energy."""
    from cfdseed.conditional import start_modes

    rng = np.random.default_rng(0)
    n, ny, nz = 4000, 5, 8
    base = rng.standard_normal((n, 2, ny, nz))
    x = np.empty((n, 3, ny, nz))
    x[:, 0] = base[:, 0] + 0.5 * np.roll(base[:, 0], 1, axis=-1)  # a spanwise-correlated component
    x[:, 1] = 0.7 * x[:, 0] + 0.3 * base[:, 1]  # correlated with it
    x[:, 2] = np.cumsum(base[:, 1], axis=1) / 2  # correlated across rows
    modes = start_modes(np.array_split(x, 7), rank=3 * ny)
    assert modes.shape == (nz // 2 + 1, 3 * ny, 3 * ny) and modes.dtype == torch.complex64

    class Fake:  # the handle's drawing method on these modes
        pass

    h = Fake()
    h.start_modes, h.nz, h.ny, h.device = modes, nz, ny, "cpu"
    draw = ConditionalHandle._gaussian_start(h, 8000, np.random.default_rng(1)).numpy().astype(np.float64)

    def cov(a):
        c = np.fft.rfft(a, axis=-1).reshape(a.shape[0], 3 * ny, -1)
        return np.einsum("nik,njk->kij", c, c.conj()) / a.shape[0]

    want, got = cov(x), cov(draw)
    scale = np.abs(want).max()
    assert np.abs(got - want).max() < 0.08 * scale, np.abs(got - want).max() / scale
    assert abs(draw.var() / x.var() - 1) < 0.03
    low = start_modes([x], rank=4)
    assert low.shape[-1] == 4
    assert 0.5 < float((low.abs() ** 2).sum() / (modes.abs() ** 2).sum()) < 1.0
    with pytest.raises(ValueError, match="at least one plane"):
        start_modes([])


def test_rollout_starts_from_stored_modes(tmp_path):
    """With start modes in the checkpoint the default start has the data's energy (not
    START_NOISE's); malformed modes are a CheckpointError."""
    from cfdseed.checkpoint import read_checkpoint, save_checkpoint
    from cfdseed.conditional import START_NOISE, start_modes

    p = tiny_conditional(tmp_path / "c.pt")
    ck = read_checkpoint(p)
    ny, nz = ck["grid"]["ny"], ck["grid"]["nz"]
    rng = np.random.default_rng(0)
    ck["start_modes"] = start_modes([rng.standard_normal((500, 3, ny, nz))], rank=3 * ny)
    save_checkpoint(tmp_path / "m.pt", ck)
    h = load_generator(tmp_path / "m.pt", device="cpu")
    assert h.start_modes is not None
    old = load_generator(p, device="cpu")
    assert old.start_modes is None

    class Identity(torch.nn.Module):
        def forward(self, prev, z):
            return prev

    for handle, energy in ((h, 1.0), (old, START_NOISE**2)):
        handle.module = Identity()
        x = (torch.as_tensor(handle.rollout(1, chains=64, rng=2, burn_in=0)[:, 0]) - handle._mean) / handle._std
        assert abs(float(x.pow(2).mean()) / energy - 1) < 0.1
    ck["start_modes"] = torch.zeros(3, 4, 2, dtype=torch.complex64)
    save_checkpoint(tmp_path / "bad.pt", ck)
    with pytest.raises(CheckpointError, match="start_modes must be complex"):
        load_generator(tmp_path / "bad.pt", device="cpu")


def test_memory_skip_is_a_learned_factor_per_component_and_row():
    """``memory``: next = m * prev + increment, m (3, ny, 1) a parameter (1 at construction: the
    plain residual); only with residual; old architectures (no key) load unchanged."""
    from cfdseed.model import check_arch

    arch = arch_config("cond-tiny", 9, 8, kind="conditional", latent_dim=8, memory=True)
    assert arch["memory"] is True and "memory" not in arch_config("cond-tiny", 9, 8, kind="conditional")
    torch.manual_seed(0)
    g = CondGenerator(arch).double()
    plain = CondGenerator({k: v for k, v in arch.items() if k != "memory"}).double()
    plain.load_state_dict({k: v for k, v in g.state_dict().items() if k != "memory"})
    prev = torch.randn(2, 3, 9, 8, dtype=torch.float64)
    z = torch.randn(2, latent_size(arch), dtype=torch.float64)
    assert torch.allclose(g(prev, z), plain(prev, z))
    with torch.no_grad():
        g.memory.fill_(0.5)
    assert torch.allclose(g(prev, z) - plain(prev, z), -0.5 * prev)
    assert g.memory.requires_grad and "memory" in dict(g.named_parameters())
    with pytest.raises(CheckpointError, match="only with residual=true"):
        check_arch({**arch, "residual": False})
    with pytest.raises(CheckpointError, match="memory"):
        check_arch({**arch, "memory": 1})


def test_band_limit_removes_the_spanwise_nyquist_mode_only():
    """``band_limit``: for even nz the output's Nyquist coefficient in z is zero and every other
    Fourier coefficient is the plain generator's; odd nz (no Nyquist mode) is unchanged; the
    projection has no parameters (the weights of a plain generator load); other values refused."""
    from cfdseed.model import check_arch

    for nz in (8, 9):
        arch = arch_config("cond-tiny", 9, nz, kind="conditional", latent_dim=8, memory=True, band_limit=True)
        assert arch["band_limit"] is True and "band_limit" not in arch_config("cond-tiny", 9, nz, kind="conditional")
        torch.manual_seed(0)
        g = CondGenerator(arch).double()
        plain = CondGenerator({k: v for k, v in arch.items() if k != "band_limit"}).double()
        plain.load_state_dict(g.state_dict())
        prev = torch.randn(3, 3, 9, nz, dtype=torch.float64)
        z = torch.randn(3, latent_size(arch), dtype=torch.float64)
        a, b = torch.fft.rfft(g(prev, z), dim=-1), torch.fft.rfft(plain(prev, z), dim=-1)
        if nz % 2 == 0:
            assert b[..., -1].abs().max() > 1e-3 and a[..., -1].abs().max() < 1e-10
            a, b = a[..., :-1], b[..., :-1]
        assert torch.allclose(a, b, atol=1e-10)
    with pytest.raises(CheckpointError, match="band_limit"):
        check_arch({**arch, "band_limit": False})
