"""The candidate process: a new code version run beside live, in the sandbox.

It mirrors live traffic as a shadow (reading the WAL and live's outcomes, comparing its own
outputs with live's) and, during a canary, decides the requests the splitter assigns to it.
It never writes to the agent's log and never answers clients.
"""
