"""Networks (Generator, Critic), the presets and architecture dicts of every generator kind, and
the loaded generator.

Both networks are convolutional with *circular* padding in z (the spanwise direction is periodic,
so outputs are periodic by construction) and zero padding in y (walls). The generator maps a
latent vector to a normalised slice ``(3, ny, nz)`` for any ny, nz: each upsampling stage
resizes to ``ceil(n / 2**k)`` so the last stage lands exactly on (ny, nz) without cropping. The
critic has no batch norm (it would break the per-sample gradient penalty): layer norm or none,
strided convolutions, linear head.

Two generator kinds (arch key ``kind``; absent in checkpoints written before it existed: "plane"):
``"plane"``, the networks here (v1: latent -> slice), and ``"conditional"``, the plane-to-plane
networks of :mod:`cfdseed.conditional` (``G(prev, z) -> next``, the next y-z plane one streamwise
step downstream). The checkpoint file these are saved in and rebuilt from is
:mod:`cfdseed.checkpoint`; :func:`load_generator` turns one into a :class:`GeneratorHandle` that
samples physical slices, or a :class:`cfdseed.conditional.ConditionalHandle` that rolls planes out.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import model_path, read_checkpoint
from .config import KINDS, NORMS, check_device
from .errors import CheckpointError, ConfigError

__all__ = [
    "PRESETS",
    "COND_PRESETS",
    "arch_config",
    "arch_kind",
    "check_arch",
    "Generator",
    "Critic",
    "count_parameters",
    "GeneratorHandle",
    "load_generator",
    "torch_device",
]

#: Channel widths per preset. Parameter counts (latent 128, layer norm):
#: published-128 at 3x128x128: G 6.7e5, C 7.1e5; wide-512 at 3x128x512: G 1.07e6, C 3.1e5;
#: cpu-small at 3x64x32: G 2.2e5, C 3.4e4; cpu-tiny (tests) a few thousand.
PRESETS: dict[str, dict[str, list[int]]] = {
    "published-128": {"g_channels": [64, 128, 96, 64, 32, 16], "c_channels": [32, 64, 128, 256, 136]},
    "wide-512": {"g_channels": [64, 128, 96, 64, 32, 16], "c_channels": [32, 64, 64, 128, 144]},
    "cpu-small": {"g_channels": [32, 64, 32, 16], "c_channels": [16, 32, 32, 64]},
    "cpu-tiny": {"g_channels": [16, 16, 8], "c_channels": [8, 16]},
}
#: Conditional (plane-to-plane) presets: ``g_channels`` are the encoder widths from full resolution
#: down to the bottleneck (one halving per step; the decoder mirrors them), ``c_channels`` the pair
#: critic's. cond-small at 3x64x32 (global latent 128, 2 noise maps per level): G 3.1e5, C 4.8e4
#: (about 1.5 s per iteration at batch 32, n_critic 5 on one CPU core); cond-tiny (tests): G 9.5e3,
#: C 1.8e3 at 3x9x8, global latent 8.
COND_PRESETS: dict[str, dict[str, list[int]]] = {
    "cond-small": {"g_channels": [16, 32, 48, 64], "c_channels": [16, 32, 48, 64]},
    "cond-tiny": {"g_channels": [8, 16], "c_channels": [8, 16]},
}
#: Gaussian noise maps per level of a conditional generator (:func:`cfdseed.conditional.latent_layout`).
NOISE_CHANNELS = 2
_ARCH_KEYS = ("latent_dim", "ny", "nz", "g_channels", "c_channels", "norm")
_COND_KEYS = ("kind", *_ARCH_KEYS, "noise_channels", "residual")
#: Optional keys of a conditional architecture; ``band_limit`` has no parameters (a checkpoint
#: without it can seed a run with it: ``train.init_from``).
COND_OPTIONAL = frozenset({"memory", "band_limit"})


def arch_config(
    preset: str | None,
    ny: int,
    nz: int,
    *,
    kind: str = "plane",
    latent_dim: int = 128,
    norm: str = "layer",
    g_channels: Sequence[int] | None = None,
    c_channels: Sequence[int] | None = None,
    residual: bool = True,
    noise_channels: int = NOISE_CHANNELS,
    memory: bool = False,
    band_limit: bool = False,
) -> dict[str, Any]:
    """Validated architecture dict (plain ints/lists/str) from a preset and/or explicit widths.

    ``kind="plane"`` takes the :data:`PRESETS`, ``kind="conditional"`` the :data:`COND_PRESETS`
    and two more keys: ``residual`` (the generator outputs ``prev`` plus a learned increment) and
    ``noise_channels`` (noise maps per level; ``latent_dim`` is then the global latent's size);
    ``memory=True`` (residual only) adds the key ``memory``: the skip becomes a learned factor per
    component and row, ``next = m * prev + increment`` (:class:`cfdseed.conditional.CondGenerator`);
    ``band_limit=True`` adds the key ``band_limit``: the output carries no spanwise Nyquist mode
    (even ``nz``), as the spectral DNS it learns from (parameter-free).

    Raises
    ------
    CheckpointError
        Unknown kind, preset (for that kind) or norm, non-positive sizes, empty channel lists.
    """
    if kind not in KINDS:
        raise CheckpointError(f"generator kind {kind!r} unknown; must be one of {', '.join(KINDS)}")
    presets = PRESETS if kind == "plane" else COND_PRESETS
    if preset:
        if preset not in presets:
            raise CheckpointError(f"unknown model preset {preset!r} for kind {kind!r}; must be one of {', '.join(presets)}")
        g_channels = g_channels or presets[preset]["g_channels"]
        c_channels = c_channels or presets[preset]["c_channels"]
    arch: dict[str, Any] = {
        "kind": kind,
        "latent_dim": latent_dim,
        "ny": ny,
        "nz": nz,
        "g_channels": [int(c) for c in (g_channels or [])],
        "c_channels": [int(c) for c in (c_channels or [])],
        "norm": norm,
    }
    if kind == "conditional":
        arch.update(noise_channels=noise_channels, residual=residual)
        if memory:
            arch["memory"] = True
        if band_limit:
            arch["band_limit"] = True
    check_arch(arch)
    return arch


def arch_kind(arch: Mapping[str, Any]) -> str:
    """The generator kind of an architecture dict ("plane" when it has no ``kind``: older checkpoints)."""
    return arch.get("kind", "plane") if isinstance(arch, Mapping) else "plane"


def check_arch(arch: Mapping[str, Any]) -> None:
    """Raise :class:`CheckpointError` unless ``arch`` is a valid architecture dict (see :func:`arch_config`).

    A plane architecture has the keys ``latent_dim, ny, nz, g_channels, c_channels, norm`` and
    optionally ``kind="plane"``; a conditional one ``kind="conditional"``, the same keys,
    ``noise_channels`` (positive int), ``residual`` (bool) and optionally ``memory`` (true, residual
    only) and ``band_limit`` (true).
    """
    kind = arch_kind(arch)
    if kind not in KINDS:
        raise CheckpointError(f"architecture kind {kind!r} unknown; must be one of {', '.join(KINDS)}")
    keys = _ARCH_KEYS if kind == "plane" else _COND_KEYS
    optional = {"kind"} | (COND_OPTIONAL if kind == "conditional" else set())
    if not isinstance(arch, Mapping) or set(arch) - optional != set(keys) - {"kind"}:
        got = sorted(arch) if isinstance(arch, Mapping) else type(arch).__name__
        raise CheckpointError(f"{kind} architecture must have keys {', '.join(keys)}; got {got}")
    for k in ("latent_dim", "ny", "nz"):
        if not isinstance(arch[k], int) or arch[k] < 1:
            raise CheckpointError(f"architecture {k}={arch[k]!r} must be a positive int")
    if arch["ny"] < 2 or arch["nz"] < 2:
        raise CheckpointError(f"slices must be at least 2x2, got {arch['ny']}x{arch['nz']}")
    for k in ("g_channels", "c_channels"):
        ch = arch[k]
        if not isinstance(ch, list) or not ch or not all(isinstance(c, int) and c > 0 for c in ch):
            raise CheckpointError(f"architecture {k}={ch!r} must be a non-empty list of positive ints")
    if len(arch["g_channels"]) < 2:
        what = "base width + one stage" if kind == "plane" else "full-resolution width + one level"
        raise CheckpointError(f"g_channels needs at least 2 entries ({what})")
    if arch["norm"] not in NORMS:
        raise CheckpointError(f"norm {arch['norm']!r} unknown; must be one of {', '.join(NORMS)}")
    if kind == "conditional" and not isinstance(arch["residual"], bool):
        raise CheckpointError(f"architecture residual={arch['residual']!r} must be true or false")
    if kind == "conditional" and "memory" in arch and (arch["memory"] is not True or arch["residual"] is not True):
        raise CheckpointError(f"architecture memory={arch['memory']!r} must be true, and only with residual=true")
    if kind == "conditional" and "band_limit" in arch and arch["band_limit"] is not True:
        raise CheckpointError(f"architecture band_limit={arch['band_limit']!r} must be true (or absent)")
    if kind == "conditional" and (isinstance(arch["noise_channels"], bool) or not isinstance(arch["noise_channels"], int)
                                  or arch["noise_channels"] < 1):
        raise CheckpointError(f"architecture noise_channels={arch['noise_channels']!r} must be a positive int")


class _PeriodicConv(nn.Module):
    """3x3 convolution, circular padding in z (last axis), zero padding in y."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, stride=stride, padding=(1, 0))  # zeros in y only

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (1, 1, 0, 0), mode="circular"))  # (B, C, ny, nz + 2) in


