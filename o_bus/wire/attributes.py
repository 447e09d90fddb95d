"""What a request's text attributes (id, source, subject, time) may contain, and how large
a request's headers may be.

An attribute is refused when it starts or ends with whitespace or holds a control character
anywhere: NATS clients trim header values and turn CR/LF into spaces, so ``"abc"``, ``"abc "``
and ``"abc\\n"`` would otherwise reach the WAL as one id and be answered as duplicates of each
other. The same pattern, an ECMA-262 regular expression, is published in the JSON Schemas.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

from o_bus.errors import ErrorCode, InvalidRequestError

__all__ = [
    "CLEAN_TEXT",
    "MAX_SOURCE_LENGTH",
    "MAX_SUBJECT_LENGTH",
    "MAX_TIME_LENGTH",
    "check_text",
    "header_bytes",
    "is_clean",
]

# ECMA-262 WhiteSpace and LineTerminator; C0 and C1 control characters and DEL.
_SPACE: Final = r"\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
_CONTROL: Final = r"\x00-\x1f\x7f-\x9f"
# No look-around, so the same text compiles as ECMA-262, Python and Rust (pydantic) regex.
CLEAN_TEXT: Final = rf"^(?:[^{_SPACE}{_CONTROL}](?:[^{_CONTROL}]*[^{_SPACE}{_CONTROL}])?)?$"
_CLEAN: Final = re.compile(CLEAN_TEXT)

MAX_SOURCE_LENGTH: Final = 512
MAX_SUBJECT_LENGTH: Final = 512
MAX_TIME_LENGTH: Final = 64


def is_clean(value: str) -> bool:
    """No leading or trailing whitespace and no control character."""
    # fullmatch: in Python "$" also matches before a final newline.
    return _CLEAN.fullmatch(value) is not None


def check_text(name: str, value: object, max_length: int, *, required: bool = True) -> None:
    """Raise ``malformed_request`` unless ``value`` is a clean string of at most ``max_length``
    characters (non-empty when ``required``); ``None`` passes when not required."""
    if value is None and not required:
        return
    if not isinstance(value, str) or (required and not value) or len(value) > max_length:
        what = "a non-empty string" if required else "a string"
        raise InvalidRequestError(
            ErrorCode.MALFORMED_REQUEST,
            f"CloudEvents {name!r} must be {what} of at most {max_length} characters",
        )
    if not is_clean(value):
        raise InvalidRequestError(
            ErrorCode.MALFORMED_REQUEST,
            f"CloudEvents {name!r} must not start or end with whitespace nor contain control "
            f"characters, got {value[:64]!r}",
        )


def header_bytes(headers: Mapping[str, str] | None) -> int:
    """Size of a header block as sent (``Name: value`` and CRLF per header)."""
    if not headers:
        return 0
    total = 0
    for key, value in headers.items():
        total += len(key) + 4 + (len(value) if value.isascii() else len(value.encode()))
    return total
