"""Each role's permissions, derived from the names in :mod:`o_bus.store.layout`.

Agents, candidates and clients get allow-lists: exactly the subjects and JetStream API calls
they need. The platform's services get everything except what belongs to another role: the WAL
(splitter only), agents' event streams (their agent only), routes (arbiter), code (operator,
and the self-evolution hand-off of ``triggers``), agents' tool KV keys, and stream purge or
delete (operator only). Every identity subscribes to replies under its own inbox prefix only.
"""

from __future__ import annotations

from typing import Final

from o_bus.security.identities import AGENT, CANDIDATE, CLIENT, OPERATOR, Identity
from o_bus.server.config import Permissions
from o_bus.store import layout

__all__ = ["permissions_for"]

JS: Final = "$JS.API."
ALL: Final = ">"


def kv(bucket: str, key: str = ALL) -> str:
    """The subject a KV put/delete of ``key`` in ``bucket`` publishes to."""
    return f"$KV.{bucket}.{key}"


def kv_stream(bucket: str) -> str:
    return f"KV_{bucket}"


def kv_read(bucket: str, key: str = ALL) -> str:
    """Direct get of ``key`` (the buckets allow direct gets; the key is in the subject)."""
    return f"{JS}DIRECT.GET.{kv_stream(bucket)}.{kv(bucket, key)}"


def object_stream(bucket: str) -> str:
    return f"OBJ_{bucket}"


def consumers(stream: str, filter_subject: str | None = None) -> list[str]:
    """Create, use and remove consumers on ``stream`` (with ``filter_subject``: created only
    with that filter, which must then be named in the API subject)."""
    creates = (
        [f"{JS}CONSUMER.CREATE.{stream}.*.{filter_subject}"]
        if filter_subject
        else [f"{JS}CONSUMER.CREATE.{stream}", f"{JS}CONSUMER.CREATE.{stream}.>"]
    )
    return [
        *creates,
        f"{JS}CONSUMER.INFO.{stream}.*",
        f"{JS}CONSUMER.DELETE.{stream}.*",
        f"{JS}CONSUMER.MSG.NEXT.{stream}.*",
    ]


# What no one but the operator may do: remove or rewrite stored history.
DESTRUCTIVE: Final = (
    f"{JS}STREAM.PURGE.>",
    f"{JS}STREAM.DELETE.>",
    f"{JS}STREAM.MSG.DELETE.>",
    f"{JS}STREAM.UPDATE.>",
    f"{JS}STREAM.RESTORE.>",
    f"{JS}ACCOUNT.PURGE.>",
)
AGENT_LOG: Final = (
    layout.EVENT_PREFIX + ALL,
    layout.OUTCOME_PREFIX + ALL,
    layout.FENCE_PREFIX + ALL,
)
CODE_WRITE: Final = (f"$O.{layout.CODE_BUCKET}.>", kv(layout.CODE_VERSIONS_BUCKET))
TOOL_KV: Final = (
    kv(layout.TOOL_KV_BUCKET),
    f"{JS}DIRECT.GET.{kv_stream(layout.TOOL_KV_BUCKET)}",
    f"{JS}DIRECT.GET.{kv_stream(layout.TOOL_KV_BUCKET)}.>",
    f"{JS}STREAM.MSG.GET.{kv_stream(layout.TOOL_KV_BUCKET)}",
    f"{JS}CONSUMER.CREATE.{kv_stream(layout.TOOL_KV_BUCKET)}.>",
    f"{JS}CONSUMER.CREATE.{kv_stream(layout.TOOL_KV_BUCKET)}",
    f"{JS}CONSUMER.DURABLE.CREATE.{kv_stream(layout.TOOL_KV_BUCKET)}.>",
)
# Plumbing every JetStream user needs: account and stream info, acks and flow control.
JETSTREAM_BASICS: Final = (
    f"{JS}INFO",
    f"{JS}STREAM.INFO.*",
    f"{JS}STREAM.NAMES",
    "$JS.ACK.>",
    "$JS.FC.>",
)
# Shared configuration every agent process and candidate reads (and watches).
SHARED_READS: Final = (
    layout.AGENTS_BUCKET,
    layout.CONFIG_BUCKET,
    layout.ROUTES_BUCKET,
    layout.CODE_VERSIONS_BUCKET,
    layout.PLACEMENT_BUCKET,
)
SHARED_TOOL_KEYS: Final = "_shared"  # the kv tool's scope="shared" namespace


def _shared_reads() -> list[str]:
    subjects = []
    for bucket in SHARED_READS:
        stream = kv_stream(bucket)
        subjects += [kv_read(bucket), f"{JS}STREAM.MSG.GET.{stream}", *consumers(stream)]
    code = object_stream(layout.CODE_BUCKET)
    subjects += [f"{JS}DIRECT.GET.{code}.>", f"{JS}STREAM.MSG.GET.{code}", *consumers(code)]
    return subjects


def _own_keys(bucket: str, key: str) -> list[str]:
    """Read and write one key (and the keys under it) of ``bucket``."""
    return [
        kv(bucket, key),
        kv(bucket, key + ".>"),
        kv_read(bucket, key),
        kv_read(bucket, key + ".>"),
    ]


