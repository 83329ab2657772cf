"""Whole jobs built on the engine: ``smart run`` over a file, replays of logged outputs, the
paper's simulation, and the overhead, drift and decision benchmarks.
"""

__all__: list[str] = []
