"""Reference agent definitions, installed as ``o_bus.agents`` and found by entry point."""
