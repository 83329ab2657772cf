"""What a task is: its models and prices, its comparator, its target (``SmartConfig``), and
the answers it gets. No statistics, no I/O.
"""

__all__: list[str] = []
