"""Deciding requests: the one path from a WAL record to events, a reply and an outcome,
shared by the live agent, the shadow, the canary and the offline replayer."""

from o_bus.decision.decider import Decided, Decider, Verdict, decide_command

__all__ = ["Decided", "Decider", "Verdict", "decide_command"]