def _act() -> nn.Module:
    return nn.LeakyReLU(0.2)


def _stage_sizes(n: int, stages: int) -> list[int]:
    return [math.ceil(n / 2 ** (stages - k)) for k in range(stages + 1)]


class Generator(nn.Module):
    """Latent ``(B, latent_dim)`` -> normalised slices ``(B, 3, ny, nz)``."""

    def __init__(self, arch: Mapping[str, Any]) -> None:
        super().__init__()
        check_arch(arch)
        if arch_kind(arch) != "plane":
            raise CheckpointError(f"Generator builds plane architectures, got kind {arch_kind(arch)!r} "
                                  "(cfdseed.conditional.CondGenerator builds conditional ones)")
        self.arch = dict(arch)
        ch = arch["g_channels"]
        stages = len(ch) - 1
        self.hs = _stage_sizes(arch["ny"], stages)
        self.ws = _stage_sizes(arch["nz"], stages)
        self.c0 = ch[0]
        self.fc = nn.Linear(arch["latent_dim"], ch[0] * self.hs[0] * self.ws[0])
        self.blocks = nn.ModuleList(
            nn.Sequential(_PeriodicConv(a, b), _act(), _PeriodicConv(b, b), _act())
            for a, b in zip(ch[:-1], ch[1:])
        )
        self.out = _PeriodicConv(ch[-1], 3)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(self.fc(z), 0.2).view(-1, self.c0, self.hs[0], self.ws[0])  # (B, c0, h0, w0)
        for k, block in enumerate(self.blocks, start=1):
            x = F.interpolate(x, size=(self.hs[k], self.ws[k]), mode="nearest")  # (B, c, h_k, w_k)
            x = block(x)
        return self.out(x)  # (B, 3, ny, nz)


