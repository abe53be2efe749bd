"""Detection of the end of the start-up transient: one home for every steady-state rule.

- :mod:`cfdseed.transient.rules`: single-record rules (``detect_steady`` with the band and MSER
  rules, ``combine``, ``running_mean``) and the Dedalus validation's ``steady_start``;
- :mod:`cfdseed.transient.calibrated`: the rule calibrated on a long stationary reference
  (:class:`Reference`): control bands, surrogate records with the reference's spectra, ensemble
  onsets, bootstrap intervals and the power analysis of the transient campaign.
"""

from .calibrated import Reference, resample, trailing_mean
from .rules import SteadyState, combine, detect_steady, mser, running_mean, steady_start

__all__ = ["SteadyState", "detect_steady", "combine", "running_mean", "mser", "steady_start",
           "Reference", "resample", "trailing_mean"]
