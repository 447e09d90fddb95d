"""Bus services (splitter, ...), installed as ``o_bus.handlers``."""
