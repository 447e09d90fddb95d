"""Bindings of O to other frameworks, each an optional extra (``o-bus[faststream]``)."""
