"""SettledPrefix: the policy also sees the probes settled in decision order, up to a gap."""

from __future__ import annotations

import functools
import random
from types import SimpleNamespace

import pytest

from smart_core.policy import TaskState, probe_failure, probe_outcome
from smart_core.policy import keys as K
from smart_core.policy.settled_prefix import SettledPrefix

A, B = "cand-a", "cand-b"


def _decision(*models: str) -> dict[str, float]:
    inc = {K.REQUESTS: 1.0, K.PROBES: 1.0}
    for m in models:
        inc[K.probes_open(m)] = 1.0
    return inc


class _Run:
    """A store (plain counters) and a prefix kept in step, as the batch run keeps them."""

    def __init__(self) -> None:
        self.store: dict[str, float] = {}
        self.prefix = SettledPrefix()

    def write(self, inc) -> None:
        for k, v in inc.items():
            self.store[k] = self.store.get(k, 0.0) + v

    def decide(self, *models: str) -> int | None:
        inc = _decision(*models)
        self.write(inc)
        return self.prefix.decided(inc)

    def settle(self, seq: int, outcomes: dict[str, bool | None]) -> None:
        inc: dict[str, float] = {}
        for m, agreed in outcomes.items():
            more = probe_failure(None, m) if agreed is None else probe_outcome(None, m, agreed)
            for k, v in more.items():
                inc[k] = inc.get(k, 0.0) + v
        self.write(inc)
        self.prefix.settled(seq, inc)

    def decide_look(self, *, tagged: bool) -> int | None:
        inc = _look_decision(A, tagged)
        self.write(inc)
        return self.prefix.decided(inc)

    def settle_look(self, seq: int, agreed: bool, *, tagged: bool = True) -> None:
        inc = _look_outcome(A, tagged, agreed)
        self.write(inc)
        self.prefix.settled(seq, inc)

    def seen(self, model: str) -> tuple[float, float]:
        """(probes, agreements) of the settled prefix handed to the policy."""
        state = self.prefix.state(self.store)
        assert state.prefix is not None
        # The store's own counters pass through untouched: the prefix is a field of its own.
        assert state == TaskState.from_counters(
            self.store, prefix=state.prefix, look_prefix=state.look_prefix
        )
        agreements, probes = state.prefix[model]
        return probes, agreements


def test_an_outcome_settled_after_a_gap_is_held_back_until_the_gap_closes():
    run = _Run()
    first, second, third = (run.decide(A, B) for _ in range(3))
    run.settle(second, {A: True, B: False})
    run.settle(third, {A: True, B: True})
    # The first probe is still open: nothing after it counts, and nothing is counted as open.
    assert run.seen(A) == (0.0, 0.0)
    assert run.store[K.probes_of(A)] == 2.0  # the store has everything
    run.settle(first, {A: False, B: True})
    assert run.seen(A) == (3.0, 2.0)
    assert run.seen(B) == (3.0, 2.0)
    assert run.prefix.open == 0


def test_a_failed_call_settles_the_probe_without_counting_it():
    run = _Run()
    first, second = run.decide(A), run.decide(A)
    run.settle(second, {A: True})
    run.settle(first, {A: None})
    assert run.seen(A) == (1.0, 1.0)


def test_an_abandoned_probe_stays_open_and_counts_as_differing_once_in_the_prefix():
    run = _Run()
    first, second = run.decide(A), run.decide(A)
    run.settle(second, {A: True})
    assert run.seen(A) == (0.0, 0.0)
    run.prefix.abandoned(first)
    assert run.seen(A) == (2.0, 1.0)  # the open one is in the prefix, as differing


def test_decisions_that_are_not_probes_are_not_tracked():
    prefix = SettledPrefix()
    assert prefix.decided({K.REQUESTS: 1.0, K.routed(A): 1.0}) is None
    assert prefix.open == 0


def test_what_the_policy_sees_is_always_the_longest_settled_prefix():
    """Random settlement orders: the counts handed over equal those of the longest prefix of
    decided probes that are all settled, at every step."""
    rng = random.Random(7)
    for _ in range(50):
        run = _Run()
        truth: list[bool] = []
        seqs = []
        for _ in range(40):
            seqs.append(run.decide(A))
            truth.append(rng.random() < 0.8)
        pending = list(range(40))
        rng.shuffle(pending)
        done: set[int] = set()
        for i in pending:
            run.settle(seqs[i], {A: truth[i]})
            done.add(i)
            k = next((j for j in range(40) if j not in done), 40)
            assert run.seen(A) == (float(k), float(sum(truth[:k])))


