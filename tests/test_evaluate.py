"""The ``cfdseed evaluate`` job: command line, single-input report, several inputs side by side."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cfdseed.cli import main as cli_main
from cfdseed.slices import DatasetWriter
from cfdseed.stats import PROFILES

from test_stats import LY, LZ, NY, NZ, Y, Z

torch.set_num_threads(1)


# --------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------
ATTRS = dict(re_tau=180.0, nu=1.0 / 180.0, u_tau=1.0, ly=LY, lz=LZ, source="synthetic test data")
EXPECTED = {"metrics.json", "report.md", "profiles.png", "spectra.png", "pdfs.png", "correlations.png", "slices.png"}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    p = tmp_path_factory.mktemp("eval") / "data.h5"
    rng = np.random.default_rng(5)
    wall = (Y * (LY - Y))[None, None, :, None]
    f = wall * (0.3 * np.sin(2 * np.pi * Z / LZ + rng.uniform(0, 6.3, (48, 3, 1, 1)))
                + 0.1 * rng.standard_normal((48, 3, NY, NZ)))
    f[:, 0] += 15 * wall[:, 0]
    with DatasetWriter(p, Y, Z, attrs=ATTRS) as w:
        w.append(f)
    return p


def _check_outputs(out, extra=()):
    files = {p.name for p in out.iterdir()}
    assert EXPECTED | set(extra) <= files
    m = json.loads((out / "metrics.json").read_text())
    report = (out / "report.md").read_text()
    assert set(m["figures"].values()) == {p.name for p in out.glob("*.png")}  # every figure listed, and only those
    for name in m["figures"].values():
        assert (out / name).stat().st_size > 10_000
        assert f"]({name})" in report
    return m


@pytest.mark.slow
def test_cli_fields_against_dataset(dataset, tmp_path, capsys):
    out = tmp_path / "ev"
    assert cli_main(["evaluate", "--fields", str(dataset), "--against", str(dataset), "--against-samples", "20",
                     "--reference", "mkm-180", "--out", str(out)]) == 0
    m = _check_outputs(out)
    assert m["vs_reference"]["name"] == "mkm-180"
    assert m["against"]["statistics"]["n_fields"] == 20
    st = m["evaluated"]["statistics"]
    assert [h["label"] for h in st["heights"]] == ["y+=5", "y+=15", "y+=30", "y+=100", "centre"]
    assert set(st["profiles"]) == set(PROFILES) and len(st["y+"]) == (NY + 1) // 2
    assert st["units"]["k+"] == "k nu / u_tau"
    assert set(m["vs_dataset"]["spectra"]) == {"uu", "vv", "ww"}
    assert 0 < m["vs_dataset"]["combined"] < 1
    assert "combined metric" in capsys.readouterr().out


def test_cli_nu_and_u_tau_replace_a_slice_dataset_s_units_but_not_the_against_s(dataset, tmp_path):
    out = tmp_path / "ev"
    assert cli_main(["evaluate", "--fields", str(dataset), "--against", str(dataset), "--against-samples", "20",
                     "--nu", str(1 / 360), "--u-tau", "2.0", "--reference", "none", "--out", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert (m["evaluated"]["grid"]["nu"], m["evaluated"]["grid"]["u_tau"]) == (1 / 360, 2.0)
    assert (m["against"]["grid"]["nu"], m["against"]["grid"]["u_tau"]) == (ATTRS["nu"], ATTRS["u_tau"])


@pytest.mark.slow
def test_cli_tiny_model(dataset, tmp_path):
    from cfdseed.checkpoint import CHECKPOINT_FORMAT, save_checkpoint
    from cfdseed.model import Generator, arch_config

    arch = arch_config("cpu-tiny", NY, NZ, latent_dim=8)
    torch.manual_seed(0)
    ckpt = tmp_path / "tiny.pt"
    save_checkpoint(ckpt, {
        "format": CHECKPOINT_FORMAT, "format_version": 1, "arch": arch, "generator": Generator(arch).state_dict(),
        "norm": {"mean": torch.zeros(3, NY, dtype=torch.float64), "std": torch.ones(3, NY, dtype=torch.float64)},
        "grid": {"ny": NY, "nz": NZ, "y": torch.as_tensor(Y), "ly": LY, "lz": LZ, "re_tau": 180.0, "u_tau": 1.0,
                 "nu": 1 / 180},
        "metadata": {"source": "untrained test generator"}})
    out = tmp_path / "ev"
    assert cli_main(["evaluate", "--model", str(ckpt), "--samples", "8", "--device", "cpu", "--against",
                     str(dataset), "--out", str(out)]) == 0
    m = _check_outputs(out)
    assert m["evaluated"]["statistics"]["n_fields"] == 8
    assert m["vs_reference"]["name"] == "lee-moser-180"  # auto: nearest Re_tau


@pytest.mark.slow
def test_cli_three_d_field_written_by_generate(tmp_path, capsys):
    """cfdseed generate -> cfdseed evaluate --fields, end to end."""
    ic = tmp_path / "ic.h5"
    assert cli_main(["generate", "--source", "streaks", "--shape", "16", "17", "12", "--lengths", "4", str(LY),
                     "2", "--y", "chebyshev", "--option", "re_tau=180", "--option", "bulk=15.7",
                     "--seed", "3", "--no-png", "--out", str(ic)]) == 0
    out = tmp_path / "ev"
    assert cli_main(["evaluate", "--fields", str(ic), "--reference", "none", "--heights", "10", "--nu",
                     str(1 / 180), "--u-tau", "1", "--out", str(out)]) == 0
    m = _check_outputs(out, extra={"spectra_x.png"})
    assert m["vs_reference"] is None and m["vs_dataset"] is None
    div = m["evaluated"]["statistics"]["divergence"]
    assert div["div_max"] < 1e-8  # generate enforced the discrete divergence, evaluate measures it


def test_cli_field_without_units_needs_nu_and_u_tau(tmp_path, capsys):
    from cfdseed.fields import write_field
    from cfdseed.grid import Grid
    from cfdseed.sources import resolve

    # every built-in source records its units now; a field written without them (another tool's)
    ic = tmp_path / "plug.h5"
    g = Grid((8, 9, 8), (4.0, LY, 2.0))
    write_field(ic, resolve("plug", {})(g, np.random.default_rng(0)), g)
    assert cli_main(["evaluate", "--fields", str(ic), "--reference", "none", "--out", str(tmp_path / "a")]) == 2
    assert "--nu and --u-tau" in capsys.readouterr().err
    assert cli_main(["evaluate", "--fields", str(ic), "--reference", "none", "--nu", "0.01", "--u-tau", "0.05",
                     "--heights", "10", "--out", str(tmp_path / "b")]) == 0


def test_units_that_would_apply_to_nothing_are_refused(tmp_path, capsys):
    """--nu/--u-tau with a model's samples and --against data that records its own units were
    accepted and ignored; they still supply what an --against field file lacks."""
    from cfdseed.errors import ConfigError
    from cfdseed.evaluate import _records_units, evaluate
    from cfdseed.fields import write_field
    from cfdseed.grid import Grid
    from cfdseed.sources import resolve

    g = Grid((8, 9, 8), (4.0, LY, 2.0))
    field = resolve("plug", {})(g, np.random.default_rng(0))
    with_units, without = tmp_path / "with.h5", tmp_path / "without.h5"
    write_field(with_units, field, g, attrs={"nu": 1 / 180, "u_tau": 1.0, "re_tau": 180.0})
    write_field(without, field, g)
    assert _records_units(with_units) and not _records_units(without) and not _records_units(tmp_path / "none.h5")
    with pytest.raises(ConfigError, match=r"nu would apply to nothing: .* records its own"):
        evaluate(tmp_path / "a", against=with_units, nu=0.01, reference="none")
    assert cli_main(["evaluate", "--samples", "2", "--against", str(with_units), "--u-tau", "2",
                     "--out", str(tmp_path / "b")]) == 2
    assert "u_tau would apply to nothing" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_cli_field_stored_raw_by_the_distributed_strategy(tmp_path):
    """A field file of ``generate --strategy distributed`` (storage "raw": the metadata in the .h5,
    the velocity in the .raw) is read as a field file by --fields and --against alike."""
    from mpi4py import MPI

    from cfdseed.fields import write_field_slabs
    from cfdseed.grid import Grid

    g = Grid((8, 17, 8), (4.0, LY, 2.0), y="chebyshev")
    wall = (g.y * (LY - g.y))[None, None, :, None]
    f = wall * np.random.default_rng(0).standard_normal((3, *g.shape))
    f[0] += 15 * wall[0]
    raw = tmp_path / "dist.h5"
    write_field_slabs(MPI.COMM_SELF, raw, f, slice(0, 8), g, attrs={"nu": 1 / 180, "u_tau": 1.0})
    out = tmp_path / "ev"
    assert cli_main(["evaluate", "--fields", str(raw), "--against", str(raw), "--reference", "none",
                     "--heights", "10", "--out", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["evaluated"]["source"].startswith("field") and m["against"]["source"].startswith("field")
    assert m["evaluated"]["grid"]["shape"] == [3, 8, 17, 8] and m["vs_dataset"]["combined"] == 0.0


def test_cli_refuses_options_that_do_not_apply(dataset, tmp_path, capsys):
    """The model's options with --fields, and --nu/--u-tau with a model and no --against (the only
    thing they could apply to), are refused with one line; a bad --heights leaves no folder behind."""
    out = tmp_path / "ev"
    for extra in (["--samples", "8"], ["--seed", "1"], ["--device", "cpu"]):
        assert cli_main(["evaluate", "--fields", str(dataset), *extra, "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert extra[0] in err and "--fields" in err and err.count("\n") == 1
    for extra in (["--nu", "0.01"], ["--u-tau", "2"]):
        assert cli_main(["evaluate", *extra, "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert extra[0] in err and "--against" in err and err.count("\n") == 1
    assert cli_main(["evaluate", "--fields", str(dataset), "--heights", "-5", "--out", str(out)]) == 2
    assert "height y+ must be" in capsys.readouterr().err
    assert not out.exists()


def test_cli_bad_input(dataset, tmp_path, capsys):
    assert cli_main(["evaluate", "--fields", str(dataset), "--reference", "kim-1987", "--out", str(tmp_path)]) == 2
    assert "mkm-180" in capsys.readouterr().err
    assert cli_main(["evaluate", "--fields", str(tmp_path / "missing.h5"), "--out", str(tmp_path)]) == 2
    capsys.readouterr()
    folder = tmp_path / "runs"
    folder.mkdir()
    assert cli_main(["evaluate", "--fields", str(folder), "--out", str(tmp_path / "o")]) == 2  # was "no such file"
    assert capsys.readouterr().err == f"cfdseed evaluate: error: {folder} is a folder; name the file in it\n"
    assert cli_main(["evaluate", "--fields", str(dataset), "--against", str(folder), "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err == f"cfdseed evaluate: error: --against: {folder} is a folder; name the file in it\n"
    with pytest.raises(SystemExit):
        cli_main(["evaluate", "--fields", str(dataset), "--model", "m.pt", "--out", str(tmp_path)])


# --------------------------------------------------------------------------------------------
# several inputs side by side
# --------------------------------------------------------------------------------------------
SIDE = {"profiles.png", "spectra.png", "spectra_x.png", "correlations.png", "correlations_x.png", "pdfs.png",
        "slices.png"}


def field_file(path, shape, seed, amp=1.0, units=True):
    """A small 3-D field file (Re_tau = 180 in u_tau = 1, half-height 1): a parabolic mean flow and
    white noise vanishing at the walls."""
    from cfdseed.fields import write_field
    from cfdseed.grid import Grid

    g = Grid(shape, (4.0, LY, 2.0), y="chebyshev")
    rng = np.random.default_rng(seed)
    wall = (g.y * (LY - g.y))[None, None, :, None]
    f = amp * wall * rng.standard_normal((3, *shape))
    f[0] += 15 * wall[0]
    write_field(path, f, g, attrs={"nu": 1 / 180, "u_tau": 1.0} if units else None)
    return path


@pytest.fixture(scope="module")
def fields3(tmp_path_factory):
    d = tmp_path_factory.mktemp("side")
    return {"sem": field_file(d / "sem.h5", (8, 17, 8), 0), "pr": field_file(d / "pr.h5", (12, 13, 12), 1, amp=2.0),
            "dns": field_file(d / "dns.h5", (16, 21, 16), 2)}


@pytest.mark.slow
def test_side_by_side_metrics_table_and_overlays(fields3, tmp_path):
    """Inputs on three grids against a 3-D DNS field: per-label numbers, the table, the overlays.
    The DNS given as an input as well ("copy") scores 0 on every comparison."""
    from cfdseed.evaluate import evaluate
    from cfdseed.report import _fmt

    out = tmp_path / "cmp"
    m = evaluate(out, fields={"sem": fields3["sem"], "phase-randomised": fields3["pr"], "copy": fields3["dns"]},
                 against=fields3["dns"], reference="lee-moser-180", heights=(10.0, "centre"))
    labels = ["sem", "phase-randomised", "copy"]
    assert m["labels"] == labels and list(m["inputs"]) == labels
    assert json.loads((out / "metrics.json").read_text())["labels"] == labels
    assert SIDE | {"metrics.json", "report.md"} == {p.name for p in out.iterdir()}
    report = (out / "report.md").read_text()
    assert set(m["figures"].values()) == SIDE
    for name in m["figures"].values():
        assert (out / name).stat().st_size > 10_000 and f"]({name})" in report
    assert [e["grid"]["shape"] for e in m["inputs"].values()] == [[3, 8, 17, 8], [3, 12, 13, 12], [3, 16, 21, 16]]
    assert m["reference"]["name"] == "lee-moser-180" and m["against"]["statistics"]["kind"] == "fields"
    for label in labels:
        e = m["inputs"][label]
        assert set(e) == {"source", "grid", "statistics", "vs_dataset", "vs_reference", "summary"}
        assert [h["label"] for h in e["statistics"]["heights"]] == ["y+=10", "centre"]
        assert set(e["statistics"]["streamwise_correlation"]) == {"dx+", "uu", "vv", "ww"}
        vd, col = e["vs_dataset"], e["summary"]
        assert col["vs_dataset"]["combined"] == vd["combined"]
        assert col["vs_dataset"]["E_vv_x"] == pytest.approx(np.mean(list(vd["streamwise_spectra"]["vv"].values())))
        assert col["vs_dataset"]["R_uu_x"] == pytest.approx(np.mean(list(vd["streamwise_correlation"]["uu"].values())))
        assert col["vs_dataset"]["W1_w"] == pytest.approx(np.mean(list(vd["pdf_w1"]["w"].values())))
        assert col["vs_reference"] == e["vs_reference"]["profiles"]
        assert col["balance"]["bulk_w"] == e["statistics"]["balance"]["bulk_w"]
        assert col["balance"]["div_max"] == e["statistics"]["divergence"]["div_max"]
    assert all(v == 0.0 for v in m["inputs"]["copy"]["summary"]["vs_dataset"].values())
    assert m["inputs"]["phase-randomised"]["summary"]["vs_dataset"]["u'+"] > 0.5  # twice the DNS's noise
    assert m["against"]["summary"]["vs_dataset"] is None
    assert m["against"]["summary"]["vs_reference"] == m["inputs"]["copy"]["summary"]["vs_reference"]
    # the table: one column per input plus the DNS, the numbers of metrics.json
    assert "| | sem | phase-randomised | copy | DNS |" in report
    cols = [m["inputs"][k]["summary"] for k in labels] + [m["against"]["summary"]]
    for group, key, row in [("vs_dataset", "combined", "**combined metric**"), ("vs_dataset", "uv+", "rel. L2 uv+"),
                            ("vs_dataset", "E_ww", "log-spectral E_ww (z)"), ("vs_dataset", "R_vv_x", "correlation R_vv(dx)"),
                            ("vs_dataset", "W1_u", "PDF W1 u'"), ("vs_reference", "U+", "rel. L2 U+"),
                            ("balance", "tke_lower", "TKE, lower wall"), ("balance", "shear_stress_upper", "-uv, upper wall"),
                            ("balance", "balance_residual_max", "balance residual, max"), ("balance", "bulk_w", "W_b")]:
        line = f"| {row} | " + " | ".join(_fmt((c[group] or {}).get(key)) for c in cols) + " |"
        assert line in report, line
    assert "| **combined metric** | " in report and report.count("| – |") >= 1  # the DNS vs itself: no number


@pytest.mark.slow
def test_cli_side_by_side_against_a_slice_dataset(fields3, dataset, tmp_path, capsys):
    """LABEL=FILE and a bare FILE (labelled by its name), a 3-D field and a slice dataset as inputs."""
    out = tmp_path / "cmp"
    assert cli_main(["evaluate", "--fields", f"sem={fields3['sem']}", "--fields", str(dataset), "--against",
                     str(dataset), "--against-samples", "20", "--reference", "none", "--heights", "10",
                     "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "2 inputs side by side" in text and "  sem: field" in text and "  data: dataset" in text
    m = json.loads((out / "metrics.json").read_text())
    assert m["labels"] == ["sem", "data"] and m["reference"] is None
    assert set(m["figures"].values()) == SIDE  # the 3-D input brings the streamwise figures
    assert m["against"]["statistics"]["n_fields"] == 20 and m["inputs"]["data"]["statistics"]["n_fields"] == 48
    sem = m["inputs"]["sem"]
    assert "streamwise_spectra" not in sem["vs_dataset"] and "E_uu_x" not in sem["summary"]["vs_dataset"]
    assert sem["vs_reference"] is None and sem["summary"]["vs_reference"] is None
    report = (out / "report.md").read_text()
    assert "| | sem | data | DNS |" in report and "vs published DNS" not in report and "(x)" not in report


def test_one_labelled_input_keeps_the_single_input_report(fields3, tmp_path):
    from cfdseed.evaluate import evaluate

    kw = {"reference": "none", "heights": ("centre",)}
    bare = evaluate(tmp_path / "a", fields=fields3["sem"], **kw)
    labelled = evaluate(tmp_path / "b", fields=[("sem", fields3["sem"])], **kw)
    assert labelled == bare and "labels" not in bare and "evaluated" in bare
    assert (tmp_path / "a" / "metrics.json").read_text() == (tmp_path / "b" / "metrics.json").read_text()


def test_side_by_side_bad_inputs(fields3, tmp_path, capsys):
    from cfdseed.errors import ConfigError, DatasetError
    from cfdseed.evaluate import evaluate

    sem, pr = str(fields3["sem"]), str(fields3["pr"])
    out = tmp_path / "o"
    assert cli_main(["evaluate", "--fields", f"a={sem}", "--fields", f"a={pr}", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "label 'a' given twice" in err and err.count("\n") == 1
    (tmp_path / "x").mkdir()
    twin = field_file(tmp_path / "x" / "sem.h5", (8, 9, 8), 3)  # bare files labelled by their names: both 'sem'
    assert cli_main(["evaluate", "--fields", sem, "--fields", str(twin), "--out", str(out)]) == 2
    assert "label 'sem' given twice" in capsys.readouterr().err
    assert cli_main(["evaluate", "--fields", f"a={sem}", "--fields", f"b={tmp_path / 'missing.h5'}", "--out",
                     str(out)]) == 2
    assert "input 'b'" in (err := capsys.readouterr().err) and "missing.h5: no such file" in err
    assert cli_main(["evaluate", "--fields", f"a={sem}", "--fields", f"b={tmp_path / 'x'}", "--out", str(out)]) == 2
    assert capsys.readouterr().err == f"cfdseed evaluate: error: input 'b': {tmp_path / 'x'} is a folder; name the file in it\n"
    assert cli_main(["evaluate", "--fields", f"a={sem}", "--fields", f"b={pr}", "--against", str(tmp_path / "dns.h5"),
                     "--out", str(out)]) == 2
    assert "--against" in (err := capsys.readouterr().err) and "dns.h5: no such file" in err
    bare = field_file(tmp_path / "nounits.h5", (8, 9, 8), 4, units=False)
    assert cli_main(["evaluate", "--fields", f"a={sem}", "--fields", f"b={bare}", "--out", str(out)]) == 2
    assert "input 'b'" in (err := capsys.readouterr().err) and "--nu and --u-tau" in err
    assert cli_main(["evaluate", "--fields", f"a|b={sem}", "--fields", f"c={pr}", "--out", str(out)]) == 2
    assert "label 'a|b' is not allowed" in capsys.readouterr().err
    assert cli_main(["evaluate", "--fields", f"_a={sem}", "--fields", f"c={pr}", "--out", str(out)]) == 2
    assert "label '_a' is not allowed" in capsys.readouterr().err  # the rule says: a letter or digit first
    assert cli_main(["evaluate", "--fields", "a=", "--fields", f"c={pr}", "--out", str(out)]) == 2
    assert "no file given" in capsys.readouterr().err
    assert not out.exists()  # nothing written before the inputs are known to be good
    with pytest.raises(ConfigError, match="given twice"):
        evaluate(out, fields=[("sem", sem), ("sem", pr)])
    with pytest.raises(ConfigError, match="no input"):
        evaluate(out, fields={})
    with pytest.raises(ConfigError, match="neither a file nor"):
        evaluate(out, fields=[("sem", sem, "extra")])
    for bad in (-1, 1.5, "3", True):  # the CLI's --seed type refuses these; from Python too
        with pytest.raises(ConfigError, match="seed must be a non-negative integer"):
            evaluate(out, fields={"sem": sem, "pr": pr}, seed=bad)
    with pytest.raises(DatasetError, match="input 'pr'"):
        evaluate(out, fields={"sem": sem, "pr": tmp_path / "gone.h5"})


@pytest.mark.slow
def test_single_input_against_a_field_file(fields3, tmp_path):
    """--against takes a 3-D field file too (its own units): streamwise comparisons appear."""
    from cfdseed.evaluate import evaluate

    m = evaluate(tmp_path / "o", fields=fields3["sem"], against=fields3["dns"], nu=1 / 180, u_tau=1.0,
                 reference="none", heights=("centre",))
    assert m["against"]["statistics"]["kind"] == "fields" and m["against"]["grid"]["shape"] == [3, 16, 21, 16]
    assert set(m["vs_dataset"]["streamwise_spectra"]) == set(m["vs_dataset"]["streamwise_correlation"]) == {"uu", "vv", "ww"}
    assert "spectra_x" in m["figures"] and 0 < m["vs_dataset"]["combined"] < 5
