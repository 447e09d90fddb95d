"""The web console: agents, timelines, time travel, dead letters, evolution and live figures
of a running platform, with operator actions for those allowed (see docs/console.md)."""
