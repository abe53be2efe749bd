"""The conditional plane generator (v2): ``G(prev, z) -> next``, the y-z plane one streamwise step
``dx`` downstream of ``prev``; its pair critic; and the loaded model (:class:`ConditionalHandle`),
which rolls planes out along x.

Architecture (architecture dicts and presets: :mod:`cfdseed.model`, ``kind="conditional"``):

- **Encoder** of ``prev`` ``(B, 3, ny, nz)`` plus one coordinate channel ``eta = 2 j / (ny - 1) - 1``
  (the statistics depend on y; the network is told where it is rather than left to infer it from
  the padding): a stem convolution at full resolution, then one level per further entry of
  ``g_channels``, each a stride-2 convolution (sizes ``ceil(n / 2)``, as the v1 critic) and a
  convolution.
- **Latent**: one standard normal vector per step (:func:`latent_layout`) in two parts. Gaussian
  noise maps, ``noise_channels`` per level at the bottleneck and at every decoder level down to the
  full plane, concatenated with the features there: the innovation is spatially local at every
  scale (the small scales of v and w decorrelate within a few steps, u's large scales slowly), and
  i.i.d. in z, so the generator is exactly spanwise shift-equivariant and its output statistically
  homogeneous in z (a latent vector mapped to a map by a linear layer, as v1 does, is neither).
  And a global vector of ``latent_dim`` entries, applied by FiLM (per-channel scale and shift) in
  every stage: plane-wide modulation, e.g. of the innovation's amplitude.
- **Decoder**: resize-then-convolve with *bilinear* up-sampling (nearest up-sampling followed by
  convolutions is what left the v1 spectra with an uptick in the last bins and alternating
  neighbouring modes), U-Net skip connections from the encoder level of the same size (the fine
  scales of ``prev`` that survive one step need not squeeze through the bottleneck). The bilinear
  resize is periodic in z (a wrap-around weight, not clamped) and clamped in y.
- **Padding**: circular in z (periodic: outputs are periodic and z-shift equivariant by
  construction), zeros in y. Zero rather than reflect padding in y because the walls are not a
  mirror of the interior: zero padding marks the wall to every layer (a wall-distance cue the
  coordinate channel then makes explicit), where reflection would make a near-wall row look like
  its interior neighbour (and flip-symmetric features blur the sign of v at the wall).
- **Residual** (``arch["residual"]``, default true): ``next = prev + increment``. Consecutive planes
  at the training data's spacing (dx+ ~ 18 in the Re_tau 180 reference run) are strongly correlated,
  so the increment is the small part to learn and the identity is the right starting point; the
  last convolution is initialised at 1/10 of its default scale for that reason.
- **Band limit** (``arch["band_limit"]``, even ``nz``): the output's spanwise Nyquist mode is removed
  (a fixed projection, no parameters). The Dedalus data hold that mode at exactly zero (its Fourier
  basis on ``nz`` points keeps ``nz / 2`` modes), so any energy there is an artefact, and fed back
  through a rollout it grew to 20-190x the data's tail (``benchmarks/field_physics.py model``).
- **Pair critic**: ``(prev, next, eta)`` ``(B, 7, ny, nz)`` -> score, the v1 critic's trunk
  (strided periodic convolutions, layer norm, linear head) on 7 channels.

Everything works in the normalised units of :class:`cfdseed.data.NormStats`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .errors import CheckpointError, SourceError
from .model import Critic, _act, _Handle, _PeriodicConv, _stage_sizes, arch_kind, check_arch
from .stats import rfft_weights

__all__ = ["CondGenerator", "PairCritic", "ConditionalHandle", "Anchor", "BURN_IN", "START_NOISE", "START_RANK",
           "resize_matrix", "latent_layout", "latent_size", "start_modes", "spanwise_gain"]

#: Rollout burn-in in half-heights h of the model: a chain started from the mean profile plus noise
#: is run this far before planes are kept. 6 h is four times the streamwise integral length of u
#: near the centre of a Re_tau 180 channel (~1.5 h, the longest-lived component), so the start is
#: remembered at about e^-4 ~ 2 %.
BURN_IN = 6.0
#: Start of a rollout without stored start modes: the mean profile plus this much Gaussian noise,
#: in units of the data's RMS (a chain remembers its start: with a 150-iteration pilot such chains
#: kept a twentieth of the data's energy and no large spanwise scales).
START_NOISE = 0.1
#: Modes kept per spanwise wavenumber by :func:`start_modes` (of 3 ny).
START_RANK = 16


def start_modes(chunks: Iterable[np.ndarray], rank: int = START_RANK) -> torch.Tensor:
    """The Gaussian start of a rollout: the data's in-plane two-point statistics, low-rank.

    ``chunks`` yields normalised planes ``(k, 3, ny, nz)``. Per spanwise wavenumber ``k_z`` the
    covariance ``C = E[X X^H]`` of the ``3 ny`` coefficients ``X = rfft_z(plane)`` (every component
    and row together, so wall-normal and cross-component correlations are kept); its ``rank``
    leading eigenvectors scaled by the square roots of their eigenvalues are returned,
    ``(nz // 2 + 1, 3 ny, rank)`` complex64. :meth:`ConditionalHandle.rollout` draws start planes
    ``irfft_z(M a)`` from them (``a`` standard complex normal; real at ``k_z = 0`` and the Nyquist
    wavenumber): Gaussian planes with the data's spanwise spectra and y-z correlations up to the
    rank, none of the data's planes themselves.
    """
    cov, n = None, 0
    for x in chunks:
        x = np.asarray(x, dtype=np.float64)
        coef = np.fft.rfft(x, axis=-1)  # (k, 3, ny, nk)
        v = coef.reshape(x.shape[0], -1, coef.shape[-1]).transpose(2, 0, 1)  # (nk, k, 3 ny)
        part = np.einsum("kni,knj->kij", v, v.conj())
        cov = part if cov is None else cov + part
        n += x.shape[0]
    if cov is None or n == 0:
        raise ValueError("start_modes needs at least one plane")
    cov /= n
    nk, dim = cov.shape[0], cov.shape[1]
    real = _real_coefficients(x.shape[-1])
    r = min(rank, dim)
    out = np.empty((nk, dim, r), np.complex64)
    for k in range(nk):
        w, u = np.linalg.eigh(cov[k].real if real[k] else cov[k])  # ascending; real eigenvectors where real
        out[k] = u[:, ::-1][:, :r] * np.sqrt(np.clip(w[::-1][:r], 0.0, None))
    return torch.as_tensor(out)


def _real_coefficients(nz: int) -> np.ndarray:
    """Which rfft coefficients of a real signal of ``nz`` points are real (the mean and Nyquist):
    those counted once in Parseval sums."""
    return rfft_weights(nz) == 1.0


def resize_matrix(n_in: int, n_out: int, periodic: bool) -> torch.Tensor:
    """Linear interpolation ``(n_out, n_in)`` with half-pixel centres (``align_corners=False``).

    ``periodic``: the neighbour beyond the last point is the first one (z); else the end points are
    held (y, as :func:`torch.nn.functional.interpolate`). Rows sum to one.
    """
    src = (np.arange(n_out) + 0.5) * n_in / n_out - 0.5
    if not periodic:
        src = np.clip(src, 0.0, n_in - 1)
    i0 = np.floor(src).astype(np.int64)
    frac = src - i0
    m = np.zeros((n_out, n_in))
    rows = np.arange(n_out)
    if periodic:
        np.add.at(m, (rows, i0 % n_in), 1.0 - frac)
        np.add.at(m, (rows, (i0 + 1) % n_in), frac)
    else:
        np.add.at(m, (rows, i0), 1.0 - frac)
        np.add.at(m, (rows, np.minimum(i0 + 1, n_in - 1)), frac)
    return torch.as_tensor(m, dtype=torch.float32)


class _Resize(nn.Module):
    """Bilinear resize ``(B, C, h, w) -> (B, C, H, W)``: clamped in y, periodic in z."""

    def __init__(self, h: int, w: int, hh: int, ww: int) -> None:
        super().__init__()
        self.register_buffer("ay", resize_matrix(h, hh, periodic=False), persistent=False)  # (H, h)
        self.register_buffer("az", resize_matrix(w, ww, periodic=True).T.contiguous(), persistent=False)  # (w, W)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.matmul(torch.matmul(self.ay, x), self.az)  # (B, C, H, W)


def _eta(ny: int) -> torch.Tensor:
    return torch.linspace(-1.0, 1.0, ny).view(1, 1, ny, 1)  # (1, 1, ny, 1)


def _with_eta(x: torch.Tensor, eta: torch.Tensor) -> torch.Tensor:
    return torch.cat([x, eta.expand(x.shape[0], 1, -1, x.shape[-1])], dim=1)  # (B, C + 1, ny, nz)


class _Film(nn.Module):
    """Per-channel scale and shift from the latent: ``x (1 + gamma(z)) + beta(z)``."""

    def __init__(self, latent_dim: int, channels: int) -> None:
        super().__init__()
        self.lin = nn.Linear(latent_dim, 2 * channels)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.lin(z)[:, :, None, None].chunk(2, dim=1)  # (B, C, 1, 1) each
        return x * (1.0 + gamma) + beta


def latent_layout(arch: Mapping[str, Any]) -> tuple[int, list[tuple[int, int, int]]]:
    """How a conditional latent vector is cut: ``(global size, [(channels, h, w) per noise map])``.

    The maps run from the bottleneck (coarsest level) to the full plane; the latent's length is
    ``global + sum(c h w)`` (:func:`latent_size`).
    """
    levels = len(arch["g_channels"]) - 1
    hs, ws = _stage_sizes(arch["ny"], levels), _stage_sizes(arch["nz"], levels)  # coarsest first
    return arch["latent_dim"], [(arch["noise_channels"], h, w) for h, w in zip(hs, ws)]


def latent_size(arch: Mapping[str, Any]) -> int:
    """Length of the latent vector of one step of a conditional generator."""
    d, maps = latent_layout(arch)
    return d + sum(c * h * w for c, h, w in maps)


class CondGenerator(nn.Module):
    """``(prev (B, 3, ny, nz), z (B, latent_size))`` -> next plane ``(B, 3, ny, nz)``, normalised units.

    ``z`` is standard normal: its first ``latent_dim`` entries are a global vector (FiLM in every
    stage), the rest are Gaussian noise maps, ``noise_channels`` per level from the bottleneck to
    the full plane (:func:`latent_layout`), concatenated with the features there: spatially local
    innovation, i.i.d. in z, so that the generator stays exactly spanwise shift-equivariant
    (shifting ``prev`` and the maps shifts ``next``) and its output statistically homogeneous in z.
    """

    def __init__(self, arch: Mapping[str, Any]) -> None:
        super().__init__()
        check_arch(arch)
        if arch_kind(arch) != "conditional":
            raise CheckpointError(f"CondGenerator builds conditional architectures, got kind {arch_kind(arch)!r}")
        self.arch = dict(arch)
        ch, d, cn = arch["g_channels"], arch["latent_dim"], arch["noise_channels"]
        levels = len(ch) - 1
        # level k has size (hs[k], ws[k]); level 0 is the full plane
        hs, ws = _stage_sizes(arch["ny"], levels)[::-1], _stage_sizes(arch["nz"], levels)[::-1]
        self.global_dim, self.maps = latent_layout(arch)
        self.latent_size = latent_size(arch)
        self.residual = bool(arch["residual"])
        self.register_buffer("eta", _eta(arch["ny"]), persistent=False)
        self.stem = nn.Sequential(_PeriodicConv(4, ch[0]), _act())
        self.down = nn.ModuleList(
            nn.Sequential(_PeriodicConv(a, b, stride=2), _act(), _PeriodicConv(b, b), _act())
            for a, b in zip(ch[:-1], ch[1:])
        )
        self.mid = _PeriodicConv(ch[-1] + cn, ch[-1])
        self.mid_film = _Film(d, ch[-1])
        # decoder stage k: level k + 1 -> level k (k = levels - 1 .. 0)
        self.up = nn.ModuleList(_Resize(hs[k + 1], ws[k + 1], hs[k], ws[k]) for k in range(levels))
        self.fuse = nn.ModuleList(_PeriodicConv(ch[k + 1] + ch[k] + cn, ch[k]) for k in range(levels))
        self.film = nn.ModuleList(_Film(d, ch[k]) for k in range(levels))
        self.refine = nn.ModuleList(_PeriodicConv(ch[k], ch[k]) for k in range(levels))
        self.out = _PeriodicConv(ch[0], 3)
        #: ``memory`` architectures: the skip's factor per component and row, ``next = m * prev + out``
        #: (1 here: the plain residual; the trainer sets it to the data's one-step correlation)
        self.memory = nn.Parameter(torch.ones(3, arch["ny"], 1)) if arch.get("memory") else None
        #: ``band_limit`` (even nz): (-1)^k over z; the output's component along it (the spanwise
        #: Nyquist mode) is removed
        nyq = torch.tensor([(-1.0) ** k for k in range(arch["nz"])]) if arch.get("band_limit") and arch["nz"] % 2 == 0 else None
        self.register_buffer("nyquist", nyq, persistent=False)
        with torch.no_grad():  # a small first increment: training starts near next = prev
            self.out.conv.weight.mul_(0.1)
            self.out.conv.bias.zero_()

    def split_latent(self, z: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``z (B, latent_size)`` -> global ``(B, latent_dim)`` and noise maps ``(B, c, h_k, w_k)``,
        bottleneck first."""
        if z.dim() != 2 or z.shape[1] != self.latent_size:
            raise ValueError(f"latent must have shape (B, {self.latent_size}), got {tuple(z.shape)}")
        parts = torch.split(z, [self.global_dim] + [c * h * w for c, h, w in self.maps], dim=1)
        return parts[0], [p.reshape(-1, c, h, w) for p, (c, h, w) in zip(parts[1:], self.maps)]

    def forward(self, prev: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        g, noise = self.split_latent(z)  # (B, d); maps coarsest first
        x = self.stem(_with_eta(prev, self.eta))  # (B, c0, ny, nz)
        skips = [x]
        for block in self.down:
            x = block(x)  # (B, c_k, h_k, w_k), halving
            skips.append(x)
        x = F.leaky_relu(self.mid_film(self.mid(torch.cat([x, noise[0]], dim=1)), g), 0.2)  # (B, c_L, h_L, w_L)
        levels = len(self.up)
        for k in reversed(range(levels)):
            x = self.up[k](x)  # (B, c_{k+1}, h_k, w_k), bilinear
            x = self.fuse[k](torch.cat([x, skips[k], noise[levels - k]], dim=1))  # (B, c_k, h_k, w_k)
            x = F.leaky_relu(self.film[k](x, g), 0.2)
            x = F.leaky_relu(self.refine[k](x), 0.2)
        out = self.out(x)  # (B, 3, ny, nz)
        if self.residual:
            out = prev * self.memory + out if self.memory is not None else prev + out
        if self.nyquist is not None:
            out = out - (out * self.nyquist).mean(dim=-1, keepdim=True) * self.nyquist
        return out


class Unrolled(nn.Module):
    """``k`` steps of a conditional generator in one call: ``forward(prev, zs)`` with ``zs``
    ``(k, B, latent)`` gives the planes ``(k, B, 3, ny, nz)``, each from the one before (training on
    the generator's own rollouts: ``train.unroll``)."""

    def __init__(self, gen: CondGenerator) -> None:
        super().__init__()
        self.gen = gen

    def forward(self, prev: torch.Tensor, zs: torch.Tensor) -> torch.Tensor:
        out, x = [], prev
        for z in zs:
            x = self.gen(x, z)
            out.append(x)
        return torch.stack(out)


class PairCritic(nn.Module):
    """Pairs ``(prev, next)``, each ``(B, 3, ny, nz)`` -> scores ``(B,)``."""

    def __init__(self, arch: Mapping[str, Any]) -> None:
        super().__init__()
        self.trunk = Critic(arch, in_channels=7)  # prev, next, eta
        self.register_buffer("eta", _eta(arch["ny"]), persistent=False)

    def forward(self, prev: torch.Tensor, nxt: torch.Tensor) -> torch.Tensor:
        return self.trunk(_with_eta(torch.cat([prev, nxt], dim=1), self.eta))  # (B,)


def _rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


class Anchor:
    """The anchor of a rollout (:meth:`ConditionalHandle.rollout`): per component and row, running
    averages at ``rate`` per step of the plane mean and of the mean square about it (over chains
    and z, normalised units, starting from the data's 0 and 1); each call removes the running mean
    from the new planes ``(B, 3, ny, nz)`` and divides by the running RMS (rows without variance in
    the data, ``std`` ``(3, ny, 1)`` below 2e-6 of the component's largest, are held at the mean).
    ``per_chain``: each chain keeps its own averages (over z only), so no chain can run away while
    the others hold the average."""

    def __init__(self, rate: float, std: torch.Tensor, per_chain: bool = False) -> None:
        self.rate, self.per_chain = rate, per_chain
        self.live = (std > 2e-6 * std.amax(dim=1, keepdim=True)).to(torch.float32)  # (3, ny, 1)
        self.mean = torch.zeros_like(self.live)
        self.square = torch.ones_like(self.live)

    def _average(self, x: torch.Tensor) -> torch.Tensor:
        """Over z (per chain: ``(B, 3, ny, 1)``) or over chains and z (``(3, ny, 1)``, the shape
        training checkpoints store)."""
        return x.mean(dim=3, keepdim=True) if self.per_chain else x.mean(dim=(0, 3), keepdim=True)[0]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        a = self.rate
        self.mean = (1 - a) * self.mean + a * self._average(x)
        d = x - self.mean
        self.square = (1 - a) * self.square + a * self._average(d.pow(2))
        return d * self.live / torch.sqrt(torch.clamp(self.square, min=1e-12))


#: What a checkpoint's ``sampling`` entry may set (:class:`ConditionalHandle`): per noise map,
#: coarsest first, a factor on its standard normal draw and the highest spanwise Fourier mode kept;
#: and the kept planes' spanwise gain per component, row and Fourier mode 1 .. nz // 2
SAMPLING_KEYS = ("noise_scale", "noise_band", "spanwise_gain")


def _sampling(sampling: Any, arch: Mapping[str, Any], path: str
              ) -> tuple[tuple[float, ...], tuple[int | None, ...], torch.Tensor | None]:
    """A checkpoint's ``sampling`` checked: ``noise_scale``, one finite factor >= 0 per noise map of
    ``arch`` (:func:`latent_layout`), coarsest first (default all 1); ``noise_band``, per map None
    or the highest spanwise mode ``K`` kept (``0 <= K``, ``2 K + 1 <= w``, the map's width; default
    all None); ``spanwise_gain``, finite factors >= 0 of shape ``(3, ny, nz // 2)`` (default None).
    Absent: the generator as trained."""
    maps = latent_layout(arch)[1]
    n = len(maps)
    if sampling is None:
        return (1.0,) * n, (None,) * n, None
    if not isinstance(sampling, Mapping) or not sampling or set(sampling) - set(SAMPLING_KEYS):
        raise CheckpointError(f"{path}: sampling must be a dict with keys among {', '.join(SAMPLING_KEYS)}, "
                              f"got {sampling!r}")
    scale = sampling.get("noise_scale", [1.0] * n)
    if (not isinstance(scale, (list, tuple)) or len(scale) != n
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
                       for v in scale)):
        raise CheckpointError(f"{path}: sampling.noise_scale must be {n} finite numbers >= 0 (one per noise map, "
                              f"coarsest first), got {scale!r}")
    band = sampling.get("noise_band", [None] * n)
    if (not isinstance(band, (list, tuple)) or len(band) != n
            or not all(k is None or (isinstance(k, int) and not isinstance(k, bool) and k >= 0 and 2 * k + 1 <= w)
                       for k, (_, _, w) in zip(band, maps))):
        raise CheckpointError(f"{path}: sampling.noise_band must be {n} entries, None or the highest spanwise mode K "
                              f"kept (0 <= K, 2 K + 1 <= the map's width {[w for _, _, w in maps]}), got {band!r}")
    gain = sampling.get("spanwise_gain")
    if gain is not None:
        shape = (3, arch["ny"], arch["nz"] // 2)
        try:
            gain = torch.as_tensor(np.asarray(gain, dtype=np.float64), dtype=torch.float32)
        except (TypeError, ValueError):
            gain = None
        if gain is None or tuple(gain.shape) != shape or not bool(torch.isfinite(gain).all()) or bool((gain < 0).any()):
            raise CheckpointError(f"{path}: sampling.spanwise_gain must be finite factors >= 0 of shape {shape} "
                                  "(component, row, spanwise mode 1 .. nz // 2)")
    return tuple(float(v) for v in scale), tuple(band), gain


def spanwise_gain(handle: ConditionalHandle, planes: np.ndarray, samples: int = 512, seed: int = 1000) -> np.ndarray:
    """Per component, row and spanwise Fourier mode 1 .. nz // 2, the factor that takes the model's
    mean spanwise power to the data's: ``sqrt(E_data / E_model)`` (a checkpoint's
    ``sampling.spanwise_gain``, :class:`ConditionalHandle`).

    ``planes`` ``(n, 3, ny, nz)`` are real planes in the model's physical units (e.g. its training
    data, :func:`cfdseed.solvers.runner.states_dataset` of a reference's states); ``E_model`` comes
    from ``samples`` planes of ``handle`` drawn as :meth:`ConditionalHandle.sample` draws them
    (``seed``), without any gain the handle carries: the mean power over planes, so the factors
    take the model's mean spectrum to the data's (one chain's planes may sit well above or below
    it). Modes where the model has no power (below 1e-8 of its row's, e.g. a removed Nyquist
    mode) and rows where the data have none (the walls) keep factor 1.

    Raises
    ------
    ValueError
        ``planes`` not of shape ``(n, 3, ny, nz)`` with n >= 2, or not finite.
    """
    planes = handle._planes(planes, None, "planes")
    if planes.shape[0] < 2 or not np.isfinite(planes).all():
        raise ValueError("planes must be at least 2 finite planes")

    def power(x: np.ndarray) -> np.ndarray:  # (n, 3, ny, nz) -> (3, ny, nz // 2), modes 1 ..
        x = np.asarray(x, np.float64)
        return (np.abs(np.fft.rfft(x, axis=-1)[..., 1:]) ** 2).mean(axis=0)

    kept, handle.spanwise_gain = handle.spanwise_gain, None
    try:
        model = power(handle.sample(samples, seed=seed))
    finally:
        handle.spanwise_gain = kept
    data = power(planes)
    live = (model > 1e-8 * model.sum(axis=-1, keepdims=True)) & (data.sum(axis=-1, keepdims=True)
                                                                 > 1e-12 * data.sum(axis=-1).max(axis=1)[:, None, None])
    gain = np.ones_like(model)
    gain[live] = np.sqrt(data[live] / model[live])
    return gain


class ConditionalHandle(_Handle):
    """A trained conditional generator: :meth:`step`, :meth:`rollout` and :meth:`sample` in physical units.

    Attributes: as :class:`cfdseed.model.GeneratorHandle`, plus ``latent_size`` (one step's latent
    vector: global part and noise maps, :func:`latent_layout`), ``dx_plus`` (the streamwise step of
    one plane in wall units, from the training data's plane spacing), ``dx`` (the same in the
    model's own length units) and ``burn_in`` (default rollout burn-in in steps: :data:`BURN_IN`
    half-heights).
    """

    kind = "conditional"

    def _build(self, arch: Mapping[str, Any]) -> nn.Module:
        return CondGenerator(arch)

    def __init__(self, ck: Mapping[str, Any], device: torch.device, path: str = "<memory>") -> None:
        super().__init__(ck, device, path)
        #: length of one step's latent vector (:func:`latent_layout`); ``latent_dim`` is its global part
        self.latent_size = latent_size(self.arch)
        self.dx_plus = float(ck["grid"]["dx_plus"])
        self.dx = self.dx_plus * self.nu / self.u_tau
        self.burn_in = math.ceil(BURN_IN * 0.5 * self.ly / self.dx)
        #: per noise map, coarsest first (:func:`latent_layout`), the checkpoint's ``sampling``: the
        #: factor its standard normal draw is multiplied by (``noise_scale``, default 1) and the highest
        #: spanwise Fourier mode of the draw kept (``noise_band``, default None: all), the kept modes
        #: rescaled to the draw's variance; both defaults: the generator as trained
        self.noise_scale, self.noise_band, gain = _sampling(ck.get("sampling"), self.arch, path)
        #: the checkpoint's ``sampling.spanwise_gain`` ``(3, ny, nz // 2)``: every plane a rollout keeps
        #: has its spanwise Fourier modes 1 .. nz // 2 multiplied by these factors per component and
        #: row (the plane mean, mode 0, untouched; the chain itself runs on the generator's own
        #: planes); None: kept as generated (:func:`spanwise_gain` fits one)
        self.spanwise_gain = None if gain is None else gain.to(self.device)
        self._maps = latent_layout(self.arch)[1]
        #: the Gaussian start's modes (:func:`start_modes`), None in checkpoints from before them
        self.start_modes: torch.Tensor | None = None
        if ck.get("start_modes") is not None:
            m = torch.as_tensor(ck["start_modes"])
            if m.ndim != 3 or m.shape[:2] != (self.nz // 2 + 1, 3 * self.ny) or not m.is_complex():
                raise CheckpointError(f"{path}: start_modes must be complex ({self.nz // 2 + 1}, {3 * self.ny}, r), "
                                      f"got {m.dtype} {tuple(m.shape)}")
            self.start_modes = m.to(torch.complex64)

    def _gaussian_start(self, chains: int, gen: np.random.Generator) -> torch.Tensor:
        """Normalised start planes ``(chains, 3, ny, nz)`` drawn from :attr:`start_modes`."""
        m = self.start_modes.numpy()  # (nk, 3 ny, r)
        nk, _, r = m.shape
        a = (gen.standard_normal((chains, nk, r)) + 1j * gen.standard_normal((chains, nk, r))) / math.sqrt(2.0)
        real = _real_coefficients(self.nz)
        a[:, real] = gen.standard_normal((chains, int(real.sum()), r))  # real coefficients there
        coef = np.einsum("kir,ckr->cik", m, a).reshape(chains, 3, self.ny, nk)
        x = np.fft.irfft(coef, n=self.nz, axis=-1)
        return torch.as_tensor(x, dtype=torch.float32, device=self.device)

    def _normalise(self, x: np.ndarray) -> torch.Tensor:
        x = torch.as_tensor(np.asarray(x), dtype=torch.float32, device=self.device)
        return (x - self._mean) / self._std

    def _physical(self, x: torch.Tensor) -> np.ndarray:
        return (x * self._std + self._mean).cpu().numpy()

    def _planes(self, x: np.ndarray, n: int | None, what: str) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim != 4 or x.shape[1:] != (3, self.ny, self.nz) or (n is not None and x.shape[0] != n):
            raise ValueError(f"{what} must have shape ({n if n is not None else 'n'}, 3, {self.ny}, {self.nz}), "
                             f"got {x.shape}")
        return x

    @torch.no_grad()
    def step(self, prev: np.ndarray, latent: np.ndarray | None = None, seed: int | None = None) -> np.ndarray:
        """Next planes ``(n, 3, ny, nz)`` float32, one step ``dx`` downstream of ``prev`` (physical units).

        ``latent`` ``(n, latent_size)``, standard normal (:attr:`noise_band` and :attr:`noise_scale`
        shape it as they shape a drawn one); without it one is drawn (``seed`` makes it reproducible).
        The generator's own planes: :attr:`spanwise_gain` shapes only what a rollout keeps.
        """
        prev = self._planes(prev, None, "prev")
        n = prev.shape[0]
        if latent is None:
            latent = np.random.default_rng(seed).standard_normal((n, self.latent_size))
        latent = np.asarray(latent)
        if latent.shape != (n, self.latent_size):
            raise ValueError(f"latent must have shape ({n}, {self.latent_size}), got {latent.shape}")
        z = self._scaled(torch.as_tensor(latent, dtype=torch.float32, device=self.device))
        return self._physical(self.module(self._normalise(prev), z))

    def _scaled(self, z: torch.Tensor) -> torch.Tensor:
        """Standard normal latents ``(B, latent_size)`` with :attr:`noise_band` and :attr:`noise_scale`
        applied to their maps."""
        if all(s == 1.0 for s in self.noise_scale) and all(k is None for k in self.noise_band):
            return z  # as trained
        parts = list(torch.split(z, [self.latent_dim] + [c * h * w for c, h, w in self._maps], dim=1))
        for i, ((c, h, w), s, k) in enumerate(zip(self._maps, self.noise_scale, self.noise_band), start=1):
            if k is not None:  # modes above k removed; 2 k + 1 of w degrees of freedom per row left
                f = torch.fft.rfft(parts[i].reshape(-1, c, h, w), dim=-1)
                f[..., k + 1:] = 0
                parts[i] = (torch.fft.irfft(f, n=w, dim=-1) * math.sqrt(w / (2 * k + 1))).reshape(z.shape[0], -1)
            if s != 1.0:
                parts[i] = parts[i] * s
        return torch.cat(parts, dim=1)

    @torch.no_grad()
    def rollout(self, steps: int, *, chains: int = 1, rng: np.random.Generator | int | None = None,
                burn_in: int | None = None, start: np.ndarray | None = None, batch: int = 64,
                anchor: float | None = None, anchor_per_chain: bool = False) -> np.ndarray:
        """``chains`` independent streamwise sequences of ``steps`` planes, ``dx`` apart.

        Parameters
        ----------
        steps : int
            Planes kept per chain (after the burn-in).
        chains : int
            Independent chains (run together in batches of ``batch``).
        rng : numpy Generator, int or None
            Draws the start noise and every latent (a seed makes it a new Generator).
        burn_in : int, optional
            Steps run and discarded first (default :attr:`burn_in`: :data:`BURN_IN` half-heights).
        start : ndarray (chains, 3, ny, nz), optional
            Physical start planes; default Gaussian planes with the training data's in-plane
            two-point statistics (:func:`start_modes`, stored in the checkpoint by the trainer), or
            for checkpoints without them the mean profile plus :data:`START_NOISE` noise.
        batch : int
            Chains per generator call.
        anchor : float in (0, 1], optional
            Hold the chain's energy and mean profiles to the training data's over the long run: per
            component and row, running averages (rate ``anchor`` per step, starting from the
            data's 0 and 1) of the plane mean and of the mean square about that running mean, over
            chains and z, in normalised units; each
            new plane has the running mean removed and is scaled by ``1 / sqrt(running mean square)``
            (rows with no variance in the data are held at the mean). Plane-to-plane variability
            stays (rate 0.05: a memory of ~20 steps); it stops a drifting model from running away.
            None: the generator alone.
        anchor_per_chain : bool
            Every chain held to its own running averages (over z only) rather than to the chains'
            common ones.

        Returns
        -------
        ndarray (chains, steps, 3, ny, nz) float32, physical units.

        Raises
        ------
        ValueError
            ``steps``, ``chains`` or ``batch`` not an int >= 1, ``burn_in`` not an int >= 0, ``start``
            not of shape ``(chains, 3, ny, nz)``, ``anchor`` neither None nor a rate in (0, 1].
        SourceError
            The chain left the finite numbers (a diverging model).
        """
        for name, v, low in (("steps", steps, 1), ("chains", chains, 1), ("batch", batch, 1)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
                raise ValueError(f"{name} must be an int >= {low}, got {v!r}")
        burn = self.burn_in if burn_in is None else burn_in
        if isinstance(burn, bool) or not isinstance(burn, (int, np.integer)) or burn < 0:
            raise ValueError(f"burn_in must be an int >= 0, got {burn!r}")
        gen = _rng(rng)
        if start is None and self.start_modes is not None:
            x = self._gaussian_start(chains, gen)
        elif start is None:
            x = torch.as_tensor(START_NOISE * gen.standard_normal((chains, 3, self.ny, self.nz)),
                                dtype=torch.float32, device=self.device)  # normalised: mean profile + noise
        else:
            x = self._normalise(self._planes(start, chains, "start"))
        if anchor is not None and not (isinstance(anchor, (int, float)) and 0 < anchor <= 1):
            raise ValueError(f"anchor must be a rate in (0, 1] or None, got {anchor!r}")
        hold = Anchor(anchor, self._std, per_chain=anchor_per_chain) if anchor is not None else None
        out = np.empty((chains, steps, 3, self.ny, self.nz), np.float32)
        for k in range(burn + steps):
            z = self._scaled(torch.as_tensor(gen.standard_normal((chains, self.latent_size)), dtype=torch.float32,
                                             device=self.device))  # (chains, latent)
            x = torch.cat([self.module(x[s : s + batch], z[s : s + batch]) for s in range(0, chains, batch)])
            if not bool(torch.isfinite(x).all()):
                raise SourceError(f"{self.path}: the rollout left the finite numbers at step {k} (a diverging model)")
            if hold is not None:
                x = hold(x)
            if k >= burn:
                out[:, k - burn] = self._physical(self._shaped(x))
        return out

    def _shaped(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised planes ``(B, 3, ny, nz)`` with :attr:`spanwise_gain` applied (as they are without one)."""
        if self.spanwise_gain is None:
            return x
        f = torch.fft.rfft(x, dim=-1)
        f[..., 1:] = f[..., 1:] * self.spanwise_gain
        return torch.fft.irfft(f, n=self.nz, dim=-1)

    def sample(self, n: int, seed: int | None = None, latent: np.ndarray | None = None,
               batch: int = 64, anchor: float | str | None = "auto") -> np.ndarray:
        """``n`` independent planes ``(n, 3, ny, nz)`` float32 in physical units: the last plane of
        ``n`` burnt-in chains (what the plane models' ``sample`` gives, for evaluation), each chain
        anchored to its own averages as the synthesis anchors the one chain of a spanwise tile
        (``"auto"``: :data:`cfdseed.synthesis.ROLLOUT_ANCHOR`; a rate as :meth:`rollout` takes it;
        None: the generator alone). Anchored together, a few of many chains ran away while the
        others held the average (5.6 % of 1024 planes of default-re180-v2 with a z-mean u' beyond
        3 u_tau in some row; the data: none).

        Raises
        ------
        ValueError
            ``latent`` given: a conditional model draws one latent per step.
        """
        if latent is not None:
            raise ValueError("a conditional model draws one latent per rollout step; latent= is for plane models "
                             "(use step(prev, latent) for one step)")
        if n == 0:
            return np.empty((0, 3, self.ny, self.nz), np.float32)
        if anchor == "auto":
            from .synthesis import ROLLOUT_ANCHOR

            anchor = ROLLOUT_ANCHOR
        return self.rollout(1, chains=n, rng=seed, batch=batch, anchor=anchor, anchor_per_chain=True)[:, 0]

    def __repr__(self) -> str:
        return (f"ConditionalHandle(ny={self.ny}, nz={self.nz}, latent_dim={self.latent_dim}, "
                f"dx_plus={self.dx_plus:.4g}, re_tau={self.re_tau}, device={self.device})")
