"""The evolution arbiter: runs candidates through shadow, canary and live, gated by metrics."""
