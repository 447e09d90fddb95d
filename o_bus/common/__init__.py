"""General helpers every layer may use: NATS connection, event loop, signals, task
cancellation, periodic publishing, URL resolution. Depends on nothing in o_bus above errors and
config."""
