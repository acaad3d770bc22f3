"""moto's state on disk: what `make dev` keeps of S3 (R2), SQS, Cognito, SES and Secrets Manager.

moto keeps its services in memory. Here each service's backends are pickled to a file of their
own under the state folder, and restored into moto before the server takes its first request.
What was measured, and why this and not moto's recorder or a second S3 server, is in
docs/local-stack.md.

- The bytes of every S3 object are written once, to `blobs/<id>`, the first time a save sees the
  object; from then on moto reads them from that file (its own spooled temporary copy is
  dropped). A save writes only the objects' metadata and the new objects, so it does not grow
  with the bytes stored, and a restart does not copy them.
- A request that changes a service is answered only after that service's state is on disk: an
  upload, a user made by `cli user add`, a message sent, a secret stored. Whatever DynamoDB
  records about such a thing afterwards (the app always writes S3, Cognito and SQS before the
  transaction that refers to them) can never point at something a crash took away.
- SQS's receives and visibility changes (every poll, every heartbeat) are saved once a second
  instead: a crash can at worst make an in-flight message visible again, a redelivery the
  worker already treats as a no-op.
- Each file is replaced atomically (written beside, then renamed), so a crash mid-save leaves
  the previous state. After a save of S3, blobs no live object refers to are deleted.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import pickle
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qs

log = logging.getLogger(__name__)

# The services the local stack uses, by moto's backend names.
SERVICES = ("s3", "sqs", "cognito-idp", "ses", "sesv2", "secretsmanager")
FORMAT = 1
AUTOSAVE_SECONDS = 1.0
SAVE_TRIES = 5  # a save races the server's threads; a dict that changed size mid-pickle is retried
# SQS actions that only move messages in and out of view: saved by the once-a-second autosave.
SQS_SOFT_ACTIONS = frozenset(
    {"ReceiveMessage", "ChangeMessageVisibility", "ChangeMessageVisibilityBatch", "GetQueueAttributes"}
)
_LOCK_TYPES = (type(threading.Lock()), type(threading.RLock()))
_SPOOL_MAX = 1024 * 1024


class BlobFile:
    """A restored object's bytes, read from its blob file on each read (no file stays open).

    moto never rewrites an object's bytes (a new version is a new object), but should it, the
    first write copies them into a private buffer and the blob file is left as it is."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._position = 0
        self._copy: IO[bytes] | None = None

    @property
    def dirty(self) -> bool:
        return self._copy is not None

    def seek(self, offset: int, whence: int = 0) -> int:
        if self._copy is not None:
            return self._copy.seek(offset, whence)
        base = {0: 0, 1: self._position, 2: self.path.stat().st_size}[whence]
        self._position = base + offset
        return self._position

    def tell(self) -> int:
        return self._copy.tell() if self._copy is not None else self._position

    def read(self, size: int = -1) -> bytes:
        if self._copy is not None:
            return self._copy.read(size)
        with self.path.open("rb") as f:
            f.seek(self._position)
            data = f.read(size if size is not None and size >= 0 else -1)
        self._position += len(data)
        return data

    def _own(self) -> IO[bytes]:
        if self._copy is None:
            copy: IO[bytes] = tempfile.SpooledTemporaryFile(_SPOOL_MAX)  # noqa: SIM115 (kept open)
            with self.path.open("rb") as f:
                while chunk := f.read(1024 * 1024):
                    copy.write(chunk)
            copy.seek(self._position)
            self._copy = copy
        return self._copy

    def truncate(self, size: int | None = None) -> int:
        return self._own().truncate(size)

    def write(self, data: bytes) -> int:
        return self._own().write(data)

    def close(self) -> None:
        if self._copy is not None:
            self._copy.close()


class _Blob:
    """A reference to a blob file inside a pickle (see _Pickler.persistent_id)."""

    def __init__(self, name: str) -> None:
        self.name = name


def _rebuild_lock(reentrant: bool) -> Any:
    return threading.RLock() if reentrant else threading.Lock()


def _rebuild_private_key(pem: bytes) -> Any:
    from cryptography.hazmat.primitives import serialization

    return serialization.load_pem_private_key(pem, None)


def _rebuild_public_key(pem: bytes) -> Any:
    from cryptography.hazmat.primitives import serialization

    return serialization.load_pem_public_key(pem)


def _rebuild_key(cls: Any, state: dict[str, Any], buffer: Any) -> Any:
    """An S3 object (moto's FakeKey) whose bytes live in a blob file."""
    key = cls.__new__(cls)
    key.__dict__.update(state)
    key._value_buffer = buffer
    key.lock = threading.Lock()
    return key


