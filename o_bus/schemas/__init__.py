"""Generate ``schemas/`` from the Python models: JSON Schemas, an AsyncAPI 3.0 document, a guide.

``python -m o_bus.schemas`` (re)writes the directory; ``python -m o_bus.schemas --check`` lists
missing, changed and obsolete files and exits 1 when there are any. Every file under
``schemas/`` is generated: change the models (or the texts in this package), never the files.
Output is deterministic: JSON with sorted keys and two-space indents, one trailing newline.

Modules: :mod:`.paths` names the files; :mod:`.headers` holds the header models and checks them
against the runtime; :mod:`.envelope` and :mod:`.documents` build the schema files;
:mod:`.asyncapi` (with :mod:`.messages`) builds the AsyncAPI document and :mod:`.readme` the
guide, whose health-summary tables come from :mod:`.health`; :mod:`.generate` renders every
file in memory and :mod:`.files` compares them with, or writes them to, the directory.
"""

from __future__ import annotations

from .cli import main
from .error_codes import ERROR_MEANINGS
from .files import DEFAULT_OUT, check, write
from .generate import render
from .headers import (
    BinaryRequestHeaders,
    DeadLetterHeaders,
    EventHeaders,
    ReplyHeaders,
    StructuredRequest,
)
from .paths import ID_PREFIX

__all__ = [
    "DEFAULT_OUT",
    "ERROR_MEANINGS",
    "ID_PREFIX",
    "BinaryRequestHeaders",
    "DeadLetterHeaders",
    "EventHeaders",
    "ReplyHeaders",
    "StructuredRequest",
    "check",
    "main",
    "render",
    "write",
]
