"""Tests of cfdseed.units: the unit contract every source resolves its velocity scale with."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

import cfdseed
from cfdseed.errors import SourceError
from cfdseed.reference import KAPPA
from cfdseed.sources import resolve
from cfdseed.units import (
    DEFAULT_RE_TAU,
    RE_TAU_MIN,
    UNIT_OPTIONS,
    Units,
    check_unit_options,
    re_tau_from_bulk,
    reichardt_bulk,
    reichardt_profile,
    resolve_units,
)


def _integrated_reichardt_bulk(re_tau: float, n: int = 400_001) -> float:
    """Bulk of Reichardt's profile over the whole channel, by the trapezoid rule on a fine grid."""
    ly = 2.0
    y = np.linspace(0.0, ly, n)
    u = reichardt_profile(y, ly, re_tau)
    return float(np.sum(0.5 * (u[1:] + u[:-1]) * np.diff(y)) / ly)


def test_public_api_and_record():
    assert cfdseed.Units is Units and cfdseed.resolve_units is resolve_units
    assert UNIT_OPTIONS == ("re_tau", "u_tau", "nu", "bulk") and DEFAULT_RE_TAU == 180.0
    u = resolve_units(2.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        u.bulk = 1.0  # type: ignore[misc]
    assert u.bulk_plus == u.bulk / u.u_tau


@pytest.mark.parametrize("re_tau", [90.0, 180.0, 395.0, 1000.0])
def test_reichardt_bulk_is_the_integrated_profile(re_tau):
    assert reichardt_bulk(re_tau) == pytest.approx(_integrated_reichardt_bulk(re_tau), rel=1e-8)


def test_reichardt_bulk_at_180_and_its_growth():
    assert reichardt_bulk(180.0) == pytest.approx(15.515401, abs=1e-6)  # the value in the docstrings
    assert reichardt_bulk(180.0) == pytest.approx(_integrated_reichardt_bulk(180.0), rel=1e-8)
    # far from the wall the bulk grows like the log law: d bulk+ / d ln(re_tau) -> 1 / kappa
    slope = (reichardt_bulk(2e5) - reichardt_bulk(1e5)) / math.log(2.0)
    assert slope == pytest.approx(1.0 / KAPPA, rel=1e-3)


@pytest.mark.parametrize("re_tau", [100.0, 180.0, 395.0, 2260.0, 5200.0])
def test_re_tau_from_bulk_inverts_the_expected_bulk(re_tau):
    assert re_tau_from_bulk(re_tau * reichardt_bulk(re_tau)) == pytest.approx(re_tau, rel=1e-8)


def test_re_tau_from_bulk_of_openfoams_channel395_and_bad_values():
    assert re_tau_from_bulk(0.1335 * 1.0 / 2e-5) == pytest.approx(380.74, abs=0.01)  # the docstring's value
    for bad in (0.0, -5.0, float("nan"), 50.0):
        with pytest.raises(SourceError):
            re_tau_from_bulk(bad)


def test_defaults_are_wall_units_at_180_with_reichardts_bulk():
    for ly in (2.0, 1.0, 4.0):
        u = resolve_units(ly)
        h = ly / 2
        assert u == Units(re_tau=180.0, u_tau=1.0, nu=h / 180.0, bulk=reichardt_bulk(180.0), h=h)
        assert resolve_units(ly, re_tau=180) == u  # the same scale as no options
    gan_like = resolve_units(2.0, default_re_tau=395.0, bulk_plus=lambda r: 12.0 + math.log(r / 395.0) / KAPPA)
    assert (gan_like.re_tau, gan_like.u_tau, gan_like.bulk) == (395.0, 1.0, 12.0)


def test_resolution_rules():
    h = 1.0
    # re_tau from u_tau and nu
    u = resolve_units(2.0, u_tau=0.05, nu=2.5e-4)
    assert u.re_tau == pytest.approx(200.0) and u.bulk == pytest.approx(reichardt_bulk(200.0) * 0.05)
    # u_tau from re_tau and nu
    u = resolve_units(2.0, re_tau=200.0, nu=1e-3)
    assert u.u_tau == pytest.approx(0.2) and u.nu == 1e-3
    # u_tau from nu (default re_tau)
    assert resolve_units(2.0, nu=1e-3).u_tau == pytest.approx(180 * 1e-3 / h)
    # u_tau from bulk / bulk_plus(re_tau): bulk set exactly
    u = resolve_units(2.0, bulk=2.0, re_tau=395.0)
    assert u.bulk == 2.0 and u.u_tau == pytest.approx(2.0 / reichardt_bulk(395.0))
    assert u.nu == pytest.approx(u.u_tau * h / 395.0)
    # a given bulk_plus (float or callable of re_tau) replaces Reichardt's
    assert resolve_units(2.0, bulk=2.0, bulk_plus=16.0).u_tau == pytest.approx(0.125)
    assert resolve_units(2.0, re_tau=360.0, bulk_plus=lambda r: r / 10).bulk == pytest.approx(36.0)
    # u_tau given: bulk defaults to bulk_plus * u_tau; a given bulk is set as it is (no contradiction)
    assert resolve_units(2.0, u_tau=2.0).bulk == pytest.approx(2 * reichardt_bulk(180.0))
    u = resolve_units(2.0, re_tau=180.0, u_tau=1.0, nu=1 / 180, bulk=15.7)
    assert (u.re_tau, u.u_tau, u.bulk) == (180.0, 1.0, 15.7)
    # u_tau or nu fix the scale: a zero or negative bulk is then just the bulk
    assert resolve_units(2.0, bulk=-1.0, u_tau=1.0).bulk == -1.0
    assert resolve_units(2.0, bulk=0.0, nu=1e-3).u_tau == pytest.approx(0.18)
    # h = ly / 2
    assert resolve_units(6.0, u_tau=1.0, nu=0.01).re_tau == pytest.approx(300.0)
    # consistent triples within the relative tolerance are accepted
    assert resolve_units(2.0, re_tau=200.0 * (1 + 1e-9), u_tau=0.05, nu=2.5e-4).re_tau == pytest.approx(200.0)


def test_contradiction_is_one_error_naming_both_sides():
    with pytest.raises(SourceError) as info:
        resolve_units(2.0, re_tau=395.0, u_tau=1.0, nu=0.1, source="plug")
    msg = str(info.value)
    assert msg.startswith("plug: re_tau=395 contradicts u_tau * h / nu = 1 * 1 / 0.1 = 10")
    with pytest.raises(SourceError, match="re_tau=100 contradicts u_tau \\* h / nu = 0.05 \\* 1 / 0.00025 = 200"):
        resolve_units(2.0, re_tau=100.0, u_tau=0.05, nu=2.5e-4, bulk=1.0)


@pytest.mark.parametrize("key", ["re_tau", "u_tau", "nu"])
@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf"), "200", True])
def test_non_positive_or_non_finite_values(key, bad):
    with pytest.raises(SourceError, match=f"trig: {key} must be a positive number"):
        resolve_units(2.0, **{key: bad}, source="trig")
    with pytest.raises(SourceError, match=f"trig: {key} must be a positive number"):
        check_unit_options("trig", {key: bad})


def test_re_tau_below_the_contract_is_refused_however_it_arises():
    """re_tau = 1e-300 used to give a field of zeros (bulk 0) and nu = 1e300, without a word."""
    assert RE_TAU_MIN == 1.0 and resolve_units(2.0, re_tau=1.0).re_tau == 1.0
    with pytest.raises(SourceError, match=r"plug: re_tau=1e-300 is below 1: .*y\+ < 1"):
        resolve_units(2.0, re_tau=1e-300, source="plug")
    with pytest.raises(SourceError, match=r"plug: re_tau=0.5 is below 1"):
        check_unit_options("plug", {"re_tau": 0.5})
    # a nu in the wrong units (m^2/s where the grid is in units of h): the implied re_tau names it
    with pytest.raises(SourceError, match=r"re_tau = u_tau \* h / nu = 1 \* 1 / 1.5 = 0.666667 .*is below 1"):
        resolve_units(2.0, u_tau=1.0, nu=1.5)
    with pytest.raises(SourceError, match=r"default re_tau=0.1 is below 1"):
        resolve_units(2.0, default_re_tau=0.1)
    # a source refuses it before building anything
    g = cfdseed.Grid((8, 9, 8), (2.0, 2.0, 1.0), "uniform")
    with pytest.raises(SourceError, match="is below 1"):
        resolve("plug", {"re_tau": 1e-3})(g, np.random.default_rng(0))


def test_bad_bulk_and_bulk_plus():
    for bad in (float("nan"), float("inf"), "fast"):
        with pytest.raises(SourceError, match="analytic: bulk must be a finite number"):
            resolve_units(2.0, bulk=bad, source="analytic")
    for bulk in (0.0, -2.0):  # the bulk would have to set u_tau
        with pytest.raises(SourceError, match=f"bulk={bulk:g} cannot set the velocity scale.*give u_tau or nu"):
            resolve_units(2.0, bulk=bulk)
    with pytest.raises(SourceError, match="cannot set the velocity scale"):
        resolve_units(2.0, bulk=1.0, bulk_plus=-3.0)
    with pytest.raises(SourceError, match="bulk_plus at re_tau=180"):
        resolve_units(2.0, bulk_plus=lambda r: float("nan"))
    with pytest.raises(SourceError, match="ly must be a positive number"):
        resolve_units(0.0)
    with pytest.raises(SourceError, match="default re_tau must be a positive number"):
        resolve_units(2.0, default_re_tau=-1.0)
    with pytest.raises(SourceError, match="re_tau must be a positive number"):
        reichardt_bulk(0.0)


def test_check_unit_options_returns_all_four():
    assert check_unit_options("plug", {"bulk": 2, "noise": 0.1}) == {"re_tau": None, "u_tau": None, "nu": None,
                                                                      "bulk": 2.0}


def test_units_built_by_hand_are_checked():
    """resolve_units checks its inputs; a Units made directly is checked too (u_tau = 0 made
    bulk_plus a ZeroDivisionError)."""
    from cfdseed.units import Units

    good = dict(re_tau=180.0, u_tau=1.0, nu=1 / 180, bulk=15.7, h=1.0)
    assert Units(**good).bulk_plus == 15.7
    for key, bad in (("u_tau", 0.0), ("re_tau", -1.0), ("nu", float("nan")), ("h", "1"), ("bulk", float("inf"))):
        with pytest.raises(SourceError, match=f"Units: {key} must be"):
            Units(**{**good, key: bad})