class _Pickler(pickle.Pickler):
    """moto's backends as they are, except: locks are made anew, RSA keys travel as PEM, and an
    S3 object's bytes are a reference to its blob (written here the first time)."""

    def __init__(self, file: IO[bytes], blobs: BlobStore) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.blobs = blobs
        from moto.s3.models import FakeKey

        self.key_type = FakeKey

    def persistent_id(self, obj: Any) -> Any:
        return ("blob", obj.name) if isinstance(obj, _Blob) else None

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, _LOCK_TYPES):
            return _rebuild_lock, (isinstance(obj, _LOCK_TYPES[1]),)
        if isinstance(obj, self.key_type):
            state = {k: v for k, v in obj.__dict__.items() if k not in ("_value_buffer", "lock")}
            return _rebuild_key, (type(obj), state, _Blob(self.blobs.keep(obj)))
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        if isinstance(obj, rsa.RSAPrivateKey):
            pem = obj.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            return _rebuild_private_key, (pem,)
        if isinstance(obj, rsa.RSAPublicKey):
            spki = serialization.PublicFormat.SubjectPublicKeyInfo
            pem = obj.public_bytes(serialization.Encoding.PEM, spki)
            return _rebuild_public_key, (pem,)
        return NotImplemented


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: IO[bytes], blobs: BlobStore) -> None:
        super().__init__(file)
        self.blobs = blobs

    def persistent_load(self, pid: Any) -> Any:
        kind, name = pid
        if kind != "blob":
            raise pickle.UnpicklingError(f"unknown reference {kind!r}")
        return BlobFile(self.blobs.path(name))


class BlobStore:
    """The objects' bytes, one file each, written once and never changed."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.written: set[str] = set()  # by the save in progress
        self.referenced: set[str] = set()

    def path(self, name: str) -> Path:
        return self.directory / name

    def keep(self, key: Any) -> str:
        """The blob holding this object's bytes; written now (and moto switched to it) if new."""
        buffer = key._value_buffer
        if isinstance(buffer, BlobFile) and not buffer.dirty and buffer.path.parent == self.directory:
            self.referenced.add(buffer.path.name)
            return buffer.path.name
        name = uuid.uuid4().hex
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.path(f"{name}.tmp")
        with key.lock, tmp.open("wb") as out:
            try:
                buffer.seek(0)
                while chunk := buffer.read(16 * 1024 * 1024):
                    out.write(chunk)
            except ValueError:  # closed: the object was deleted while we pickled; it is gone anyway
                pass
        tmp.replace(self.path(name))
        with key.lock:
            if key._value_buffer is buffer:
                key._value_buffer = BlobFile(self.path(name))
                with contextlib.suppress(Exception):
                    buffer.close()
        self.written.add(name)
        self.referenced.add(name)
        return name

    def collect(self, started: float) -> int:
        """Delete blobs no object of the last S3 save refers to (those older than that save)."""
        removed = 0
        if not self.directory.exists():
            return 0
        for path in self.directory.iterdir():
            if path.name in self.referenced:
                continue
            with contextlib.suppress(OSError):
                if path.stat().st_mtime < started:
                    path.unlink()
                    removed += 1
        return removed


@dataclass
class Restored:
    services: list[str]
    seconds: float
    failed: dict[str, str]


def _backends(service: str) -> Iterator[tuple[str, str, Any]]:
    from moto.backends import get_backend

    yield from get_backend(service).iter_backends()  # type: ignore[call-overload]


