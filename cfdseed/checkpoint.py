"""The checkpoint file format: atomic writer, validated reader with per-tensor content hashes, and
the packaged default model.

Checkpoint (format version 3) = one plain dict, loadable with ``torch.load(weights_only=True)``::

    format="cfdseed-checkpoint", format_version=3,
    arch       dict: kind ("plane" | "conditional"; absent before version 3: "plane"), latent_dim,
               ny, nz, g_channels, c_channels, norm, and for conditional models noise_channels, residual
               and, optional (:data:`cfdseed.model.COND_OPTIONAL`), memory and band_limit (rebuilds
               both nets; :func:`cfdseed.model.check_arch`)
    generator  state dict (tensors)
    norm       {"mean": (3, ny) float64 tensor, "std": (3, ny)}   normalisation to invert
    grid       {"ny", "nz", "y": (ny,) float64 tensor, "ly", "lz", "re_tau", "u_tau", "nu"}; conditional
               models also "dx_plus": the streamwise step of one generated plane in wall units
               (the training data's plane spacing dx u_tau / nu)
    metadata   dict of str/number (source, iteration, metric values, ...)
    statistics the training data's one-point statistics in wall units, lower half
               (:meth:`cfdseed.targets.StressTarget.to_dict`: name, re_tau, y_delta, U, uu, vv,
               ww, uv as lists): the model's default calibration target. Version 2 on; version-1
               files (the first packaged model) still load and are calibrated to Lee & Moser.
    start_modes (optional; conditional models, written by the trainer) complex (nz // 2 + 1, 3 ny, r)
               tensor: the rollout's Gaussian start, the training data's in-plane two-point
               statistics, low-rank (:func:`cfdseed.conditional.start_modes`); absent: chains start
               from the mean profile plus noise (:data:`cfdseed.conditional.START_NOISE`)
    sampling   (optional; conditional models) {"noise_scale": [factor per noise map, coarsest first],
               "noise_band": [None or the highest spanwise mode kept, per map],
               "spanwise_gain": (3, ny, nz // 2) factors on the kept planes' spanwise modes 1 ..
               nz // 2}, each key optional: how each map's standard normal draw and the planes a
               rollout keeps are shaped at generation (:class:`cfdseed.conditional.ConditionalHandle`);
               absent: the generator as trained
    training   (optional; only in training checkpoints) critic, optimisers, RNG, iteration, config
    sha256     {"generator.fc.weight": hex digest, ...}: every tensor above by its key path, hashed
               over dtype, shape and bytes; added by :func:`save_checkpoint`, verified by
               :func:`read_checkpoint` (files written before hashes existed load unchecked)

:func:`cfdseed.model.load_generator` reads only the generator part, so a training checkpoint is
also a model. torch is imported only by the functions that read or write, so locating the default
model (:func:`default_model`) needs no torch.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .errors import CheckpointError

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "READABLE_VERSIONS",
    "MODELS",
    "DEFAULT_NAME",
    "tensor_hashes",
    "save_checkpoint",
    "read_checkpoint",
    "default_model",
    "packaged_models",
    "model_path",
    "model_summary",
    "file_sha256",
]

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "cfdseed-checkpoint"
CHECKPOINT_VERSION = 3
#: Format versions this cfdseed reads (1: no training statistics; 2: no arch kind, plane models only).
READABLE_VERSIONS = (1, 2, 3)
#: Where the packaged generators live, one ``NAME.pt`` each (model cards: cfdseed/models/README.md).
MODELS = Path(__file__).resolve().parent / "models"
#: The packaged model behind every default (``source="gan"``, ``cfdseed generate / evaluate``).
DEFAULT_NAME = "default-re180-v2.1"
_HASHES = "sha256"


def _tensors(obj: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """``(key path, tensor)`` for every tensor in nested dicts/lists/tuples, e.g. ``generator.fc.weight``."""
    import torch

    if isinstance(obj, torch.Tensor):
        yield prefix, obj
    elif isinstance(obj, Mapping):
        for k, v in obj.items():
            if not (prefix == "" and k == _HASHES):
                yield from _tensors(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _tensors(v, f"{prefix}.{i}")


def tensor_hashes(payload: Mapping[str, Any]) -> dict[str, str]:
    """SHA-256 of every tensor of a checkpoint dict (dtype, shape and bytes), keyed by its key path."""
    import torch

    out = {}
    for name, t in _tensors(payload):
        t = t.detach().cpu().contiguous()
        h = hashlib.sha256(f"{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        out[name] = h.hexdigest()
    return out


def save_checkpoint(path: str | os.PathLike, payload: Mapping[str, Any]) -> None:
    """Write ``payload`` plus its ``sha256`` tensor hashes atomically: temporary file in the same
    folder, flush, fsync, rename."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            torch.save({**payload, _HASHES: tensor_hashes(payload)}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    try:  # make the rename itself durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def _load_error(exc: Exception) -> str:
    """Why torch could not load a file, without torch's advice to load it unsafely."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    found = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if found or "weights_only" in text:
        what = f" ({found.group(1)})" if found else ""
        return (f"it holds a pickled Python object{what}, not only tensors and plain containers; "
                "cfdseed never runs pickled code")
    return text.splitlines()[0] if text.strip() else type(exc).__name__


def _verify(ck: Mapping[str, Any], p: Path) -> None:
    """CheckpointError naming every tensor that differs from, lacks or outlived its stored hash."""
    stored = ck.get(_HASHES)
    if stored is None:
        log.debug("%s: no tensor hashes (written before cfdseed stored them); contents unchecked", p)
        return
    if not isinstance(stored, Mapping):
        raise CheckpointError(f"{p}: the sha256 entry must map tensor names to hex digests")
    actual = tensor_hashes(ck)

    def names(keys: list[str]) -> str:
        return f"tensor(s) {', '.join(keys[:5])}{' ...' if len(keys) > 5 else ''}"

    bad = [k for k, v in actual.items() if k in stored and stored[k] != v]
    unlisted = [k for k in actual if k not in stored]
    lost = [k for k in stored if k not in actual]
    problems = []
    if bad:
        problems.append(f"the content of {names(bad)} does not match its stored sha256")
    if unlisted:
        problems.append(f"{names(unlisted)} have no stored sha256")
    if lost:
        problems.append(f"{names(lost)} listed in sha256 are missing")
    if problems:
        raise CheckpointError(f"{p}: corrupt or edited checkpoint: {'; '.join(problems)}")


def read_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Load and validate a checkpoint dict (``weights_only=True``; never unpickles objects).

    Raises
    ------
    CheckpointError
        Missing file (or a folder), truncated or foreign file, wrong format or version, missing
        keys, a tensor whose content does not match its stored hash (named in the message).
    """
    import torch

    from .model import arch_kind, check_arch

    if not isinstance(path, (str, os.PathLike)) or not str(path).strip():
        raise CheckpointError(f"checkpoint must be a file path, got {path!r}")
    p = Path(path)
    if p.is_dir():
        raise CheckpointError(f"checkpoint {p} is a folder; name the file in it, e.g. {p / 'model.pt'}")
    if not p.is_file():
        raise CheckpointError(f"checkpoint {str(p)!r} does not exist")
    with open(p, "rb") as fh:
        head = fh.read(8)
    kind = {b"\x89HDF\r\n\x1a\n": "an HDF5 file (a dataset or a generated field?)"}.get(head)
    if kind is None and head[:1] in (b"[", b"#") and p.suffix in (".toml", ".txt", ".cfg", ".ini"):
        kind = "a text file (a config?)"
    if kind is not None:
        raise CheckpointError(f"{p}: not a cfdseed checkpoint: it is {kind}; give a model file (.pt)")
    try:
        ck = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a corrupt file can fail anywhere in the unpickler
        raise CheckpointError(
            f"{p}: not a readable cfdseed checkpoint (truncated, corrupt, or not a torch file "
            f"loadable with weights_only=True): {_load_error(exc)}"
        ) from None
    if not isinstance(ck, dict) or ck.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{p}: not a cfdseed checkpoint (no format={CHECKPOINT_FORMAT!r} entry)")
    if ck.get("format_version") not in READABLE_VERSIONS:
        raise CheckpointError(
            f"{p}: checkpoint format_version {ck.get('format_version')!r}; this cfdseed reads "
            f"{', '.join(map(str, READABLE_VERSIONS))}"
        )
    _verify(ck, p)
    need = ("arch", "generator", "norm", "grid", "metadata") + (("statistics",) if ck["format_version"] >= 2 else ())
    missing = [k for k in need if k not in ck]
    if missing:
        raise CheckpointError(f"{p}: checkpoint lacks {', '.join(missing)}")
    try:
        check_arch(ck["arch"])
    except CheckpointError as exc:
        raise CheckpointError(f"{p}: foreign architecture: {exc}") from None
    bad = [k for k, v in ck["generator"].items() if hasattr(v, "isfinite") and v.is_floating_point()
           and not bool(v.isfinite().all())]
    if bad:
        raise CheckpointError(f"{p}: non-finite generator weights ({', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''}): "
                              "a diverged training run's; use an earlier checkpoint")
    grid = ck["grid"]
    need = ("ny", "nz", "y", "ly", "lz", "re_tau", "u_tau", "nu")
    if not isinstance(grid, dict) or any(k not in grid for k in need):
        raise CheckpointError(f"{p}: grid metadata must hold {', '.join(need)}")
    if arch_kind(ck["arch"]) == "conditional":
        dxp = grid.get("dx_plus")
        if isinstance(dxp, bool) or not isinstance(dxp, (int, float)) or not math.isfinite(dxp) or dxp <= 0:
            raise CheckpointError(f"{p}: a conditional model needs grid dx_plus, the plane spacing in wall "
                                  f"units (a positive number); got {dxp!r}")
    return ck


