"""See o_bus.evolution.search."""
