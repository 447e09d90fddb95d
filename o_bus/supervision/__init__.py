"""Supervision records: the policy an agent is kept alive by and the supervisor's published view."""
