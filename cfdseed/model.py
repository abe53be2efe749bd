"""Networks (Generator, Critic), their presets and architecture dicts, and the loaded generator.

Both networks are convolutional with *circular* padding in z (the spanwise direction is periodic,
so outputs are periodic by construction) and zero padding in y (walls). The generator maps a
latent vector to a normalised slice ``(3, ny, nz)`` for any ny, nz: each upsampling stage
resizes to ``ceil(n / 2**k)`` so the last stage lands exactly on (ny, nz) without cropping. The
critic has no batch norm (it would break the per-sample gradient penalty): layer norm or none,
strided convolutions, linear head.

The checkpoint file these are saved in and rebuilt from is :mod:`cfdseed.checkpoint`;
:func:`load_generator` turns one into a :class:`GeneratorHandle` that samples physical slices.
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

from .checkpoint import read_checkpoint
from .config import NORMS
from .errors import CheckpointError

__all__ = [
    "PRESETS",
    "arch_config",
    "check_arch",
    "Generator",
    "Critic",
    "count_parameters",
    "GeneratorHandle",
    "load_generator",
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
_ARCH_KEYS = ("latent_dim", "ny", "nz", "g_channels", "c_channels", "norm")


def arch_config(
    preset: str | None,
    ny: int,
    nz: int,
    *,
    latent_dim: int = 128,
    norm: str = "layer",
    g_channels: Sequence[int] | None = None,
    c_channels: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Validated architecture dict (plain ints/lists/str) from a preset and/or explicit widths.

    Raises
    ------
    CheckpointError
        Unknown preset or norm, non-positive sizes, empty channel lists.
    """
    if preset:
        if preset not in PRESETS:
            raise CheckpointError(f"unknown model preset {preset!r}; must be one of {', '.join(PRESETS)}")
        g_channels = g_channels or PRESETS[preset]["g_channels"]
        c_channels = c_channels or PRESETS[preset]["c_channels"]
    arch = {
        "latent_dim": latent_dim,
        "ny": ny,
        "nz": nz,
        "g_channels": [int(c) for c in (g_channels or [])],
        "c_channels": [int(c) for c in (c_channels or [])],
        "norm": norm,
    }
    check_arch(arch)
    return arch


def check_arch(arch: Mapping[str, Any]) -> None:
    """Raise :class:`CheckpointError` unless ``arch`` is a valid architecture dict (see :func:`arch_config`)."""
    if not isinstance(arch, Mapping) or set(arch) != set(_ARCH_KEYS):
        got = sorted(arch) if isinstance(arch, Mapping) else type(arch).__name__
        raise CheckpointError(f"architecture must have keys {', '.join(_ARCH_KEYS)}; got {got}")
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
        raise CheckpointError("g_channels needs at least 2 entries (base width + one stage)")
    if arch["norm"] not in NORMS:
        raise CheckpointError(f"norm {arch['norm']!r} unknown; must be one of {', '.join(NORMS)}")


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
    """Slices ``(B, 3, ny, nz)`` -> scores ``(B,)``; strided periodic convs, no batch norm."""

    def __init__(self, arch: Mapping[str, Any]) -> None:
        super().__init__()
        check_arch(arch)
        self.arch = dict(arch)
        layers: list[nn.Module] = []
        cin, h, w = 3, arch["ny"], arch["nz"]
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


class GeneratorHandle:
    """A trained generator with its normalisation and grid: :meth:`sample` gives physical slices.

    Attributes: ``latent_dim, ny, nz, y (ndarray), ly, lz, re_tau, u_tau, nu, metadata (dict), statistics,
    arch (dict), device, module (the torch Generator), path (where it was loaded from)``.
    """

    def __init__(self, ck: Mapping[str, Any], device: torch.device, path: str = "<memory>") -> None:
        arch = ck["arch"]
        self.arch = dict(arch)
        self.module = Generator(arch)
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
        #: the training data's one-point statistics (:class:`cfdseed.calibrate.StressTarget`), None
        #: for format-1 checkpoints
        self.statistics = None
        if ck.get("statistics") is not None:
            from .calibrate import stress_target
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


def load_generator(path: str | os.PathLike, device: str | torch.device | None = None) -> GeneratorHandle:
    """Load a generator checkpoint (a shipped model or a training checkpoint).

    Parameters
    ----------
    path
        Checkpoint file.
    device
        ``"cpu"``, ``"cuda"``, ``"cuda:1"``...; None picks CUDA when available.

    Raises
    ------
    CheckpointError
        See :func:`cfdseed.checkpoint.read_checkpoint`; also weights that do not fit the stored
        architecture.
    """
    dev = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return GeneratorHandle(read_checkpoint(path), dev, str(path))