def test_another_deciders_probe_ends_the_prefix_for_good():
    """The prefix is a prefix of the store's decision order only while this process decides
    every probe: probes decided before it started come first (and are counted), but once
    another decider's probe appears the two interleave and no prefix is offered again."""
    run = _Run()
    run.write(_decision(A))  # an earlier process's probe, still open: before ours in the order
    first = run.decide(A)
    run.decide(A)
    assert first is not None
    run.settle(first, {A: True})
    assert run.seen(A) == (2.0, 1.0)  # the earlier open probe (differing) and ours
    run.write(_decision(A))  # another process decides a probe of the same task
    assert run.prefix.state(run.store).prefix is None
    assert run.prefix.shared and run.prefix.decided(_decision(A)) is None
    run.write(_decision(A))
    assert run.prefix.state(run.store).prefix is None  # for good


def test_a_probe_open_past_its_time_no_longer_holds_the_prefix_back():
    now = [0.0]
    run = _Run()
    run.prefix = SettledPrefix(stale_after=60.0, clock=lambda: now[0])
    lost = run.decide(A)
    now[0] = 10.0
    later = run.decide(A)
    assert lost is not None and later is not None
    run.settle(later, {A: True})
    assert run.seen(A) == (0.0, 0.0)  # held back behind the open one
    now[0] = 60.0
    # The lost probe is taken in as it stands in the store: open, so differing.
    assert run.seen(A) == (2.0, 1.0)
    assert not run.prefix.holds(lost) and not run.prefix.holds(later)
    run.settle(
        lost, {A: True}
    )  # answers arriving after all: the store has them, so does the prefix
    assert run.seen(A) == (2.0, 2.0)


def test_a_state_seen_in_a_drift_epoch_drops_that_candidates_prefix():
    run = _Run()
    seq = run.decide(A, B)
    assert seq is not None
    run.settle(seq, {A: True, B: True})
    state = run.prefix.state(run.store)
    moved = state.with_evidence({A: state.in_epoch(A, 1)}, {A: 1})
    assert moved.prefix is not None and A not in moved.prefix and B in moved.prefix


def _ever_above(
    slow_differing: bool, read: str, *, p: float, alpha: float, rng: random.Random
) -> bool:
    """One stream of probes at agreement exactly ``p``, 32 in flight; whether the lower bound
    read by rule ``read`` ever exceeds ``p``. With ``slow_differing`` a differing answer takes
    40 steps to settle and an agreeing one 1-8: the order in which outcomes arrive is biased."""
    from smart_core.stats.confidence import BetaMixtureSequence

    bound = _cached_lower(BetaMixtureSequence(), alpha)
    run = _Run()
    pending: dict[int, list[tuple[int, bool]]] = {}
    settled = agreed_settled = 0
    for t in range(400):
        if t < 300:
            agree = rng.random() < p
            seq = run.decide(A)
            assert seq is not None
            delay = rng.randint(1, 8) if agree or not slow_differing else 40
            pending.setdefault(t + delay, []).append((seq, agree))
        for seq, agree in pending.pop(t, []):
            run.settle(seq, {A: agree})
            settled, agreed_settled = settled + 1, agreed_settled + agree
        state = run.prefix.state(run.store)
        if read == "settled so far":  # the outcomes in arrival order: biased, must fail
            low = bound(agreed_settled, settled)
        else:  # the policy's: open probes as differing, and the settled prefix; the better
            ev = state.evidence_of(A)
            low = max(bound(int(ev.agreed), ev.sampled), bound(*state.prefix[A]))
        if low > p:
            return True
    return False


def _cached_lower(sequence, alpha):
    @functools.cache
    def lower(successes: int, trials: int) -> float:
        return sequence.lower(min(successes, trials), trials, alpha) if trials else 0.0

    return lower


