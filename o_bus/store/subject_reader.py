"""Read every stored message of one subject of a stream, in stream order.

For the small per-agent subjects (feedback, regression sets, trigger records): direct gets,
one message after another, with no consumer to create or clean up.
"""

from __future__ import annotations

import nats.errors
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError as JsNotFoundError

from o_bus.errors import StorageError

__all__ = ["StoredMessage", "read_messages", "read_subject"]

StoredMessage = tuple[int, dict[str, str], bytes]  # stream sequence, headers, body


async def read_subject(
    js: JetStreamContext, stream: str, subject: str, after_seq: int = 0
) -> list[StoredMessage]:
    """Every message of ``subject`` in ``stream`` after ``after_seq``, oldest first."""
    return [
        (seq, headers, body)
        for seq, _, headers, body in await read_messages(js, stream, subject, after_seq)
    ]


async def read_messages(
    js: JetStreamContext, stream: str, subject: str, after_seq: int = 0
) -> list[tuple[int, str, dict[str, str], bytes]]:
    """Like :func:`read_subject`, with each message's own subject (``subject`` may be a
    wildcard): (stream sequence, subject, headers, body)."""
    found: list[tuple[int, str, dict[str, str], bytes]] = []
    seq = after_seq + 1
    while True:
        try:
            msg = await js.get_msg(stream, seq=seq, subject=subject, next=True, direct=True)
        except JsNotFoundError:
            return found
        except nats.errors.NoRespondersError as err:
            raise StorageError(f"stream {stream} does not exist: provision the bus first") from err
        except nats.errors.Error as err:
            raise StorageError(f"cannot read {subject} from {stream}") from err
        if msg.seq is None:
            return found
        found.append((msg.seq, msg.subject or "", dict(msg.headers or {}), msg.data or b""))
        seq = msg.seq + 1