def packaged_models() -> list[str]:
    """Names of the generators packaged with this installation (``MODELS/NAME.pt``), sorted."""
    return sorted(p.stem for p in MODELS.glob("*.pt"))


def default_model(name: str | None = None) -> Path:
    """Path of a packaged generator by name (default :data:`DEFAULT_NAME`; no torch needed).

    Raises
    ------
    CheckpointError
        No such model is packaged in this installation.
    """
    name = DEFAULT_NAME if name is None else name
    path = MODELS / f"{name}.pt"
    if not path.is_file():
        have = ", ".join(packaged_models()) or "none"
        raise CheckpointError(
            f"no packaged model {name!r} ({path} is missing; packaged: {have}). Train one with "
            "`cfdseed train CONFIG.toml` and pass its checkpoint path (e.g. RUN/model.pt) instead"
        )
    return path


def model_path(model: str | os.PathLike | None) -> Path:
    """The checkpoint file behind ``model``: None is the default model, a packaged model's name
    (e.g. ``"default-re180-v2.1"``) its file, anything else a path (an existing file of that name wins)."""
    if model is None:
        return default_model()
    if not isinstance(model, (str, os.PathLike)) or not str(model).strip():
        raise CheckpointError(f"model must be a packaged model's name ({', '.join(packaged_models())}) or a "
                              f"checkpoint path, got {model!r}")
    if isinstance(model, str) and not Path(model).exists() and model in packaged_models():
        return default_model(model)
    return Path(model)


