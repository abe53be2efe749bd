"""The checkpoint file format: writing, loading, its errors and the per-tensor content hashes."""

from __future__ import annotations

import logging
from pathlib import Path
import struct
import zipfile

import pytest

from cfdseed.targets import stress_target
import torch

from cfdseed import CheckpointError
from cfdseed.checkpoint import (
    CHECKPOINT_FORMAT,
    default_model,
    read_checkpoint,
    save_checkpoint,
    tensor_hashes,
)
from cfdseed.model import Generator, arch_config, load_generator

torch.set_num_threads(1)


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
    save_checkpoint(tmp_path / "v4.pt", {**payload, "format_version": 4})
    with pytest.raises(CheckpointError, match="format_version 4; this cfdseed reads 1, 2, 3"):
        read_checkpoint(tmp_path / "v4.pt")
    save_checkpoint(tmp_path / "v2.pt", {**payload, "format_version": 2})  # version 2 needs statistics
    with pytest.raises(CheckpointError, match="lacks statistics"):
        read_checkpoint(tmp_path / "v2.pt")
    bad = {**stress_target("lee-moser-180").to_dict(), "vv": [-1.0] * len(stress_target("lee-moser-180").vv)}
    save_checkpoint(tmp_path / "v2bad.pt", {**payload, "format_version": 2, "statistics": bad})
    with pytest.raises(CheckpointError, match="stored training statistics are invalid: .*negative variance"):
        load_generator(tmp_path / "v2bad.pt")
    wrong = dict(payload, arch={**payload["arch"], "g_channels": [32, 16, 8]})
    save_checkpoint(tmp_path / "foreign.pt", wrong)
    with pytest.raises(CheckpointError, match="do not fit"):
        load_generator(tmp_path / "foreign.pt")
    save_checkpoint(tmp_path / "alien.pt", dict(payload, arch={"layers": 5}))
    with pytest.raises(CheckpointError, match="foreign architecture"):
        load_generator(tmp_path / "alien.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_generator(tmp_path / "missing.pt")
    for bad in (123, "", " "):
        with pytest.raises(CheckpointError, match="packaged model's name .* or a checkpoint path"):
            load_generator(bad)
    import h5py

    with h5py.File(tmp_path / "data.h5", "w") as h:
        h["fields"] = [0.0]
    (tmp_path / "run.toml").write_text("[train]\niterations = 1\n")
    for name, what in (("data.h5", "an HDF5 file"), ("run.toml", "a text file")):
        with pytest.raises(CheckpointError, match=f"not a cfdseed checkpoint: it is {what}"):
            load_generator(tmp_path / name)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"format": CHECKPOINT_FORMAT, "x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="weights_only"):
        load_generator(tmp_path / "evil.pt")


def test_default_model_reports_missing_package_model(tmp_path, monkeypatch):
    import cfdseed.checkpoint as checkpoint_mod

    monkeypatch.setattr(checkpoint_mod, "MODELS", tmp_path)
    with pytest.raises(CheckpointError, match=r"no packaged model 'default-re180-v2\.1'.*packaged: none"):
        default_model()


def test_packaged_models_load_by_name(tmp_path, monkeypatch):
    """model_path: None -> the default, a packaged name -> its file, an existing file of that name
    or any other string -> a path; unknown names are refused with the packaged ones listed."""
    from cfdseed.checkpoint import DEFAULT_NAME, model_path, packaged_models

    assert DEFAULT_NAME in packaged_models() and model_path(None) == default_model()
    assert model_path(DEFAULT_NAME) == default_model(DEFAULT_NAME) == default_model()
    assert model_path("run/best.pt") == Path("run/best.pt")
    monkeypatch.chdir(tmp_path)
    (tmp_path / DEFAULT_NAME).write_text("a local file")
    assert model_path(DEFAULT_NAME) == Path(DEFAULT_NAME)
    with pytest.raises(CheckpointError, match=f"no packaged model 'nope'.*packaged: .*{DEFAULT_NAME}"):
        default_model("nope")


def _flip_byte_of(path, tensor):
    """Flip one byte of ``tensor``'s stored bytes inside the checkpoint file (zip, stored entries)."""
    raw = tensor.detach().contiguous().numpy().tobytes()
    with zipfile.ZipFile(path) as z:
        info = next(i for i in z.infolist() if "/data/" in i.filename and z.read(i) == raw)
    data = bytearray(path.read_bytes())
    name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26 : info.header_offset + 30])
    data[info.header_offset + 30 + name_len + extra_len + len(raw) // 2] ^= 0x10
    path.write_bytes(bytes(data))


def test_flipped_weight_byte_names_the_tensor(tmp_path):
    p, g, payload = _ckpt(tmp_path)
    assert set(read_checkpoint(p)["sha256"]) == set(tensor_hashes(payload))
    _flip_byte_of(p, payload["generator"]["fc.weight"])
    assert not torch.equal(torch.load(p, weights_only=True)["generator"]["fc.weight"], g.fc.weight)  # loads silently
    with pytest.raises(CheckpointError, match=r"tensor\(s\) generator\.fc\.weight does not match its stored sha256"):
        read_checkpoint(p)
    with pytest.raises(CheckpointError, match=r"generator\.fc\.weight"):
        load_generator(p, device="cpu")


def test_tensor_added_or_lost_after_hashing_is_refused(tmp_path):
    p, _, _ = _ckpt(tmp_path)
    raw = torch.load(p, weights_only=True)
    raw["generator"]["extra.bias"] = torch.zeros(2)
    torch.save(raw, tmp_path / "added.pt")
    with pytest.raises(CheckpointError, match=r"generator\.extra\.bias"):
        read_checkpoint(tmp_path / "added.pt")
    del raw["generator"]["extra.bias"], raw["norm"]["std"]
    torch.save(raw, tmp_path / "lost.pt")
    with pytest.raises(CheckpointError, match=r"norm\.std listed in sha256 are missing"):
        read_checkpoint(tmp_path / "lost.pt")


def test_hashes_cover_nested_tensors_dtype_and_shape():
    t = torch.arange(4, dtype=torch.int32)
    h = tensor_hashes({"a": {"b": [t, (t.view(2, 2),)]}, "c": t.view(torch.float32), "sha256": {"x": "y"}})
    assert set(h) == {"a.b.0", "a.b.1.0", "c"}
    assert len(set(h.values())) == 3  # same bytes, other shape or dtype: other hash


def test_checkpoint_without_hashes_loads_unchecked(tmp_path, caplog):
    p, _, payload = _ckpt(tmp_path)
    torch.save(payload, tmp_path / "old.pt")  # as written before hashes existed
    with caplog.at_level(logging.DEBUG, logger="cfdseed.checkpoint"):
        assert "sha256" not in read_checkpoint(tmp_path / "old.pt")
    assert "contents unchecked" in caplog.text


def test_unsafe_pickle_error_gives_no_advice_to_load_it_unsafely(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"format": CHECKPOINT_FORMAT, "x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(tmp_path / "evil.pt")
    message = str(info.value)
    assert "pickled Python object (print)" in message
    assert "weights_only=False" not in message and "set to `False`" not in message and "still be loaded" not in message
