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
    assert np.max(np.abs(total[inner] - (1 - r.y_delta[inner]))) < 0.014
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


# -- interpolation in Re_tau (issue 16) ---------------------------------------------------------
def test_interpolation_reproduces_the_packaged_ends_exactly():
    from cfdseed.reference import interpolate_reference

    for name in ("lee-moser-2000", "lee-moser-5200", "lee-moser-180"):
        ref = load_reference(name)
        got = interpolate_reference(ref.re_tau)
        assert got.name == name
        for k in ref.profiles:
            np.testing.assert_array_equal(got.profiles[k], ref.profiles[k])
    # and it is continuous at them: just above 2000 the profiles are 2000's
    a, near = load_reference("lee-moser-2000"), interpolate_reference(1994.756 * (1 + 1e-9))
    for k in a.profiles:
        np.testing.assert_allclose(near.interpolate(a.yplus[1:-1])[k], a.profiles[k][1:-1], rtol=1e-6, atol=1e-6)


def test_interpolated_u_plus_is_monotone_in_re_tau_at_fixed_y_plus():
    from cfdseed.reference import INNER_LIMIT, interpolate_reference

    res = np.geomspace(1994.756, 5185.897, 30)[1:-1]
    for yp in (1.0, 5.0, 15.0, INNER_LIMIT):  # wall scaling: linear in ln Re_tau, exactly monotone
        u = np.array([interpolate_reference(r).interpolate([yp])["U+"][0] for r in res])
        d = np.diff(u)
        assert (d <= 1e-12).all() or (d >= -1e-12).all(), (yp, d)
    for yp in (300.0, 1000.0, 1500.0):  # outer and blended scaling: monotone to interpolation error
        u = np.array([interpolate_reference(r).interpolate([yp])["U+"][0] for r in res])
        trend = np.sign(u[-1] - u[0])
        assert (trend * np.diff(u) >= -2e-3 * abs(u).max()).all(), yp


def test_interpolation_range_is_a_clear_error():
    from cfdseed.reference import interpolate_reference

    assert interpolate_reference(180.0).name == "lee-moser-180"  # within 5 % of the lowest
    assert interpolate_reference(5400.0).name == "lee-moser-5200"
    for bad in (150.0, 6000.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="outside the packaged Lee & Moser range|positive finite"):
            interpolate_reference(bad)
    t = interpolate_reference(2260.0)
    assert "between lee-moser-2000 and lee-moser-5200" in t.name and t.re_tau == 2260.0
    assert load_reference("lee-moser-2000").centreline() < t.centreline() < load_reference("lee-moser-5200").centreline()


def test_compare_profiles_measures_in_the_channels_own_wall_units():
    """Lee & Moser's own profiles, put on a Chebyshev grid in units where u_tau = 1.3, compare
    to within interpolation error when the right u_tau is given, and visibly worse with a wrong one."""
    from cfdseed.reference import compare_profiles
    from cfdseed.solvers.dedalus_case import gauss_points

    ref = load_reference("lee-moser-180")
    ly, u_tau = 2.0, 1.3
    nu = u_tau * (ly / 2) / ref.re_tau
    y = gauss_points(96, ly)
    it = ref.interpolate(np.minimum(np.minimum(y, ly - y) * u_tau / nu, ref.re_tau))
    full = {"U": u_tau * it["U+"], "uu": (u_tau * it["u'+"]) ** 2, "vv": (u_tau * it["v'+"]) ** 2,
            "ww": (u_tau * it["w'+"]) ** 2, "uv": np.where(y < ly / 2, 1.0, -1.0) * u_tau**2 * it["uv+"]}
    good = compare_profiles(y, full, ly, nu, u_tau=u_tau)
    assert good["re_tau"] == pytest.approx(ref.re_tau)
    assert good["u_plus_rel_l2"] < 0.005 and good["peak_u_rel_err"] < 0.01
    assert good["min_uv_plus"] == pytest.approx(good["reference_min_uv_plus"], abs=0.02)
    bad = compare_profiles(y, full, ly, nu, u_tau=1.03 * u_tau)  # 3 % off: U+ about 3 % low
    assert 0.02 < bad["u_plus_rel_l2"] < 0.04 and bad["u_plus_rel_l2"] > 5 * good["u_plus_rel_l2"]