@pytest.mark.slow
def test_reading_the_prefix_beside_the_open_count_keeps_the_level_at_the_threshold():
    """2,000 streams at agreement exactly 0.9 with 32 probes in flight, differing answers much
    slower: the policy's reading (better of open-as-differing and the settled prefix, one
    confidence sequence read at two sizes) exceeds the truth in at most alpha of the streams
    (within 3 standard errors), where reading the outcomes in the order they arrive does so
    far more often: the test can tell a valid reading from a biased one."""
    p, alpha, streams = 0.9, 0.05, 2_000
    rng = random.Random(11)
    misses = sum(_ever_above(True, "policy", p=p, alpha=alpha, rng=rng) for _ in range(streams))
    rate = misses / streams
    biased = sum(_ever_above(True, "settled so far", p=p, alpha=alpha, rng=rng) for _ in range(400))
    print(f"\nabove the truth: policy's reading {rate:.3f}, arrival order {biased / 400:.3f}")
    assert rate <= alpha + 3 * (alpha * (1 - alpha) / streams) ** 0.5
    assert biased / 400 > 2 * alpha


# -- the looks' sample ---------------------------------------------------------------------------


def _look_decision(model: str, tagged: bool) -> dict[str, float]:
    inc = {**_decision(model), K.cert_open(model): 1.0}
    return inc | ({K.look_open(model): 1.0} if tagged else {})


def _look_outcome(model: str, tagged: bool, agreed: bool | None) -> dict[str, float]:
    """A certification probe's outcome as the engine writes it: compared (agreed or not), or
    ``None``, a failed call (settled, not compared)."""
    decision = SimpleNamespace(probe_tags={}, stage="certifying", look=(model,) if tagged else ())
    if agreed is None:
        return probe_failure(decision, model)
    return probe_outcome(decision, model, agreed)


@pytest.mark.parametrize("seed", range(20))
def test_the_look_prefix_is_the_first_look_probes_decided_up_to_the_first_open_probe(seed):
    """A look may be read while later look probes are out only if what it reads is the first
    look probes *decided*, a uniform sample whatever settles when. Probes decided in order,
    some tagged for the look, settled in a random order: at every step the look prefix handed
    to the policy counts exactly the tagged probes before the first probe still open, and the
    whole look counters stay untouched beside it."""
    rng = random.Random(seed)
    run = _Run()
    decided: list[tuple[int, bool, bool | None]] = []  # (seq, tagged, outcome)
    settled: set[int] = set()
    pending: list[int] = []
    for _ in range(300):
        if pending and (len(pending) > 40 or rng.random() < 0.5):
            i = pending.pop(rng.randrange(len(pending)))
            seq, tagged, outcome = decided[i]
            inc = _look_outcome(A, tagged, outcome)
            run.write(inc)
            run.prefix.settled(seq, inc)
            settled.add(i)
        else:
            tagged = rng.random() < 0.7
            inc = _look_decision(A, tagged)
            run.write(inc)
            seq = run.prefix.decided(inc)
            outcome = None if rng.random() < 0.05 else rng.random() < 0.9
            decided.append((seq, tagged, outcome))
            pending.append(len(decided) - 1)
        state = run.prefix.state(run.store)
        first_open = next((i for i in range(len(decided)) if i not in settled), len(decided))
        before = [d for d in decided[:first_open] if d[1] and d[2] is not None]
        look = state.look_prefix.get(A)
        if not any(d[1] for d in decided):
            assert look is None
            continue
        assert look is not None
        assert (look.compared, look.agreed, look.open) == (
            len(before),
            sum(1 for d in before if d[2]),
            0,
        )
        assert state.looked_by(A).compared == run.store.get(K.look_probes(A), 0.0)
    assert len(settled) > 100


def test_a_look_probe_abandoned_in_the_prefix_reads_as_differing():
    """A look probe whose answers are lost never settles; once the prefix reaches it, the look
    reads it as a differing answer (open, in the sample), never as one left out."""
    run = _Run()
    seqs = [run.decide_look(tagged=True) for _ in range(3)]
    run.settle_look(seqs[1], True)
    run.settle_look(seqs[2], True)
    run.prefix.abandoned(seqs[0])
    state = run.prefix.state(run.store)
    sample = state.look_sample(A)
    assert (sample.compared, sample.agreed, sample.open) == (2, 2, 1)
    assert sample.sampled == 3
