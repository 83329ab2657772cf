"""Lower confidence bounds on a route's agreement with the reference.

The default, :class:`BetaMixtureSequence`, is a *confidence sequence*: its bound holds
simultaneously at every number of probes, so the engine may look after every probe, stop
profiling whenever it likes and keep auditing forever without inflating the error probability.
:class:`ClopperPearsonBound` is the fixed-sample bound the SMART paper re-checks every few items;
it is offered only to replicate the paper and is *not* valid under repeated looks.

Both are functions of the counts alone (agreements, probes), so every worker sharing a store
computes the same bound from the same counters.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Protocol, TypeVar, runtime_checkable

_T = TypeVar("_T")

__all__ = [
    "BetaMixtureSequence",
    "ClopperPearsonBound",
    "ConfidenceSequence",
    "FinitePopulationSequence",
    "make_confidence_sequence",
]


@runtime_checkable
class ConfidenceSequence(Protocol):
    """Turns (agreements, probes, alpha) into a lower bound on the agreement probability."""

    name: str
    #: True when the bound may be checked after every observation (optional stopping).
    anytime_valid: bool

    def lower(self, successes: int, trials: int, alpha: float) -> float:
        """A lower bound L with P(p < L) <= alpha (at all times when ``anytime_valid``)."""
        ...

    def upper(self, successes: int, trials: int, alpha: float) -> float:
        """An upper bound, used only to decide that a candidate is hopeless."""
        ...


def _log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def _bisect(f, lo: float, hi: float, iters: int = 60) -> float:
    """Boundary between ``lo`` (f >= 0) and ``hi`` (f < 0), either order; the f >= 0 side."""
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        if f(mid) >= 0:
            lo = mid
        else:
            hi = mid
    return lo


@dataclass(frozen=True)
class BetaMixtureSequence:
    """Anytime-valid bound from a mixture of Beta-Bernoulli likelihood ratios (Robbins, Ville).

    For a candidate value p0, ``M_n(p0) = E_{q~prior}[prod_i q^x_i (1-q)^(1-x_i)] /
    (p0^S (1-p0)^(n-S))`` is a nonnegative martingale with mean 1 when p = p0, so by Ville's
    inequality it ever exceeds 1/alpha with probability at most alpha. The bound is the smallest
    p0 below the empirical rate that ``M_n`` has not rejected. Because the numerator does not
    depend on p0, ``M_n`` is monotone in p0 on each side of S/n and the bound is found by
    bisection exactly.

    The prior is a finite mixture of Beta laws. Centring it near the agreement rates that decide
    routing (about 1 - epsilon) is what makes the bound tight where it matters: the prior is fixed
    before any data, so this costs no validity.
    """

    #: (weight, mean, concentration) triples; weights are normalised.
    components: tuple[tuple[float, float, float], ...] = (
        (0.25, 0.95, 30.0),
        (0.25, 0.95, 100.0),
        (0.25, 0.95, 300.0),
        (0.25, 0.95, 1000.0),
    )
    name: str = "anytime"
    anytime_valid: bool = True
    _cache: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def for_target(cls, epsilon: float) -> BetaMixtureSequence:
        """A prior for a target of ``1 - epsilon``, centred where useful candidates agree.

        The bound is tightest for agreement rates near the prior's centre. Candidates worth
        routing to agree at least ``1 - epsilon`` of the time or are mixed with the reference,
        and cheaper LLMs typically agree with a stronger one 85-97 % of the time; the centre is
        the smaller of halfway between the threshold and 1, and 0.95. Concentrations from 30 to
        1,000 spread the power over probe counts from tens to thousands. Example: certifying 0.947
        at a true 0.96 (alpha 0.0125) takes about 3,400 probes with this prior, 4,050 with a
        centre at ``1 - epsilon/2`` for epsilon = 0.05.
        """
        centre = min(0.95, max(0.5, 1.0 - epsilon / 2.0))
        # A uniform component keeps upper bounds of poor candidates informative, so they can be
        # dropped after a handful of probes; it costs ln(1/0.9) in the threshold.
        centred = [(0.225, centre, conc) for conc in (30.0, 100.0, 300.0, 1000.0)]
        return cls(components=((0.1, 0.5, 2.0), *centred))

    def _log_marginal(self, s: int, n: int) -> float:
        terms = []
        for w, mean, conc in self.components:
            a, b = mean * conc, (1.0 - mean) * conc
            terms.append(math.log(w) + _log_beta(a + s, b + n - s) - _log_beta(a, b))
        total_w = sum(w for w, _, _ in self.components)
        return _logsumexp(terms) - math.log(total_w)

    def _threshold(self, s: int, n: int, alpha: float) -> float:
        # Reject p0 when -(s ln p0 + (n-s) ln(1-p0)) >= ln(1/alpha) - ln(marginal).
        return math.log(1.0 / alpha) - self._log_marginal(s, n)

    def lower(self, successes: int, trials: int, alpha: float) -> float:
        return self._cached("lower", successes, trials, alpha)

    def upper(self, successes: int, trials: int, alpha: float) -> float:
        return self._cached("upper", successes, trials, alpha)

    def _cached(self, side: str, s: int, n: int, alpha: float) -> float:
        return _memo(self._cache, (side, s, n, alpha), lambda: self._boundary(side, s, n, alpha))

    def _boundary(self, side: str, s: int, n: int, alpha: float) -> float:
        """The edge of the set of p0 not yet rejected, below (lower) or above (upper) S/n."""
        _check(s, n, alpha)
        lower = side == "lower"
        if (s == 0 and lower) or (s == n and not lower):
            return 0.0 if lower else 1.0
        target = self._threshold(s, n, alpha)
        if target <= 0:
            return s / n
        # p0 is rejected when -(s ln p0 + (n-s) ln(1-p0)) >= target; closed forms at the ends.
        if s == n:
            return math.exp(-target / n)
        if s == 0:
            return 1.0 - math.exp(-target / n)

        def rejected(p0: float) -> float:
            return -(s * math.log(p0) + (n - s) * math.log1p(-p0)) - target

        edge = 1e-15 if lower else 1.0 - 1e-15
        if rejected(edge) < 0:
            return 0.0 if lower else 1.0
        # Halving between a rejected edge and S/n; the rejected side is returned (conservative).
        return _bisect(rejected, edge, s / n)


@dataclass(frozen=True)
class FinitePopulationSequence:
    """Anytime bound on the agreement of a batch's *unprobed* items (sampling without replacement).

    A batch of ``population`` items processed in random order is a finite population: every probe
    reveals one more item's agreement, drawn uniformly from the items not yet probed (items routed
    without a probe are removed unseen, which leaves the rest exchangeable). The unknown is the
    count ``F`` of differing answers over the whole batch. For any prior on ``F`` the ratio
    prior(F) / posterior(F) is a nonnegative martingale with mean 1 under the true ``F``
    (Waudby-Smith & Ramdas 2020, "Confidence sequences for sampling without replacement"), so by
    Ville's inequality every ``F`` it pushes above ``1/alpha`` is ruled out, at all times at once.
    The prior is the Beta mixture of :class:`BetaMixtureSequence` made beta-binomial.

    ``lower`` returns ``1 - (U - f) / (N - n)``: at most ``U - f`` of the ``N - n`` unprobed items
    differ, ``U`` being the largest ``F`` not ruled out and ``f`` the differing answers already
    seen. Unlike a bound on a per-item probability, this covers the chance fluctuation of the
    batch's own answers too, so batch mode needs no separate margin for it, and it tightens as the
    unprobed part of the batch shrinks.
    """

    population: int
    mixture: BetaMixtureSequence = field(default_factory=BetaMixtureSequence)
    name: str = "anytime"
    anytime_valid: bool = True
    _cache: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.population < 1:
            raise ValueError(f"population must be at least 1, got {self.population}")

    @classmethod
    def for_target(cls, epsilon: float, population: int) -> FinitePopulationSequence:
        """A batch of ``population`` items, prior centred as for :class:`BetaMixtureSequence`."""
        return cls(population=population, mixture=BetaMixtureSequence.for_target(epsilon))

    def lower(self, successes: int, trials: int, alpha: float) -> float:
        return self._rate("lower", successes, trials, alpha)

    def upper(self, successes: int, trials: int, alpha: float) -> float:
        return self._rate("upper", successes, trials, alpha)

    def differing_bounds(self, successes: int, trials: int, alpha: float) -> tuple[int, int]:
        """The smallest and largest count of differing unprobed answers not ruled out."""
        _check(successes, trials, alpha)
        return _memo(
            self._cache,
            (successes, trials, alpha),
            lambda: self._count_bounds(successes, trials, alpha),
        )

    def _rate(self, side: str, s: int, n: int, alpha: float) -> float:
        rest = self.population - n
        if rest <= 0:  # nothing left unprobed: the bound is vacuous, report the sample rate
            return s / n if n else (0.0 if side == "lower" else 1.0)
        lo, hi = self.differing_bounds(s, n, alpha)
        return 1.0 - hi / rest if side == "lower" else 1.0 - lo / rest

    def _components(self) -> list[tuple[float, float, float]]:
        # (log weight, a, b) of Beta laws on the *differing* rate: agreement Beta(a, b) mirrored.
        total = sum(w for w, _, _ in self.mixture.components)
        return [
            (math.log(w / total), (1.0 - mean) * conc, mean * conc)
            for w, mean, conc in self.mixture.components
        ]

    def rules_out(self, differing_unprobed: int, successes: int, trials: int, alpha: float) -> bool:
        """Is ``differing_unprobed`` differing answers among the unprobed items ruled out?"""
        _check(successes, trials, alpha)
        log_ratio = self._log_ratio(successes, trials)
        return log_ratio(differing_unprobed) >= math.log(1.0 / alpha)

    def _log_ratio(self, s: int, n: int) -> Callable[[int], float]:
        """g -> log prior(F) - log posterior(F), F = f + g differing answers in the whole batch.

        The mixture's posterior weights depend on the counts only, so they are computed once
        for all the values of g a bisection asks about.
        """
        big_n, f = self.population, n - s
        rest = big_n - n
        comps = self._components()
        post_w = [lw + _log_beta(a + f, b + s) - _log_beta(a, b) for lw, a, b in comps]
        norm = _logsumexp(post_w)
        post = [(w - norm, a + f, b + s) for w, (_, a, b) in zip(post_w, comps, strict=True)]

        # What does not depend on g is worked out once; the terms are added in the order of
        # _log_beta_binomial, so the values are the same to the last bit.
        lgamma = math.lgamma
        prior = [(lw, a, b, _log_beta(a, b)) for lw, a, b in comps]
        posterior = [(lw, a, b, _log_beta(a, b)) for lw, a, b in post]
        lg_big_n, lg_rest = lgamma(big_n + 1), lgamma(rest + 1)

        def mixture(k: int, size: int, lg_size: float, laws) -> float:
            head = lg_size - lgamma(k + 1) - lgamma(size - k + 1)
            terms = []
            for lw, a, b, log_beta_ab in laws:
                x, y = k + a, size - k + b
                terms.append(lw + (head + (lgamma(x) + lgamma(y) - lgamma(x + y)) - log_beta_ab))
            return _logsumexp(terms)

        def log_ratio(g: int) -> float:
            if g < 0 or g > rest:
                return math.inf
            log_prior = mixture(f + g, big_n, lg_big_n, prior)
            log_post = mixture(g, rest, lg_rest, posterior)
            return log_prior - log_post

        return log_ratio

    def _count_bounds(self, s: int, n: int, alpha: float) -> tuple[int, int]:
        rest = self.population - n
        if n == 0:
            return 0, rest
        threshold = math.log(1.0 / alpha)
        log_ratio = self._log_ratio(s, n)

        def ruled_out(g: int) -> bool:
            return log_ratio(g) >= threshold

        # The set not ruled out is an interval around the posterior mode (at the sample rate),
        # found by bisection on each side.
        mode = min(rest, max(0, round(rest * (n - s) / n)))
        if ruled_out(mode):
            return 0, rest  # should not happen; claim nothing rather than something wrong
        return _edge(ruled_out, mode, 0), _edge(ruled_out, mode, rest)


def _edge(ruled_out, inside: int, end: int) -> int:
    """The last integer from ``inside`` towards ``end`` that is not ruled out (bisection)."""
    if not ruled_out(end):
        return end
    good, bad = inside, end  # good is not ruled out, bad is
    while abs(bad - good) > 1:
        mid = (good + bad) // 2
        if ruled_out(mid):
            bad = mid
        else:
            good = mid
    return good


def _memo(cache: dict, key: tuple, compute: Callable[[], _T]) -> _T:
    """``cache[key]``, computed once: bounds depend on the counts alone and are asked for again
    and again. The cache is emptied when it grows past 200,000 entries."""
    hit = cache.get(key)
    if hit is None:
        if len(cache) > 200_000:
            cache.clear()
        hit = cache[key] = compute()
    return hit


def _logsumexp(xs: list[float]) -> float:
    m = max(xs)
    if m == -math.inf:
        return m
    return m + math.log(sum(math.exp(x - m) for x in xs))


def _log_beta_binomial(k: int, n: int, a: float, b: float) -> float:
    """log P(K = k) for K ~ BetaBinomial(n, a, b)."""
    if k < 0 or k > n:
        return -math.inf
    return (
        math.lgamma(n + 1)
        - math.lgamma(k + 1)
        - math.lgamma(n - k + 1)
        + _log_beta(k + a, n - k + b)
        - _log_beta(a, b)
    )


def _check(s: int, n: int, alpha: float) -> None:
    if n < 0 or s < 0 or s > n:
        raise ValueError(f"need 0 <= successes <= trials, got successes={s}, trials={n}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")


# --- Clopper-Pearson (fixed n) -------------------------------------------------------------


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction for the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-14:
            break
    return h


def regularized_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b), the Beta(a, b) distribution function at x."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = a * math.log(x) + b * math.log1p(-x) - _log_beta(a, b)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


@dataclass(frozen=True)
class ClopperPearsonBound:
    """The exact binomial bound for one fixed sample size (the SMART paper's rule).

    Checking it after every few probes and stopping the first time it clears a threshold -- what
    the paper does -- raises the real error rate well above alpha (measured 15-20 % instead of
    5 % for a model sitting at the threshold). Use it to replicate published numbers only.
    """

    name: str = "clopper-pearson"
    anytime_valid: bool = False

    @lru_cache(maxsize=200_000)  # noqa: B019 - instances are immutable and few
    def lower(self, successes: int, trials: int, alpha: float) -> float:
        _check(successes, trials, alpha)
        s, n = successes, trials
        if s == 0:
            return 0.0
        # Largest p with P(X >= s | p) <= alpha, i.e. I_p(s, n - s + 1) = alpha.
        return _bisect(lambda p: alpha - regularized_beta(s, n - s + 1, p), 0.0, 1.0, 64)

    def upper(self, successes: int, trials: int, alpha: float) -> float:
        _check(successes, trials, alpha)
        s, n = successes, trials
        if s == n:
            return 1.0
        return 1.0 - self.lower(n - s, n, alpha)


def make_confidence_sequence(
    method: str, epsilon: float, population: int | None = None
) -> ConfidenceSequence:
    """The bound for a config's ``method``: ``"anytime"`` (default) or ``"clopper-pearson"``.

    With a ``population`` (batch mode) the anytime bound is the finite-population one, which
    bounds the batch's own unprobed items rather than a per-item probability.
    """
    if method == "anytime":
        if population:
            return FinitePopulationSequence.for_target(epsilon, population)
        return BetaMixtureSequence.for_target(epsilon)
    if method == "clopper-pearson":
        return ClopperPearsonBound()
    raise ValueError(f"unknown method {method!r}: use 'anytime' or 'clopper-pearson'")