class Critic(nn.Module):
    """Slices ``(B, 3, ny, nz)`` -> scores ``(B,)``; strided periodic convs, no batch norm.

    ``in_channels`` other than 3: the trunk of the pair critic (:class:`cfdseed.conditional.PairCritic`).
    """

    def __init__(self, arch: Mapping[str, Any], in_channels: int = 3) -> None:
        super().__init__()
        check_arch(arch)
        self.arch = dict(arch)
        layers: list[nn.Module] = []
        cin, h, w = in_channels, arch["ny"], arch["nz"]
        for c in arch["c_channels"]:
            layers.append(_PeriodicConv(cin, c, stride=2))
            if arch["norm"] == "layer":
                # layer norm over (C, h, w), per sample; before the activation so that its shift
                # is not a direction the critic loss cannot see (zero gradient, noise under Adam)
                layers.append(nn.GroupNorm(1, c))
            layers.append(_act())
            cin, h, w = c, math.ceil(h / 2), math.ceil(w / 2)
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(cin * h * w, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1)).squeeze(1)  # (B,)


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


class _Handle:
    """What every loaded generator has: its module (weights loaded, eval mode), normalisation, grid."""

    def _build(self, arch: Mapping[str, Any]) -> nn.Module:
        raise NotImplementedError

    def __init__(self, ck: Mapping[str, Any], device: torch.device, path: str = "<memory>") -> None:
        arch = ck["arch"]
        self.arch = dict(arch)
        self.module = self._build(arch)
        try:
            self.module.load_state_dict(ck["generator"], strict=True)
        except (RuntimeError, TypeError, AttributeError) as exc:
            raise CheckpointError(
                f"{path}: generator weights do not fit the stored architecture "
                f"(foreign or edited checkpoint): {str(exc).splitlines()[0]}"
            ) from None
        self.device = device
        self.module.to(device).eval()
        g = ck["grid"]
        self.latent_dim: int = arch["latent_dim"]
        self.ny, self.nz = int(g["ny"]), int(g["nz"])
        self.y = np.asarray(torch.as_tensor(g["y"]).cpu(), dtype=np.float64)
        self.ly, self.lz = float(g["ly"]), float(g["lz"])
        self.re_tau, self.u_tau, self.nu = float(g["re_tau"]), float(g["u_tau"]), float(g["nu"])
        self.metadata: dict[str, Any] = dict(ck["metadata"])
        #: the training data's one-point statistics (:class:`cfdseed.targets.StressTarget`), None
        #: for format-1 checkpoints
        self.statistics = None
        if ck.get("statistics") is not None:
            from .targets import stress_target
            from .errors import SourceError

            try:
                self.statistics = stress_target(dict(ck["statistics"]))
            except SourceError as exc:
                raise CheckpointError(f"{path}: stored training statistics are invalid: {exc}") from None
        self.path = path
        mean = torch.as_tensor(ck["norm"]["mean"], dtype=torch.float32)
        std = torch.as_tensor(ck["norm"]["std"], dtype=torch.float32)
        if (self.ny, self.nz) != (arch["ny"], arch["nz"]) or mean.shape != (3, self.ny) or std.shape != (3, self.ny):
            raise CheckpointError(
                f"{path}: grid {self.ny}x{self.nz}, arch {arch['ny']}x{arch['nz']} and norm "
                f"{tuple(mean.shape)} disagree"
            )
        self._mean = mean[:, :, None].to(device)  # (3, ny, 1)
        self._std = std[:, :, None].to(device)


