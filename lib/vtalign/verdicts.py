"""Status rules: how a measured interval becomes a word, in one place.

Every status the book prints comes from a function here, applied the same way to the paper's data
and to this build's measurements. A rule reads *intervals* (an estimate with a lower and an upper
bound), never bare point estimates, so a difference inside the noise is never counted as an effect.

Two vocabularies, because two different questions are asked:

- **About the paper's claim** (evidence: the published numbers re-analysed, or real data measured
  here): :data:`SUPPORTED`, :data:`CONTRADICTED`, :data:`UNRESOLVED`, :data:`NOT_TESTABLE`.
- **About the method** (evidence: a generated world with the effect planted, beside a null world
  where it is absent by construction): :data:`DETECTED`, :data:`FIRES_ON_NULL`, :data:`NOT_DETECTED`,
  :data:`NO_POWER`, :data:`NOT_TESTABLE`. A method check says whether the measurement finds an effect
  when it is there and stays silent when it is not; it is never evidence about the paper's models.

:data:`DEFINITIONS` holds the definition of every word; the landing page prints it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["Interval", "Verdict", "EVIDENCE", "DEFINITIONS", "SUPPORTED", "CONTRADICTED", "UNRESOLVED",
           "NOT_TESTABLE", "AS_PUBLISHED", "DETECTED", "FIRES_ON_NULL", "NOT_DETECTED", "NO_POWER", "direction",
           "sign_status",
           "trend", "claim_status", "method_check", "versus_published", "about_status", "form_status",
           "percentile_interval", "independent_difference", "holm", "critical_pearson_r"]

# Kinds of evidence, in the order the landing page shows them.
EVIDENCE = ("published", "re-analysis", "real data", "controlled world")

# Words about a claim, the same for the paper's data re-analysed and for real data measured here: the row's
# evidence kind (re-analysis or real data) says whose data graded it.
SUPPORTED = "supported"
CONTRADICTED = "contradicted"
UNRESOLVED = "not resolved"
NOT_TESTABLE = "not testable here"
AS_PUBLISHED = "as published"
DETECTED = "detected, silent on the null"
FIRES_ON_NULL = "fires on the null"
NOT_DETECTED = "not detected"
NO_POWER = "no power"

DEFINITIONS = {
    AS_PUBLISHED: "the paper's own number or sentence, quoted; not a test.",
    SUPPORTED: "the row's data (the paper's published data re-analysed here, or real data measured here; the "
               "evidence kind says which) show the claim beyond their noise margin (the rule names the margin).",
    CONTRADICTED: "the row's data (the paper's re-analysed, or real data measured here) show the opposite beyond "
                  "their noise margin.",
    UNRESOLVED: "the row's data (the paper's re-analysed, or real data measured here) show neither the claim nor "
                "its opposite beyond their noise margin.",
    DETECTED: "method check on generated clips: the measurement finds the planted effect, does not find it in "
              "the null world where it is absent by construction, and the two worlds differ beyond their "
              "confidence intervals. It says the method works, not that the paper's models behave so.",
    FIRES_ON_NULL: "method check: the measurement also finds the effect in the null world (or in a control that "
                   "cannot show it), so finding it in the planted world is not evidence of anything.",
    NOT_DETECTED: "method check: the measurement does not find the planted effect, although the test could have "
                  "found an effect of the paper's size (the null world's interval is narrower than it, or the "
                  "smallest significant r is below the paper's r), or no power bound applies to the rule.",
    NO_POWER: "method check: the effect is not found, and the test could not have found an effect of the paper's "
              "size: the null world's interval is as wide as the paper's effect or wider, or (for a correlation) "
              "the smallest r the test can declare significant with these many points is at least the paper's r.",
    NOT_TESTABLE: "the data or chapter needed for this test did not run in this build, or no test here can "
                  "speak to the claim (the reason says which).",
}


@dataclass(frozen=True)
class Interval:
    """An estimate with its interval (``low <= estimate <= high`` is not required: a margin can be
    asymmetric). ``how`` says where the interval comes from (bootstrap over items, digitisation error)."""
    estimate: float
    low: float
    high: float
    how: str = ""

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def minus(self, other: "Interval") -> "Interval":
        """``self - other`` with the widest bounds the two intervals allow (low minus the other's high).

        >>> Interval(1.0, 0.9, 1.1).minus(Interval(0.2, 0.1, 0.3))
        Interval(estimate=0.8, low=0.6000000000000001, high=1.0, how='')
        """
        return Interval(self.estimate - other.estimate, self.low - other.high, self.high - other.low)

    def __str__(self) -> str:
        return f"{self.estimate:+.4f} [{self.low:+.4f}, {self.high:+.4f}]"


@dataclass(frozen=True)
class Verdict:
    """One row of ``results/claims.csv``: a claim (stable ``claim`` key), a kind of ``evidence``, its
    ``status`` (a word of :data:`DEFINITIONS`), the ``rule`` in words with its margin, the measured
    ``value`` and the ``control`` beside it (the null world, the noise margin; empty when none)."""
    claim: str
    evidence: str
    status: str
    rule: str
    value: str
    control: str = ""

    def __post_init__(self):
        if self.evidence not in EVIDENCE:
            raise ValueError(f"evidence must be one of {EVIDENCE}, got {self.evidence!r}.")
        if self.status not in DEFINITIONS:
            raise ValueError(f"status must be one of {list(DEFINITIONS)}, got {self.status!r}.")

    def as_dict(self) -> dict:
        return asdict(self)


def direction(interval: Interval) -> int:
    """+1 when the whole interval lies above zero, -1 when below, 0 when it contains zero.

    >>> direction(Interval(0.02, 0.01, 0.03)), direction(Interval(0.02, -0.01, 0.05)), direction(Interval(-1, -2, -0.5))
    (1, 0, -1)
    """
    return 1 if interval.low > 0 else -1 if interval.high < 0 else 0


def sign_status(interval: Interval) -> str:
    """The paper's claim of a positive effect, graded on one interval of its data: supported above zero,
    contradicted below, unresolved when the interval contains zero.

    >>> sign_status(Interval(.1, .05, .15)), sign_status(Interval(0, -.1, .1))
    ('supported', 'not resolved')
    """
    return {1: SUPPORTED, -1: CONTRADICTED}.get(direction(interval), UNRESOLVED)


def trend(steps: list[Interval], overall: Interval) -> str:
    """Does a curve rise? ``"rises"`` when its first-to-last change lies above zero and no single step
    lies below zero (a step inside the noise is flat, which a saturating curve is allowed); ``"falls"``
    the mirror; ``"flat"`` otherwise.

    >>> up, flat, down = Interval(.1, .05, .15), Interval(0, -.01, .01), Interval(-.1, -.15, -.05)
    >>> trend([up, flat], Interval(.1, .04, .16)), trend([up, down], Interval(0, -.05, .05)), trend([down], down)
    ('rises', 'flat', 'falls')
    >>> trend([up, down], Interval(.1, .05, .15))   # rises overall, but one step falls beyond its noise
    'flat'
    """
    d = [direction(s) for s in steps]
    if direction(overall) > 0 and -1 not in d:
        return "rises"
    if direction(overall) < 0 and 1 not in d:
        return "falls"
    return "flat"


def claim_status(n_for: int, n_against: int, n: int) -> str:
    """The paper's claim that *every* unit (curve, task, model) shows an effect, graded on its data:
    supported when all ``n`` show it beyond their margin, contradicted when any shows the opposite
    beyond its margin, unresolved otherwise; not testable when there is nothing to grade.

    >>> claim_status(4, 0, 4), claim_status(3, 0, 4), claim_status(3, 1, 4), claim_status(0, 0, 0)
    ('supported', 'not resolved', 'contradicted', 'not testable here')
    """
    if n == 0:
        return NOT_TESTABLE
    if n_against:
        return CONTRADICTED
    return SUPPORTED if n_for == n else UNRESOLVED


def method_check(planted: bool, null: bool | None, separation: Interval | None = None,
                 null_half_width: float | None = None, paper_effect: float | None = None) -> str:
    """Grade a method check from the same detection rule applied to the planted and the null world.

    planted, null : whether the rule detected the effect in each world (``null=None``: no null world ran)
    separation : the planted effect minus the null effect, with its interval; detection needs it above zero
    null_half_width, paper_effect : the smallest effect the test could detect (the null world's half-width;
        for a correlation, :func:`critical_pearson_r`) and the paper's effect size, on the same scale; when the
        effect is not detected and that smallest effect is as large as the paper's, the test had no power

    >>> method_check(True, False, Interval(.1, .05, .15))
    'detected, silent on the null'
    >>> method_check(True, True, Interval(.1, .05, .15)), method_check(False, None)
    ('fires on the null', 'not testable here')
    >>> method_check(False, False, None, null_half_width=0.01, paper_effect=0.005)
    'no power'
    >>> method_check(False, False, None, null_half_width=0.001, paper_effect=0.005)
    'not detected'
    >>> method_check(True, False, Interval(.01, -.01, .03))   # found, but not told apart from the null
    'not detected'
    """
    if null is None:
        return NOT_TESTABLE
    if null:
        return FIRES_ON_NULL
    if planted and (separation is None or direction(separation) > 0):
        return DETECTED
    if null_half_width is not None and paper_effect is not None and null_half_width >= abs(paper_effect):
        return NO_POWER
    return NOT_DETECTED


def versus_published(interval: Interval, published: float) -> str:
    """``"matches"`` when the published value lies inside the interval, else ``"larger"`` or ``"smaller"``
    (this run's value relative to the published one).

    >>> versus_published(Interval(.6, .5, .7), .6), versus_published(Interval(1.7, 1.5, 1.9), .6)
    ('matches', 'larger')
    """
    if interval.low <= published <= interval.high:
        return "matches"
    return "larger" if interval.low > published else "smaller"


def about_status(interval: Interval, published: float, tolerance: float) -> str:
    """Is a measured quantity "about" a published value? An equivalence rule on the band
    ``published ± tolerance`` (``tolerance``: the precision the paper printed it with): supported when the
    whole interval lies inside the band, contradicted when the whole interval lies outside it, unresolved
    when the interval straddles an edge of the band (the data cannot tell).

    >>> about_status(Interval(.6, .57, .63), .6, .05), about_status(Interval(.4, .35, .45), .6, .05)
    ('supported', 'contradicted')
    >>> about_status(Interval(.55, .52, .59), .6, .05)   # straddles the band's lower edge, 0.55
    'not resolved'
    """
    low, high = published - tolerance, published + tolerance
    if low <= interval.low and interval.high <= high:
        return SUPPORTED
    if interval.high < low or interval.low > high:
        return CONTRADICTED
    return UNRESOLVED


def form_status(delta_aicc_eq2: float, best_other_delta: float, margin: float = 10.0) -> str:
    """Is Eq. 2 the best form "by a significant margin"? From Eq. 2's ΔAICc (0 when it is best) and the
    smallest ΔAICc among the other forms: supported when Eq. 2 is best and every other form trails by
    more than ``margin``; contradicted when another form beats Eq. 2 by more than ``margin``; else unresolved.
    (ΔAICc > 10: essentially no support for the worse model; Burnham & Anderson 2002.)

    >>> form_status(0.0, 12.0), form_status(54.0, 0.0), form_status(0.0, 3.0)
    ('supported', 'contradicted', 'not resolved')
    """
    if delta_aicc_eq2 > margin:
        return CONTRADICTED
    if delta_aicc_eq2 == 0 and best_other_delta > margin:
        return SUPPORTED
    return UNRESOLVED


def percentile_interval(draws, estimate: float, confidence: float = 0.95, how: str = "") -> Interval:
    """Percentile interval of bootstrap ``draws`` around ``estimate``.

    >>> round(percentile_interval(np.arange(101) / 100, 0.5, 0.9).low, 6)
    0.05
    """
    q = (1 - confidence) / 2
    low, high = np.quantile(np.asarray(draws, dtype=float), [q, 1 - q])
    return Interval(float(estimate), float(low), float(high), how)


def independent_difference(a_draws, b_draws, a: float, b: float, confidence: float = 0.95,
                           how: str = "") -> Interval:
    """Interval of ``a - b`` for two independent samples (planted and null world), from their bootstrap
    draws paired at random (draw i with draw i; the draws are independent, so any pairing is).

    >>> independent_difference([1.0, 1.1, 0.9], [0.0, 0.1, -0.1], 1.0, 0.0, 0.5).estimate
    1.0
    """
    a_draws, b_draws = np.asarray(a_draws, dtype=float), np.asarray(b_draws, dtype=float)
    n = min(a_draws.size, b_draws.size)
    return percentile_interval(a_draws[:n] - b_draws[:n], a - b, confidence, how)


def holm(p_values, alpha: float = 0.05) -> np.ndarray:
    """Holm's step-down correction: which of ``p_values`` are significant at family-wise ``alpha``.

    >>> holm([0.01, 0.04, 0.03], 0.05).tolist(), holm([0.01, 0.02], 0.05).tolist()
    ([True, False, False], [True, True])
    """
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p, kind="stable")
    significant = np.zeros(p.size, dtype=bool)
    for rank, i in enumerate(order):
        if p[i] > alpha / (p.size - rank):
            break
        significant[i] = True
    return significant


def critical_pearson_r(n: int, m: int = 1, alpha: float = 0.05, n_permutations: int | None = None) -> float:
    """The smallest Pearson r (in absolute value) that a two-sided test of r with ``n`` points can declare
    significant at Holm's first threshold over ``m`` tests, ``alpha / m`` (no test survives Holm's correction
    unless the smallest p is below it): ``r_c = t / sqrt(n - 2 + t^2)``, with ``t`` the ``1 - alpha / (2 m)``
    quantile of Student's t with ``n - 2`` degrees of freedom (the null distribution of r for independent
    normal data; a permutation test's is close to it). ``inf`` when no r can be significant: fewer than 3
    points, ``m = 0`` (nothing tested), or a permutation p that cannot go that low: with ``n`` points there are
    ``n!`` orders, so the exact p is at least ``1 / n!``, and with ``n_permutations`` random shuffles it is at
    least ``1 / (1 + n_permutations)``.

    >>> critical_pearson_r(3, 1)     # 3 points: 3! = 6 orders, the permutation p is at least 1/6 > 0.05
    inf
    >>> round(critical_pearson_r(12, 3), 3), round(critical_pearson_r(1000, 3), 3)
    (0.672, 0.076)
    >>> critical_pearson_r(12, 3, n_permutations=50)   # 50 shuffles: p >= 1/51 > 0.05/3
    inf
    """
    from math import factorial

    from scipy.stats import t as student_t

    if m < 0 or not 0 < alpha < 1:
        raise ValueError(f"m must be >= 0 and alpha in (0, 1), got m={m}, alpha={alpha}.")
    level = alpha / m if m else 0.0
    smallest_p = 1 / factorial(n) if 1 <= n <= 20 else 0.0  # 20! > 1e18: no level here is that small
    if n_permutations is not None:
        smallest_p = max(smallest_p, 1 / (1 + n_permutations))
    if n < 3 or m == 0 or smallest_p > level:
        return float("inf")
    t = float(student_t.ppf(1 - level / 2, n - 2))
    return t / float(np.sqrt(n - 2 + t * t))
