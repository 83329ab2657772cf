"""Statistics with no knowledge of tasks or stores: confidence sequences and bounds on agreement,
the cheapest admissible mix (LP), and the change detector behind drift restarts.
"""

__all__: list[str] = []