class GeneratorHandle(_Handle):
    """A trained generator with its normalisation and grid: :meth:`sample` gives physical slices.

    Attributes: ``latent_dim, ny, nz, y (ndarray), ly, lz, re_tau, u_tau, nu, metadata (dict), statistics,
    arch (dict), device, module (the torch Generator), path (where it was loaded from)``.
    """

    kind = "plane"

    def _build(self, arch: Mapping[str, Any]) -> nn.Module:
        return Generator(arch)

    @torch.no_grad()
    def sample(self, n: int, seed: int | None = None, latent: np.ndarray | None = None,
               batch: int = 64) -> np.ndarray:
        """``n`` slices ``(n, 3, ny, nz)`` float32 in physical units.

        ``seed`` makes the latent draw reproducible; ``latent`` ``(n, latent_dim)`` replaces it.
        """
        if latent is not None:
            lat = torch.as_tensor(np.asarray(latent), dtype=torch.float32)
            if lat.ndim != 2 or lat.shape != (n, self.latent_dim):
                raise ValueError(f"latent must have shape ({n}, {self.latent_dim}), got {tuple(lat.shape)}")
        else:
            if n < 0:
                raise ValueError(f"n must be >= 0, got {n}")
            gen = torch.Generator().manual_seed(int(seed)) if seed is not None else None
            lat = torch.randn(n, self.latent_dim, generator=gen)
        out = np.empty((n, 3, self.ny, self.nz), np.float32)
        for s in range(0, n, batch):
            x = self.module(lat[s : s + batch].to(self.device))  # (b, 3, ny, nz)
            out[s : s + batch] = (x * self._std + self._mean).cpu().numpy()
        return out

    def __repr__(self) -> str:
        return (f"GeneratorHandle(ny={self.ny}, nz={self.nz}, latent_dim={self.latent_dim}, "
                f"re_tau={self.re_tau}, device={self.device})")


def torch_device(device: str | torch.device | None, key: str = "device") -> torch.device:
    """The torch device ``device`` names, checked: None or ``"auto"`` is CUDA when available, else the CPU.

    Raises
    ------
    ConfigError
        Naming ``key``: a name other than auto, cpu, cuda, cuda:N, or a CUDA device this process
        does not have.
    """
    name = "auto" if device is None else str(device)
    check_device(name, key)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"{key}={name!r} but CUDA is not available; use cpu or auto")
        if name != "cuda" and int(name[5:]) >= torch.cuda.device_count():
            raise ConfigError(f"{key}={name!r} but this process sees {torch.cuda.device_count()} CUDA device(s)")
    return torch.device(name)


def load_generator(path: str | os.PathLike, device: str | torch.device | None = None) -> Any:
    """Load a generator checkpoint (a shipped model or a training checkpoint).

    Returns a :class:`GeneratorHandle` for a plane model, a
    :class:`cfdseed.conditional.ConditionalHandle` for a conditional one (both have ``kind``,
    ``sample(n, seed)`` and the grid attributes).

    Parameters
    ----------
    path
        Checkpoint file, or the name of a packaged model (:func:`cfdseed.checkpoint.model_path`).
    device
        ``"cpu"``, ``"cuda"``, ``"cuda:1"``...; None or ``"auto"`` picks CUDA when available.

    Raises
    ------
    ConfigError
        An unknown or unavailable ``device`` (:func:`torch_device`).
    CheckpointError
        See :func:`cfdseed.checkpoint.read_checkpoint`; also weights that do not fit the stored
        architecture.
    """
    dev = torch_device(device)
    path = model_path(path)
    ck = read_checkpoint(path)
    if arch_kind(ck["arch"]) == "conditional":
        from .conditional import ConditionalHandle

        return ConditionalHandle(ck, dev, str(path))
    return GeneratorHandle(ck, dev, str(path))