class MotoState:
    """Save and restore moto's state for the services in SERVICES, in `directory`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.blobs = BlobStore(directory / "blobs")
        self._save_lock = threading.Lock()
        self._digests: dict[str, str] = {}
        self._dirty: set[str] = set()
        self._dirty_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def file(self, service: str) -> Path:
        return self.directory / f"{service}.pickle"

    # --- restore ------------------------------------------------------------------------------
    def restore(self) -> Restored:
        """Put every saved service back into moto (before the server takes requests). A file that
        cannot be read (another moto version, a damaged file) is set aside and that service
        starts empty; the others are restored."""
        from moto.backends import get_backend

        started = time.perf_counter()
        restored: list[str] = []
        failed: dict[str, str] = {}
        for service in SERVICES:
            path = self.file(service)
            if not path.exists():
                continue
            try:
                with path.open("rb") as f:
                    header = pickle.load(f)
                    if header.get("format") != FORMAT:
                        raise ValueError(f"format {header.get('format')} (this is {FORMAT})")
                    saved = _Unpickler(f, self.blobs).load()
                backends = get_backend(service)  # type: ignore[call-overload]
                for account, region, state in saved:
                    backends[account][region].__dict__ = state
            except Exception as exc:  # noqa: BLE001 (any failure: that service starts empty)
                aside = path.with_name(f"{path.name}.unreadable-{int(time.time())}")
                path.replace(aside)
                failed[service] = f"{type(exc).__name__}: {exc} (set aside as {aside.name})"
                log.warning("could not restore moto's %s: %s", service, failed[service])
                continue
            restored.append(service)
        return Restored(restored, time.perf_counter() - started, failed)

    # --- save -----------------------------------------------------------------------------------
    def save(self, services: Iterable[str] = SERVICES, force: bool = False) -> list[str]:
        """Write the given services' state (those whose state changed, unless `force`)."""
        written = []
        with self._save_lock:
            for service in services:
                if self._save_one(service, force):
                    written.append(service)
        return written

    def _save_one(self, service: str, force: bool) -> bool:
        from moto import __version__

        started = time.time()
        for attempt in range(SAVE_TRIES):
            self.blobs.written, self.blobs.referenced = set(), set()
            buffer = io.BytesIO()
            try:
                pickle.dump({"format": FORMAT, "moto": __version__}, buffer)
                state = [(account, region, be.__dict__) for account, region, be in _backends(service)]
                _Pickler(buffer, self.blobs).dump(state)
            except RuntimeError:  # a dict or set changed size under a server thread
                if attempt == SAVE_TRIES - 1:
                    raise
                time.sleep(0.01)
                continue
            break
        data = buffer.getvalue()
        digest = hashlib.sha256(data).hexdigest()
        if not force and self._digests.get(service) == digest:
            return False
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.file(service).with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(self.file(service))
        self._digests[service] = digest
        if service == "s3":
            self.blobs.collect(started)
        return True

    # --- when to save ---------------------------------------------------------------------------
    def changed(self, services: tuple[str, ...], soft: bool) -> None:
        """A request changed these services: save them before it is answered, or, for SQS's
        receives and visibility changes, within a second."""
        if soft:
            with self._dirty_lock:
                self._dirty.update(services)
            return
        self.save(services)

    def start_autosave(self, interval: float = AUTOSAVE_SECONDS) -> None:
        def run() -> None:
            while not self._stop.wait(interval):
                with self._dirty_lock:
                    dirty, self._dirty = self._dirty, set()
                if dirty:
                    try:
                        self.save(dirty)
                    except Exception:  # noqa: BLE001 (logged; the next tick tries again)
                        log.exception("could not save moto's state; trying again")
                        with self._dirty_lock:
                            self._dirty |= dirty

        self._thread = threading.Thread(target=run, name="moto-state", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the autosave and write everything (the server has stopped taking requests)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.save(force=True)

    def middleware(self, app: Callable[..., Any]) -> Callable[..., Any]:
        """Wrap moto's WSGI app: each request that changes a service saves it before the answer."""

        def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            result = app(environ, start_response)
            change = classify(environ)
            if change is not None:
                try:
                    self.changed(*change)
                except Exception:  # noqa: BLE001 (the request itself succeeded)
                    log.exception("could not save moto's state after %s", environ.get("PATH_INFO"))
            return result

        return wrapped


def classify(environ: dict[str, Any]) -> tuple[tuple[str, ...], bool] | None:
    """(services, soft) for a request that may change moto's state; None for a read. A request
    this cannot place saves every service (rare: moto's own API, an unsigned POST)."""
    method = environ.get("REQUEST_METHOD", "GET")
    if environ.get("PATH_INFO", "").startswith("/moto-api"):
        return (SERVICES, False) if method == "POST" else None
    if method in ("GET", "HEAD", "OPTIONS"):
        return None
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target.startswith("AmazonSQS."):
        return ("sqs",), target.removeprefix("AmazonSQS.") in SQS_SOFT_ACTIONS
    if target.startswith("AWSCognitoIdentityProviderService."):
        return ("cognito-idp",), False
    if target.startswith("secretsmanager."):
        return ("secretsmanager",), False
    service = _signed_service(environ)
    if service in ("email", "ses"):
        return ("ses", "sesv2"), False
    if service == "sqs":
        return ("sqs",), _query_action(environ) in SQS_SOFT_ACTIONS
    if service in SERVICES:
        return (service,), False
    return SERVICES, False


def _signed_service(environ: dict[str, Any]) -> str | None:
    """The service named in the request's SigV4 credential scope (header or presigned URL)."""
    credential = ""
    auth = environ.get("HTTP_AUTHORIZATION", "")
    if "Credential=" in auth:
        credential = auth.split("Credential=", 1)[1].split(",", 1)[0]
    else:
        query = parse_qs(environ.get("QUERY_STRING", ""))
        credential = (query.get("X-Amz-Credential") or [""])[0]
    parts = credential.split("/")
    return parts[3] if len(parts) >= 5 else None


def _query_action(environ: dict[str, Any]) -> str:
    return (parse_qs(environ.get("QUERY_STRING", "")).get("Action") or [""])[0]


def size_on_disk(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file()) if directory.exists() else 0


def remove(directory: Path) -> None:
    """FRESH=1: forget everything."""
    import shutil

    if directory.exists():
        shutil.rmtree(directory)
