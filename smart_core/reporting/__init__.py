"""Reading a store back: ``smart report``'s task reports and the charts."""

__all__: list[str] = []
