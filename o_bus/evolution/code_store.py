"""Content-addressed code versions of agents, in a JetStream Object Store.

A code version is one Python source file that defines an AgentDefinition at module level. Its
object in the ``o_code`` object store is named by the sha256 of its content, so the same file
deployed twice is one object. Which agent runs which versions, and what each declares, is in
the KV bucket ``o_code_versions`` under ``<agent>.<sha256 hex>``.

Workers fetch a version into a local cache (checked against its digest every time) and import
it under a module name of its own, so several versions coexist in one process.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

import nats.errors
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError, ObjectNotFoundError
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore
from pydantic import BaseModel, ConfigDict

from o_bus.agent.catalogue import find_definition, import_file
from o_bus.agent.definition import AgentDefinition
from o_bus.errors import (
    CodeVersionNotFoundError,
    ConfigurationError,
    ErrorCode,
    InvalidRequestError,
    StorageError,
    UntrustedCodeError,
)
from o_bus.evolution.provenance import CodeSigner, operator_signer, verify
from o_bus.evolution.validate import ValidatedCode
from o_bus.store import layout
from o_bus.store.event_records import utc_now
from o_bus.store.provision import ensure_bucket, ensure_code_store

__all__ = ["CodeStore", "CodeVersion", "default_cache_dir", "digest_of", "parse_digest"]

log = logging.getLogger(__name__)

_HEX = re.compile(r"^[0-9a-f]{1,64}$")
MIN_PREFIX = 4


class CodeVersion(BaseModel):
    """One deployed code version of one agent."""

    model_config = ConfigDict(frozen=True)
    digest: str  # "sha256:<64 hex>"
    agent: str
    definition_name: str
    code_version: str  # the definition's own version string
    state_schema_version: int
    commands: list[str]
    event_types: list[str]
    filename: str
    size: int
    deployed_at: str
    deployed_by: str
    note: str = ""
    attr: str | None = None  # the definition's attribute, when the file defines several
    signed_by: str = ""  # who deployed it, as signed (deployed_by changes when shared)
    signer: str | None = None  # the public key that signed it ("ed25519:<base64>")
    signature: str | None = None  # over the digest and signed_by (provenance.py)

    def verify(self) -> None:
        """Raise UntrustedCodeError unless a trusted key signed this version."""
        verify(self.digest, self.signed_by, self.signer, self.signature)

    @property
    def hex(self) -> str:
        return self.digest.removeprefix("sha256:")


VersionList = list[CodeVersion]


def digest_of(source: bytes) -> str:
    return "sha256:" + hashlib.sha256(source).hexdigest()


def parse_digest(ref: str) -> str:
    """The hex part of ``sha256:<hex>`` or ``<hex>`` (possibly a prefix), lower-cased."""
    text = ref.strip().lower().removeprefix("sha256:")
    if not _HEX.match(text):
        raise InvalidRequestError(
            ErrorCode.MALFORMED_REQUEST,
            f"{ref!r} is not a code version: give its sha256 digest or a prefix of it",
        )
    return text


def default_cache_dir() -> Path:
    """``$O_BUS_CODE_CACHE``, else a per-user folder in the temp directory."""
    configured = os.environ.get("O_BUS_CODE_CACHE")
    if configured:
        return Path(configured)
    return Path(tempfile.gettempdir()) / f"o-bus-code-{os.getuid()}"


def _module_name(hex_digest: str) -> str:
    return f"o_bus_code_{hex_digest}"


class CodeStore:
    """Code versions in JetStream, with a local cache of fetched files under ``cache_dir``."""

    def __init__(self, js: JetStreamContext, cache_dir: Path) -> None:
        self.js = js
        self.cache_dir = cache_dir
        self._objects: ObjectStore | None = None
        self._versions: KeyValue | None = None

    async def _object_store(self) -> ObjectStore:
        if self._objects is None:
            try:
                self._objects = await ensure_code_store(self.js)
            except nats.errors.Error as err:
                raise StorageError("cannot open the code object store") from err
        return self._objects

    async def _kv(self) -> KeyValue:
        if self._versions is None:
            try:
                self._versions = await ensure_bucket(self.js, layout.CODE_VERSIONS_BUCKET)
            except nats.errors.Error as err:
                raise StorageError("cannot open the code versions bucket") from err
        return self._versions

    # -- writing -----------------------------------------------------------------------------

    async def put(
        self,
        agent: str,
        source: bytes,
        validated: ValidatedCode,
        *,
        filename: str,
        by: str,
        note: str = "",
        attr: str | None = None,
        signer: CodeSigner | None = None,
    ) -> CodeVersion:
        """Store ``source`` (already validated) as a version of ``agent``, signed by
        ``signer`` (default: the operator's key in the data dir).

        Idempotent: if this content is already a version of the agent, that record is
        returned unchanged (with its first deployment's time, author and note).
        """
        layout.validate_agent_name(agent)
        digest = digest_of(source)
        signer = signer or operator_signer()
        hex_digest = digest.removeprefix("sha256:")
        objects = await self._object_store()
        try:
            try:
                await objects.get_info(hex_digest)
            except ObjectNotFoundError:
                await objects.put(hex_digest, source)
            version = CodeVersion(
                digest=digest,
                agent=agent,
                definition_name=validated.definition_name,
                code_version=validated.code_version,
                state_schema_version=validated.state_schema_version,
                commands=validated.commands,
                event_types=validated.event_types,
                filename=filename,
                size=len(source),
                deployed_at=utc_now(),
                deployed_by=by,
                note=note,
                attr=attr,
                signed_by=by,
                signer=signer.public,
                signature=signer.sign(digest, by),
            )
            kv = await self._kv()
            key, value = f"{agent}.{hex_digest}", version.model_dump_json().encode()
            try:
                await kv.create(key, value)
            except KeyWrongLastSequenceError:
                existing = await self.get(agent, digest)
                try:
                    existing.verify()
                    return existing
                except UntrustedCodeError:  # stored unsigned or forged: this deploy signs it
                    await kv.put(key, value)
        except nats.errors.Error as err:
            raise StorageError(f"cannot store code version {digest} of {agent!r}") from err
        log.info("agent %s: code version %s (%s) stored", agent, digest, filename)
        return version

    async def share(self, agent: str, ref: str, into: str, *, by: str, note: str) -> CodeVersion:
        """Make ``agent``'s version ``ref`` a version of ``into`` too (a fork runs the code
        its source ran). The content is already stored; only the record is added."""
        layout.validate_agent_name(into)
        found = await self.get(agent, ref)
        version = found.model_copy(
            update={"agent": into, "deployed_at": utc_now(), "deployed_by": by, "note": note}
        )
        try:
            kv = await self._kv()
            try:
                await kv.create(f"{into}.{found.hex}", version.model_dump_json().encode())
            except KeyWrongLastSequenceError:
                return await self.get(into, found.digest)
        except nats.errors.Error as err:
            raise StorageError(f"cannot store code version {found.digest} of {into!r}") from err
        return version

    # -- reading -----------------------------------------------------------------------------

    async def list(self, agent: str) -> VersionList:
        """Every code version of ``agent``, oldest deployment first."""
        layout.validate_agent_name(agent)
        kv = await self._kv()
        found: VersionList = []
        try:
            watcher = await kv.watch(f"{agent}.*", ignore_deletes=True)
            try:
                while (entry := await watcher.updates(timeout=5)) is not None:  # type: ignore[no-untyped-call]
                    if entry.value:
                        found.append(CodeVersion.model_validate_json(entry.value))
            finally:
                await watcher.stop()  # type: ignore[no-untyped-call]
        except nats.errors.Error as err:
            raise StorageError(f"cannot list the code versions of {agent!r}") from err
        return sorted(found, key=lambda v: (v.deployed_at, v.digest))

    async def get(self, agent: str, ref: str) -> CodeVersion:
        """The version of ``agent`` whose digest is ``ref`` or starts with it (at least 4 hex
        digits). Raises CodeVersionNotFoundError, or InvalidRequestError for an ambiguous prefix."""
        layout.validate_agent_name(agent)
        hex_ref = parse_digest(ref)
        if len(hex_ref) == 64:
            kv = await self._kv()
            try:
                entry = await kv.get(f"{agent}.{hex_ref}")
            except KeyNotFoundError:
                raise self._missing(agent, ref) from None
            except nats.errors.Error as err:
                raise StorageError(f"cannot read code version {ref} of {agent!r}") from err
            return CodeVersion.model_validate_json(entry.value or b"{}")
        if len(hex_ref) < MIN_PREFIX:
            raise InvalidRequestError(
                ErrorCode.MALFORMED_REQUEST,
                f"code version prefix {ref!r} is too short: give at least {MIN_PREFIX} hex digits",
            )
        matches = [v for v in await self.list(agent) if v.hex.startswith(hex_ref)]
        if not matches:
            raise self._missing(agent, ref)
        if len(matches) > 1:
            raise InvalidRequestError(
                ErrorCode.MALFORMED_REQUEST,
                f"code version prefix {ref!r} of {agent!r} is ambiguous: it matches "
                + ", ".join(v.digest for v in matches),
            )
        return matches[0]

    @staticmethod
    def _missing(agent: str, ref: str) -> CodeVersionNotFoundError:
        return CodeVersionNotFoundError(
            f"agent {agent!r} has no code version {ref!r} (`o-bus versions {agent}` lists them)"
        )

    async def fetch(self, digest: str) -> Path:
        """The version's file in the cache (``cache_dir/<hex>.py``), its sha256 checked."""
        path, _ = await self._verified_source(digest)
        return path

    async def _verified_source(self, digest: str) -> tuple[Path, bytes]:
        hex_digest = parse_digest(digest)
        if len(hex_digest) != 64:
            raise InvalidRequestError(
                ErrorCode.MALFORMED_REQUEST, f"{digest!r} is not a full sha256 digest"
            )
        path = self.cache_dir / f"{hex_digest}.py"
        try:
            cached = path.read_bytes()
        except FileNotFoundError:
            cached = None
        if cached is not None:
            if hashlib.sha256(cached).hexdigest() == hex_digest:
                return path, cached
            log.warning("cached code %s does not match its digest: fetching it again", path)
        objects = await self._object_store()
        try:
            result = await objects.get(hex_digest)
        except ObjectNotFoundError:
            missing = f"code version sha256:{hex_digest} is not stored"
            raise CodeVersionNotFoundError(missing) from None
        except nats.errors.Error as err:
            raise StorageError(f"cannot fetch code version sha256:{hex_digest}") from err
        source = result.data or b""
        if hashlib.sha256(source).hexdigest() != hex_digest:
            raise StorageError(
                f"object sha256:{hex_digest} in {layout.CODE_BUCKET} holds different content "
                f"(sha256 {hashlib.sha256(source).hexdigest()}); refusing to use it"
            )
        self.cache_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=self.cache_dir, prefix=f".{hex_digest[:12]}-", suffix=".py")
        with os.fdopen(fd, "wb") as out:
            out.write(source)
        os.replace(tmp, path)
        return path, source

    async def load(self, agent: str, ref: str) -> AgentDefinition[Any]:
        """Import a version of ``agent`` in this process and return its definition.

        Each version is its own module (``o_bus_code_<hex>``), imported once per process;
        the bytes executed are the ones whose sha256 was just checked, and only if a key
        the operator trusts signed that digest (else UntrustedCodeError).
        """
        version = await self.get(agent, ref)
        version.verify()
        name = _module_name(version.hex)
        module = sys.modules.get(name)
        if module is None:
            path, source = await self._verified_source(version.digest)
            try:
                module = import_file(path, name, source=source)
            except Exception as exc:
                raise ConfigurationError(
                    f"code version {version.digest} of {agent!r} failed to import: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
        definition = find_definition(module, version.attr, version.filename)
        if definition.name != version.definition_name:
            raise ConfigurationError(
                f"code version {version.digest} defines {definition.name!r}, "
                f"not {version.definition_name!r}"
            )
        return definition
