"""The platform's own processes: one `o-bus up` per data dir, its children, their supervision."""
