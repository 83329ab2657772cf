"""Increments checked and normalised before any store writes them, so bad input writes nothing."""

from __future__ import annotations

import math
from collections.abc import Mapping

__all__ = ["clean_increments"]


def clean_increments(increments: Mapping[str, float]) -> list[tuple[str, float]]:
    """``(key, float)`` pairs sorted by key, with keys that stringify alike summed.

    Sorting gives every writer the same lock order on the counters (PostgreSQL upserts lock rows
    in the order they are written, so two writers in opposite orders could deadlock), and one row
    per key is what a single multi-row upsert requires.
    """
    merged: dict[str, float] = {}
    for key, value in increments.items():
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(f"increment {key!r} must be a finite number, got {value!r}")
        name = str(key)
        merged[name] = merged.get(name, 0.0) + number
    return sorted(merged.items())
