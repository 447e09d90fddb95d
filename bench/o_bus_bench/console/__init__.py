"""``o-bus bench console``: request throughput with the web console open on a live timeline,
beside the console closed and the raw floor, all in one server run."""

from .cli import main

__all__ = ["main"]