def _agent(identity: Identity, name: str) -> Permissions:
    wal = layout.wal_subject(name)
    own_stream = layout.events_stream(name)
    publish = [
        *JETSTREAM_BASICS,
        *_shared_reads(),
        # Its own log: events, outcomes, fences; consumers on its stream and its WAL subject.
        layout.event_subject(name),
        layout.outcome_subject(name),
        layout.fence_subject(name),
        *consumers(own_stream),
        f"{JS}DIRECT.GET.{own_stream}",
        f"{JS}DIRECT.GET.{own_stream}.>",
        f"{JS}STREAM.MSG.GET.{own_stream}",
        # Its WAL subject is read through an ordered consumer, whose filter is in the body
        # (nats-py names no ordered consumer), and records by sequence; its watchdog asks the
        # leader for its last record. The subject cannot scope these to its own requests
        # (see docs/security.md).
        *consumers(layout.WAL_STREAM),
        f"{JS}DIRECT.GET.{layout.WAL_STREAM}",
        f"{JS}DIRECT.GET.{layout.WAL_STREAM}.{wal}",
        f"{JS}STREAM.MSG.GET.{layout.WAL_STREAM}",
        # Its keys: snapshot, lease, supervision state, registry record, tool KV.
        *_own_keys(layout.SNAPSHOTS_BUCKET, name),
        # A snapshot's older revisions are read by sequence, which the body names: the
        # subject cannot scope these two to its own key (see docs/security.md).
        f"{JS}STREAM.MSG.GET.{kv_stream(layout.SNAPSHOTS_BUCKET)}",
        f"{JS}DIRECT.GET.{kv_stream(layout.SNAPSHOTS_BUCKET)}",
        *_own_keys(layout.LEASES_BUCKET, name),
        *_own_keys(layout.TOOL_KV_BUCKET, name),
        *_own_keys(layout.TOOL_KV_BUCKET, SHARED_TOOL_KEYS),
        # Its tool calls' results, which come back in as requests to itself through the
        # splitter and the WAL like any other input.
        layout.request_subject(name),
        # Replies to clients (whose inboxes the WAL records name), heartbeats, system
        # records, dead letters, and requests to its own canary candidates.
        "_INBOX.>",
        layout.heartbeat_subject(name),
        layout.progress_subject(name),
        layout.health_subject(name),
        layout.system_event_subject(name),
        layout.lifecycle_subject(name),
        layout.dlq_subject(name, None).rsplit(".", 1)[0] + ".*",
        f"{layout.CANDIDATE_PREFIX}{name}.>",
        f"{layout.CONTROL_PREFIX}{name}.>",
    ]
    subscribe = [
        identity.inbox_prefix + ".>",
        layout.query_subject(name),
        f"{layout.CONTROL_PREFIX}{name}.>",
        layout.heartbeat_subject(name),
        f"{layout.CANDIDATE_PREFIX}{name}.>",
    ]
    return Permissions(publish_allow=tuple(publish), subscribe_allow=tuple(subscribe))


def _candidate(identity: Identity, name: str) -> Permissions:
    """A candidate of agent ``name``: reads what it needs, writes its figures and diffs."""
    own_stream = layout.events_stream(name)
    publish = [
        *JETSTREAM_BASICS,
        *_shared_reads(),
        *consumers(own_stream),
        f"{JS}DIRECT.GET.{own_stream}",
        f"{JS}DIRECT.GET.{own_stream}.>",
        f"{JS}STREAM.MSG.GET.{own_stream}",
        # It forks live's state (its snapshot, older revisions by sequence) and reads the
        # requests live decided from the WAL, as the agent itself does (same limits).
        kv_read(layout.SNAPSHOTS_BUCKET, name),
        kv_read(layout.SNAPSHOTS_BUCKET, name + ".>"),
        f"{JS}STREAM.MSG.GET.{kv_stream(layout.SNAPSHOTS_BUCKET)}",
        f"{JS}DIRECT.GET.{kv_stream(layout.SNAPSHOTS_BUCKET)}",
        *consumers(layout.WAL_STREAM),
        f"{JS}DIRECT.GET.{layout.WAL_STREAM}",
        f"{JS}DIRECT.GET.{layout.WAL_STREAM}.{layout.wal_subject(name)}",
        layout.diff_subject(name),
        f"{layout.CANDIDATE_PREFIX}{name}.*.stats",
    ]
    subscribe = [identity.inbox_prefix + ".>", f"{layout.CANDIDATE_PREFIX}{name}.*.decide"]
    return Permissions(
        publish_allow=tuple(publish),
        subscribe_allow=tuple(subscribe),
        allow_responses=True,  # answers the decide requests sent to it, nothing else
    )


def _client(identity: Identity) -> Permissions:
    """Requests, queries and feedback in; its own replies out."""
    return Permissions(
        publish_allow=(
            layout.REQUEST_PREFIX + "*",
            layout.QUERY_PREFIX + "*",
            layout.FEEDBACK_PREFIX + "*",
        ),
        subscribe_allow=(identity.inbox_prefix + ".>",),
    )


def _service(identity: Identity) -> Permissions:
    role = identity.role
    deny = [*DESTRUCTIVE, *AGENT_LOG, *TOOL_KV]
    if role != "splitter":
        deny.append(layout.WAL_PREFIX + ALL)
    if role != "arbiter":
        deny.append(kv(layout.ROUTES_BUCKET))
    if role != "triggers":  # the self-evolution hand-off deploys a search's best child
        deny += CODE_WRITE
    subscribe_deny = [] if role == "splitter" else [layout.REQUEST_PREFIX + ALL]
    return Permissions(
        publish_allow=(ALL,),
        publish_deny=tuple(deny),
        subscribe_allow=("o.>", identity.inbox_prefix + ".>"),
        subscribe_deny=tuple(subscribe_deny),
    )


def permissions_for(identity: Identity) -> Permissions:
    """What ``identity`` may publish and subscribe to."""
    if identity.role == OPERATOR:
        return Permissions(publish_allow=(ALL,), subscribe_allow=(ALL,))
    if identity.role == CLIENT:
        return _client(identity)
    if identity.role == AGENT and identity.agent:
        return _agent(identity, identity.agent)
    if identity.role == CANDIDATE and identity.agent:
        return _candidate(identity, identity.agent)
    return _service(identity)