def file_sha256(model: str | os.PathLike | None) -> str:
    """sha256 of the checkpoint file behind ``model`` (as :func:`model_path` takes it): the hash a
    registration pins (the transient campaign's ``model_sha256``)."""
    digest = hashlib.sha256()
    with open(model_path(model), "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_summary(model: str | os.PathLike | None) -> dict[str, Any]:
    """What a model file is (``model`` as :func:`model_path` takes it): name, whether it is the
    default, path, size, the file's sha256 (what a registration pins), generator kind, the training
    grid's Re_tau and ny x nz, the iteration, the parent it was derived from, the training dataset
    (its path when trained and content digest, :meth:`cfdseed.slices.Dataset.identity`; None where
    not recorded), and the name and
    half-channel TKE (wall units) of its stored statistics, its default calibration target (None
    for files without them), and its sampling settings (None: as trained)."""
    from .targets import stress_target

    path = model_path(model)
    ck = read_checkpoint(path)
    meta, grid = ck.get("metadata", {}), ck["grid"]
    stats = ck.get("statistics")
    name = meta.get("name") or path.stem
    return {
        "name": name,
        "default": path.resolve() == (MODELS / f"{DEFAULT_NAME}.pt").resolve(),
        "path": str(path),
        "bytes": path.stat().st_size,
        "sha256": file_sha256(path),
        "kind": ck["arch"].get("kind", "plane"),
        "re_tau": float(grid["re_tau"]),
        "slice": [int(grid["ny"]), int(grid["nz"])],
        "iteration": meta.get("iteration"),
        "parent": meta.get("parent"),
        "dataset": meta.get("dataset"),
        "dataset_identity": meta.get("dataset_identity"),
        "statistics": None if stats is None else stats.get("name"),
        "statistics_tke": None if stats is None else stress_target(dict(stats)).tke_plus(),
        "sampling": _sampling_summary(ck.get("sampling")),
    }


def _sampling_summary(sampling: Any) -> Any:
    """A checkpoint's ``sampling`` as :func:`model_summary` reports it: a ``spanwise_gain`` array by
    its shape and range, the rest as stored."""
    if not isinstance(sampling, dict) or sampling.get("spanwise_gain") is None:
        return sampling
    import numpy as np

    g = np.asarray(sampling["spanwise_gain"], dtype=np.float64)
    return {**sampling, "spanwise_gain": {"shape": list(g.shape), "min": float(g.min()), "max": float(g.max())}}
