"""The public API: every name in __all__ resolves, and importing cfdseed stays light."""

from __future__ import annotations

import subprocess
import sys

import cfdseed


def test_all_names_resolve():
    for name in cfdseed.__all__:
        assert getattr(cfdseed, name) is not None, name


def test_unknown_attribute_is_attribute_error():
    try:
        cfdseed.no_such_thing  # noqa: B018
    except AttributeError as exc:
        assert "no_such_thing" in str(exc)
    else:
        raise AssertionError("expected AttributeError")


def test_submodules_load_on_first_use():
    """README writes cfdseed.sources.register(...), cfdseed.units...; after a plain `import cfdseed`
    that raised AttributeError."""
    code = ("import sys, cfdseed; assert 'cfdseed.sources' not in sys.modules; "
            "print(callable(cfdseed.sources.register), cfdseed.units.DEFAULT_RE_TAU, "
            "cfdseed.solvers.__name__, cfdseed.transient.detect_steady.__name__, hasattr(cfdseed, 'nope'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "180.0", "cfdseed.solvers", "detect_steady", "False"]


def test_import_loads_neither_torch_nor_mpi():
    code = "import sys, cfdseed; print('torch' in sys.modules, 'mpi4py.MPI' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_default_model_and_cli_help_need_no_torch():
    code = ("import sys, cfdseed, cfdseed.cli; p = cfdseed.default_model(); cfdseed.cli.build_parser().format_help(); "
            "print(p.name, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["default-re180-v2.1.pt", "False"]


def test_library_modules_neither_print_nor_configure_logging_nor_set_a_backend():
    """House habit 8: library code logs; only cfdseed/cli.py prints and sets up logging."""
    import ast
    from pathlib import Path

    offences = []
    for path in sorted(Path(cfdseed.__file__).parent.rglob("*.py")):
        if path.name == "cli.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                f = node.func
                name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
                owner = f.value.id if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) else ""
                if name == "print" or name == "basicConfig" or (owner, name) == ("matplotlib", "use"):
                    offences.append(f"{path.name}:{node.lineno} {owner + '.' if owner else ''}{name}")
    assert not offences, offences


def test_requires_python_covers_the_standard_library_in_use():
    """cfdseed.config reads TOML with tomllib (Python 3.11+): pyproject may not promise less."""
    import re
    import tomllib
    from pathlib import Path

    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
    floor = re.fullmatch(r">=\s*(\d+)\.(\d+)", project["requires-python"]).groups()
    assert tuple(map(int, floor)) >= (3, 11)
    older = [c for c in project.get("classifiers", []) if re.search(r"Python :: 3\.([0-9]|10)$", c)]
    assert older == []
