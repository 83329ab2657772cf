"""Fault schedules: which calls fail, deterministically."""

from __future__ import annotations

import pytest

from smart_core import ConfigError
from smart_core.testing import Behaviour, Fault


def hit_calls(fault: Fault, n: int = 12) -> list[int]:
    return [c for c in range(1, n + 1) if fault.hits(c)]


def test_every_hits_each_nth_call():
    assert hit_calls(Fault("rate_limit", every=3)) == [3, 6, 9, 12]


def test_calls_hits_exactly_the_listed_calls():
    assert hit_calls(Fault("server_error", calls=[2, 1, 2])) == [1, 2]


def test_no_schedule_hits_every_call():
    assert hit_calls(Fault("timeout"), 4) == [1, 2, 3, 4]


def test_rate_depends_only_on_seed_and_call_number():
    a = hit_calls(Fault("truncate", rate=0.3, seed=1), 400)
    b = [c for c in reversed(range(1, 401)) if Fault("truncate", rate=0.3, seed=1).hits(c)]
    assert a == sorted(b)
    assert 80 <= len(a) <= 160  # about 30 % of 400
    assert a != hit_calls(Fault("truncate", rate=0.3, seed=2), 400)
    assert hit_calls(Fault("truncate", rate=0.0)) == []
    assert hit_calls(Fault("truncate", rate=1.0), 5) == [1, 2, 3, 4, 5]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "explode"}, "choose one of"),
        ({"kind": "timeout", "every": 2, "rate": 0.5}, "at most one of"),
        ({"kind": "timeout", "every": 0}, "every must be >= 1"),
        ({"kind": "timeout", "calls": [0]}, "calls must be"),
        ({"kind": "timeout", "calls": []}, "calls must be"),
        ({"kind": "timeout", "rate": 1.5}, r"rate must be in \[0, 1\]"),
        ({"kind": "rate_limit", "retry_after": -1}, "must be >= 0"),
    ],
)
def test_invalid_faults_fail_at_construction(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        Fault(**kwargs)


def test_first_matching_fault_decides_a_call():
    b = Behaviour(faults=[Fault("rate_limit", calls=[2]), Fault("server_error", every=2)])
    assert [getattr(b.fault_for(c), "kind", None) for c in range(1, 5)] == [
        None,
        "rate_limit",
        None,
        "server_error",
    ]
