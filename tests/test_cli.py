"""The ``cfdseed`` command line: help for users, option parsing, output paths, exit codes."""

from __future__ import annotations

import re

import pytest

from cfdseed.cli import main, parse_options

from test_synthesis import tiny_model

GRID = ["--shape", "8", "13", "6", "--lengths", "4.0", "2.0", "3.0"]


def test_parse_options():
    assert parse_options(["a=1", "b=[1, 2]", "c=text", "d=null"]) == {"a": 1, "b": [1, 2], "c": "text", "d": None}


@pytest.mark.parametrize("command", [None, "train", "generate", "evaluate", "models"])
def test_help_has_examples_and_exit_codes(command, capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"] if command is None else [command, "--help"])
    text = capsys.readouterr().out
    assert info.value.code == 0
    assert "examples:" in text and "exit status:" in text and "2    bad input" in text
    if command == "train":
        assert "--force" in text and "--resume" in text


def test_version_is_the_installed_one(capsys):
    """``cfdseed --version``: the package's version as installed (pyproject and ``__version__`` agree)."""
    from importlib.metadata import version

    import cfdseed

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    out = capsys.readouterr().out
    assert info.value.code == 0
    assert out.startswith(f"cfdseed {cfdseed.__version__} (torch {version('torch')}, Python ")
    assert cfdseed.__version__ == version("cfdseed")


def test_inconsistent_units_exit_2_with_one_line(tmp_path, capsys):
    model = tiny_model(tmp_path / "m.pt")
    rc = main(["generate", *GRID, "--model", str(model), "--device", "cpu", "--re-tau", "180", "--u-tau", "1",
               "--nu", "0.1", "--no-png", "--out", str(tmp_path / "ic.h5")])
    err = capsys.readouterr().err
    assert rc == 2 and "contradicts" in err and "Traceback" not in err
    assert err.count("\n") == 1 and err.startswith("cfdseed generate: error: ")


@pytest.mark.parametrize("source", ["plug", "streaks", "analytic"])
def test_contradicting_units_of_any_source_exit_2_with_the_message(tmp_path, capsys, source):
    rc = main(["generate", "--source", source, *GRID, "--re-tau", "395", "--u-tau", "1", "--nu", "0.1", "--no-png",
               "--out", str(tmp_path / "ic.h5")])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err and err.count("\n") == 1
    assert err == f"cfdseed generate: error: {source}: re_tau=395 contradicts u_tau * h / nu = 1 * 1 / 0.1 = 10 " \
                  "(h = ly / 2); give at most two of re_tau, u_tau, nu, or consistent values\n"
    assert not (tmp_path / "ic.h5").exists()
    assert main(["generate", "--source", source, *GRID, "--option", "nu=-1", "--no-png",
                 "--out", str(tmp_path / "ic.h5")]) == 2
    assert f"{source}: nu must be a positive number, got -1" in capsys.readouterr().err


@pytest.mark.parametrize("out,match", [
    ("missing/ic.h5", "does not exist"),
    ("ic.png", r"\.h5 or \.hdf5"),
    ("ic", r"\.h5 or \.hdf5"),
    ("folder.h5", "is a folder"),
])
def test_generate_refuses_bad_out(tmp_path, capsys, out, match):
    (tmp_path / "folder.h5").mkdir()
    assert main(["generate", "--source", "plug", *GRID, "--no-png", "--out", str(tmp_path / out)]) == 2
    assert re.search(match, capsys.readouterr().err)
    assert not (tmp_path / "missing").exists() and not (tmp_path / "ic.xmf").exists()


def test_evaluate_refuses_bad_out(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    assert main(["evaluate", "--out", str(tmp_path / "missing" / "report")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["evaluate", "--out", str(tmp_path / "file")]) == 2
    assert "is a file" in capsys.readouterr().err


def test_an_output_path_that_cannot_be_written_exits_2_with_one_line(tmp_path, capsys, monkeypatch):
    """generate checks it before the source runs (the field is not built for nothing)."""
    import cfdseed.sources

    def never(*args, **kwargs):
        raise AssertionError("the source ran")

    monkeypatch.setattr(cfdseed.sources, "build", never)
    model = str(tiny_model(tmp_path / "m.pt"))
    for argv in (["evaluate", "--model", model, "--samples", "4", "--device", "cpu", "--out", "/proc/evx"],
                 ["generate", "--source", "plug", *GRID, "--no-png", "--out", "/proc/ic.h5"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert argv[-1] in err and "cannot" in err and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("device,match", [
    ("gpu", "device 'gpu' unknown; must be one of auto, cpu, cuda, cuda:N"),
    ("cuda", "CUDA is not available"),
])
def test_bad_or_unavailable_device_exits_2_with_one_line(tmp_path, capsys, monkeypatch, device, match):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    model = str(tiny_model(tmp_path / "m.pt"))
    for argv in (["generate", *GRID, "--model", model, "--no-png", "--out", str(tmp_path / "ic.h5")],
                 ["evaluate", "--model", model, "--samples", "2", "--out", str(tmp_path / "ev")]):
        assert main([*argv, "--device", device]) == 2
        err = capsys.readouterr().err
        assert match in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "ic.h5").exists() and not (tmp_path / "ev").exists()


def test_strategy_help_and_errors_speak_command_line(tmp_path, capsys):
    """--strategy's help names the sources with a distributed path; a source without one, and a
    --model folder, are refused with the command line's words."""
    from cfdseed.sources import BUILT_IN, FILE_SOURCES, resolve

    with pytest.raises(SystemExit):
        main(["generate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    listed = re.search(r"when the source can \(([^)]*)\)", text).group(1)
    assert listed == ", ".join(n for n in BUILT_IN if n not in FILE_SOURCES and resolve(n, {}).distributable)
    assert main(["generate", "--source", "plug", *GRID, "--strategy", "distributed", "--no-png",
                 "--out", str(tmp_path / "ic.h5")]) == 2
    err = capsys.readouterr().err
    assert "--strategy root" in err and "strategy='root'" not in err
    assert main(["generate", *GRID, "--model", str(tmp_path), "--no-png", "--out", str(tmp_path / "ic.h5")]) == 2
    assert f"{tmp_path} is a folder" in (err := capsys.readouterr().err) and f"{tmp_path}/model.pt" in err


def test_readme_generate_synopsis_has_every_source_and_option():
    from pathlib import Path

    from cfdseed.cli import build_parser
    from cfdseed.sources import BUILT_IN

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    synopsis = re.search(r"### `cfdseed generate`\n```\n(.*?)```", readme, re.S).group(1)
    sub = next(a for a in build_parser()._actions if a.dest == "command").choices["generate"]
    options = [o for a in sub._actions for o in a.option_strings if o.startswith("--") and o != "--help"]
    assert [o for o in options if o not in synopsis] == []
    assert [n for n in BUILT_IN if n not in synopsis] == []


@pytest.mark.parametrize("flags", [("--resume", "--force"), ("--auto-resume", "--resume"), ("--auto-resume", "--force")])
def test_train_resume_and_force_exclude_each_other(capsys, flags):
    with pytest.raises(SystemExit) as info:
        main(["train", "c.toml", *flags])
    assert info.value.code == 2 and "not allowed with" in capsys.readouterr().err



def test_evaluate_help_shows_side_by_side(capsys):
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    text = capsys.readouterr().out
    assert "--fields [LABEL=]FILE" in text
    assert "--fields gan=gan.h5 --fields sem=sem.h5 --fields phase-randomised=pr.h5" in text


def test_evaluate_fields_label_equals_file(tmp_path):
    from cfdseed.cli import _labelled

    assert _labelled("sem=runs/sem.h5") == ("sem", "runs/sem.h5")
    assert _labelled("runs/sem.h5") == "runs/sem.h5"
    odd = tmp_path / "re=180.h5"  # an existing file is a file, '=' or not; LABEL=FILE splits at the first '='
    odd.write_text("")
    assert _labelled(str(odd)) == str(odd)
    assert _labelled(f"dns={odd}") == ("dns", str(odd))


def test_evaluate_label_given_twice_exits_2_with_one_line(tmp_path, capsys):
    assert main(["evaluate", "--fields", "a=x.h5", "--fields", "a=y.h5", "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err == ("cfdseed evaluate: error: label 'a' given twice (x.h5 and y.h5); give each "
                                       "input its own label, e.g. --fields sem=sem.h5 --fields gan=gan.h5\n")
    assert not (tmp_path / "o").exists()


def test_models_lists_the_packaged_generators_and_describes_files(tmp_path, capsys):
    """``cfdseed models``: one line per packaged model, the default marked once, the file's sha256;
    ``--json`` for a checkpoint file too; a missing model is bad input (2)."""
    import hashlib
    import json

    from cfdseed.checkpoint import DEFAULT_NAME, default_model, packaged_models

    assert main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()[1:]
    assert [ln.split()[0] for ln in lines] == packaged_models()
    assert [ln.split()[0] for ln in lines if "(default)" in ln] == [DEFAULT_NAME]
    want = hashlib.sha256(default_model().read_bytes()).hexdigest()
    assert any(ln.startswith(DEFAULT_NAME + " ") and ln.endswith(want) for ln in lines)

    path = tiny_model(tmp_path / "tiny.pt")
    assert main(["models", str(path), "default-re180-v2", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["default"] for r in rows] == [False, False] and rows[0]["path"] == str(path)
    assert rows[0]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert rows[1]["kind"] == "conditional" and rows[1]["statistics_tke"] == pytest.approx(1.864, abs=1e-3)
    assert main(["models", str(tmp_path / "none.pt")]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("value, match", [
    ("False", "plug: no_slip must be true or false, got 'False' (a string; write false, unquoted JSON, or Python's False)"),
    ("no", "plug: no_slip must be true or false, got 'no'"),
])
def test_a_boolean_option_that_is_not_json_exits_2_with_the_hint(tmp_path, capsys, value, match):
    """--option no_slip=False: "False" is not JSON, stays a string and was truthy (the option stayed on)."""
    rc = main(["generate", "--source", "plug", *GRID, "--option", f"no_slip={value}", "--no-png",
               "--out", str(tmp_path / "ic.h5")])
    err = capsys.readouterr().err
    assert rc == 2 and err == f"cfdseed generate: error: {match}\n"
    assert not (tmp_path / "ic.h5").exists()


@pytest.mark.parametrize("option, match", [
    ("blend=\"a\"", "plug: blend must be a positive number, got 'a'"),  # was a TypeError traceback, exit 1
    ("seed=-1", "plug: seed must be a non-negative integer"),  # was numpy's "expected non-negative integer"
    ("max_ratio=0", "plug: max_ratio must be a positive number, got 0"),
])
def test_bad_source_option_values_exit_2_with_one_line(tmp_path, capsys, option, match):
    rc = main(["generate", "--source", "plug", *GRID, "--option", option, "--no-png", "--out", str(tmp_path / "ic.h5")])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith(f"cfdseed generate: error: {match}") and err.count("\n") == 1


@pytest.mark.parametrize("command", [["generate", *GRID, "--out", "ic.h5"], ["evaluate", "--out", "ev"],
                                     ["openfoam", "case"]])
@pytest.mark.parametrize("seed, shown", [("-1", "-1"), ("abc", "'abc'"), ("1.5", "'1.5'")])
def test_seed_must_be_a_non_negative_integer(capsys, command, seed, shown):
    with pytest.raises(SystemExit) as info:
        main([*command, "--seed", seed])
    err = capsys.readouterr().err
    assert info.value.code == 2
    assert err.splitlines()[-1] == f"cfdseed {command[0]}: error: argument --seed: must be a non-negative integer, got {shown}"


@pytest.mark.parametrize("command", [["models", "--json"], ["cmakedir"], ["--version"]])
def test_a_closed_pipe_ends_quietly(command):
    """``cfdseed models --json | head``: the reader gone, the command ended in a BrokenPipeError
    traceback (or, buffered, in Python's "Exception ignored" and status 120)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # buffered, as a terminal's pipe
    proc = subprocess.Popen([str(Path(sys.executable).with_name("cfdseed")), *command],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    proc.stdout.close()  # before the command writes (it first imports for a second)
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141 and "Traceback" not in err and "Broken pipe" not in err, err


def test_a_broken_pipe_elsewhere_is_not_taken_for_a_closed_stdout(monkeypatch):
    """Only standard output's reader going away ends quietly; another broken pipe is a bug's traceback."""
    import cfdseed.cli as cli

    def broken(args):
        raise BrokenPipeError("a worker's pipe")

    monkeypatch.setattr(cli, "_run_models", broken)
    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    parser._subparsers._group_actions[0].choices["models"].set_defaults(run=broken)
    with pytest.raises(BrokenPipeError, match="a worker's pipe"):
        main(["models"])
