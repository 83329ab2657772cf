"""What to do with the next request, given a task's counters: probe, route, or commit. Pure
functions of the task state (read from a store by the engine); no I/O.
"""

__all__: list[str] = []
