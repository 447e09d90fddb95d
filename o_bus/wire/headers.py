"""Names of every header the bus reads or writes: CloudEvents attributes (``ce-``), the bus's
own (``O-``) and the NATS ones it relies on. Code spells a header only through these names.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "CE_CODEVERSION",
    "CE_EVENTVERSION",
    "CE_FORKEDFROM",
    "CE_ID",
    "CE_REQUESTID",
    "CE_SEQUENCE",
    "CE_SOURCE",
    "CE_SPECVERSION",
    "CE_SUBJECT",
    "CE_TIME",
    "CE_TRACEPARENT",
    "CE_TRACESTATE",
    "CE_TYPE",
    "CE_WALSEQ",
    "CONTENT_TYPE",
    "NATS_BATCH_COMMIT",
    "NATS_BATCH_ID",
    "NATS_BATCH_SEQUENCE",
    "NATS_EXPECTED_LAST_MSG_ID",
    "NATS_EXPECTED_LAST_SEQUENCE",
    "NATS_LAST_SEQUENCE",
    "NATS_MSG_ID",
    "NATS_NUM_PENDING",
    "NATS_PREFIX",
    "NATS_SEQUENCE",
    "NATS_STATUS",
    "NATS_STREAM",
    "NATS_SUBJECT",
    "NATS_TIME_STAMP",
    "O_CASE_SOURCE",
    "O_ERROR_CODE",
    "O_ERROR_MESSAGE",
    "O_HEADERS_CUT",
    "O_HOLDER",
    "O_ORIGINAL_SIZE",
    "O_OUTCOME",
    "O_REPLY",
    "O_REPLY_ENCODING",
    "O_REQUEST_ID",
    "O_ROUTE",
    "O_STATUS",
    "O_VERSION",
    "O_WAL_SEQ",
    "W3C_TRACEPARENT",
    "W3C_TRACESTATE",
]

# CloudEvents attributes in binary mode (requests and events).
CE_ID: Final = "ce-id"
CE_TYPE: Final = "ce-type"
CE_SOURCE: Final = "ce-source"
CE_SPECVERSION: Final = "ce-specversion"
CE_TIME: Final = "ce-time"
CE_SUBJECT: Final = "ce-subject"
CONTENT_TYPE: Final = "Content-Type"

# CloudEvents extension attributes of the events in an agent's log.
CE_SEQUENCE: Final = "ce-sequence"
CE_EVENTVERSION: Final = "ce-eventversion"
CE_REQUESTID: Final = "ce-requestid"
CE_WALSEQ: Final = "ce-walseq"
CE_CODEVERSION: Final = "ce-codeversion"
CE_FORKEDFROM: Final = "ce-forkedfrom"

# CloudEvents distributed-tracing extension (W3C trace context), on requests, WAL records and
# events. The plain W3C names are accepted on requests too (what OpenTelemetry propagators set).
CE_TRACEPARENT: Final = "ce-traceparent"
CE_TRACESTATE: Final = "ce-tracestate"
W3C_TRACEPARENT: Final = "traceparent"
W3C_TRACESTATE: Final = "tracestate"

# The bus's own headers.
O_REPLY: Final = "O-Reply"  # WAL record: the client's reply inbox
O_REPLY_ENCODING: Final = "O-Reply-Encoding"  # WAL record, duplicate query: reply body encoding
O_ROUTE: Final = "O-Route"  # WAL record: the canary code version that must decide it
O_WAL_SEQ: Final = "O-Wal-Seq"  # duplicate query, dead letter: the request's WAL sequence
O_STATUS: Final = "O-Status"  # reply: "ok" or "error"
O_OUTCOME: Final = "O-Outcome"  # outcome record: "noop", "rejected" or "duplicate"
O_ERROR_CODE: Final = "O-Error-Code"
O_ERROR_MESSAGE: Final = "O-Error-Message"
O_ORIGINAL_SIZE: Final = "O-Original-Size"  # dead letter: size of the refused body
O_REQUEST_ID: Final = "O-Request-Id"  # dead letter: the refused request's id
O_HEADERS_CUT: Final = "O-Headers-Cut"  # dead letter: request headers shortened or left out
O_HOLDER: Final = "O-Holder"  # fence record: who took the log over
O_VERSION: Final = "O-Version"  # diff record: the candidate version compared
O_CASE_SOURCE: Final = "O-Case-Source"  # regression case: red, feedback or an operator

# NATS and JetStream headers.
NATS_PREFIX: Final = "Nats-"  # every header JetStream sets or reads starts so
NATS_MSG_ID: Final = "Nats-Msg-Id"
NATS_TIME_STAMP: Final = "Nats-Time-Stamp"
NATS_SEQUENCE: Final = "Nats-Sequence"
NATS_STREAM: Final = "Nats-Stream"
NATS_SUBJECT: Final = "Nats-Subject"
NATS_LAST_SEQUENCE: Final = "Nats-Last-Sequence"
NATS_NUM_PENDING: Final = "Nats-Num-Pending"
NATS_EXPECTED_LAST_SEQUENCE: Final = "Nats-Expected-Last-Sequence"
NATS_EXPECTED_LAST_MSG_ID: Final = "Nats-Expected-Last-Msg-Id"
NATS_BATCH_ID: Final = "Nats-Batch-Id"
NATS_BATCH_SEQUENCE: Final = "Nats-Batch-Sequence"
NATS_BATCH_COMMIT: Final = "Nats-Batch-Commit"
NATS_STATUS: Final = "Status"
