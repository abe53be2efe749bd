"""Packaged DNS references: documented values, interpolation, names, and that the files ship."""

from __future__ import annotations

import numpy as np
import pytest

from cfdseed.reference import REFERENCES, load_reference, nearest_reference, reference_dir


def test_lee_moser_180_documented_values():
    r = load_reference("lee-moser-180")
    assert r.re_tau == pytest.approx(182.088)
    assert r.centreline() == pytest.approx(18.27, abs=0.01)
    i = int(np.argmax(r.profiles["u'+"]))
    assert r.profiles["u'+"][i] == pytest.approx(2.672, abs=2e-3)
    assert r.yplus[i] == pytest.approx(14.6, abs=0.3)
    assert r.profiles["uv+"].min() == pytest.approx(-0.7276, abs=2e-3)


def test_mkm_180_documented_values():
    r = load_reference("mkm-180")
    assert r.re_tau == pytest.approx(178.12)
    assert r.centreline() == pytest.approx(18.30, abs=0.01)
    i = int(np.argmax(r.profiles["u'+"]))
    assert r.profiles["u'+"][i] == pytest.approx(2.658, abs=2e-3)
    assert r.yplus[i] == pytest.approx(15.3, abs=0.1)
    assert r.profiles["uv+"].min() == pytest.approx(-0.723, abs=1e-3)


@pytest.mark.parametrize("name,peak", [("lee-moser-550", 2.765), ("lee-moser-1000", 2.846),
                                       ("lee-moser-2000", 2.929), ("lee-moser-5200", 3.024)])
def test_higher_re_tau_peaks(name, peak):
    r = load_reference(name)
    assert r.profiles["u'+"].max() == pytest.approx(peak, abs=2e-3)
    assert r.yplus[-1] == pytest.approx(r.re_tau, rel=0.01)


@pytest.mark.parametrize("name", list(REFERENCES))
def test_total_shear_stress_balance(name):
    """dU+/dy+ - uv+ = 1 - y/delta holds for every published profile (README: within 0.014)."""
    r = load_reference(name)
    dudy = np.gradient(r.profiles["U+"], r.yplus)
    total = dudy - r.profiles["uv+"]
    inner = slice(2, -2)  # one-sided differences at the ends are less accurate
    assert np.max(np.abs(total[inner] - (1 - r.y_delta[inner]))) < 0.03
    assert np.all(np.diff(r.yplus) > 0)
    assert set(r.profiles) == {"U+", "u'+", "v'+", "w'+", "uv+"}


def test_interpolate_to_yplus():
    r = load_reference("lee-moser-180")
    at = r.interpolate([0.0, r.yplus[10], 15.0, 1e4])
    assert at["U+"][0] == pytest.approx(0.0, abs=1e-12)
    assert at["U+"][1] == pytest.approx(r.profiles["U+"][10])
    assert at["u'+"][2] == pytest.approx(2.67, abs=0.01)
    assert np.isnan(at["U+"][3])
    # the file stops at y/delta = 0.9916: the centre comes from the mirror image (uv+ -> 0 there)
    centre = r.interpolate([r.re_tau])
    assert centre["U+"][0] == pytest.approx(18.268, abs=1e-3)
    assert centre["uv+"][0] == pytest.approx(0.0, abs=1e-12)
    assert np.isnan(r.interpolate([r.re_tau * 1.001])["U+"][0])


def test_names_and_errors():
    assert load_reference(" Lee-Moser-180 ").name == "lee-moser-180"
    with pytest.raises(ValueError, match="available: lee-moser-180"):
        load_reference("kim-1987")
    assert nearest_reference(180) == "lee-moser-180"
    assert nearest_reference(600) == "lee-moser-550"
    assert nearest_reference(1e5) == "lee-moser-5200"
    with pytest.raises(ValueError):
        nearest_reference(-1)


def test_every_file_is_packaged_with_provenance():
    d = reference_dir()
    readme = (d / "README.md").read_text()
    for _, files, _, _ in REFERENCES.values():
        for f in files:
            assert (d / f).is_file(), f
            assert f"`{f}`" in readme, f"{f} missing from the README table"
    for name in REFERENCES:
        assert f"`{name}`" in readme
    assert "Lee & Moser" in readme and "Moser, J. Kim & N. N. Mansour" in readme
