"""Who may do what on the bus: identities (nkeys), their permissions, TLS and the store key.

Everything is enforced by nats-server itself: this package only generates the credentials and
renders the ``authorization``, ``tls`` and ``jetstream { cipher }`` blocks of its config.
"""
