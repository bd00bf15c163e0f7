"""
Landing a video stream in object storage so that nobody ever sees half of it.

fsspec commits a file on ``close()`` even when an exception is raised inside ``with open(...)``,
so "write, then hope" leaves truncated objects behind. Here every write is explicitly committed
only after its length and signature checked out, and discarded otherwise:

- local disks: write a hidden ``.part`` sibling, then ``rename`` it over the target (atomic on one
  filesystem; fsspec's own local transaction writes to /tmp and *copies* across filesystems). A
  writer holds a ``flock`` on its ``.part``, so the next writer of the same name can tell the
  leftover of a killed try (no lock) from a download still running, and removes only the former;
- object stores (S3, GCS, ...): open with ``autocommit=False``, so the object (a multipart upload)
  only appears on ``commit()``, and ``discard()`` aborts it.

An uncommitted object cannot be read back, so a check that must decode the video before it is
visible (``before_commit``) reads a local copy: the ``.part`` file itself on a local disk, or a
temporary spool file written alongside the upload for an object store.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import logging
import os
import queue
import re
import tempfile
import threading
import uuid
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import IO, Any

from airflow.providers.common.compat.sdk import ObjectStoragePath

from airflow_provider_hailuo.api import HailuoDestinationTakenError, HailuoDownloadError, looks_like_mp4

log = logging.getLogger(__name__)

LOCAL_PROTOCOLS = ("file", "local", "")
#: Object-store upload part size: the memory a write holds at most, whatever the video's size.
UPLOAD_BLOCK_SIZE = 8 * 2**20
#: Download read size: just under glibc's default mmap threshold (128 KiB). Each larger chunk is
#: mmap'ed and unmapped again, which cost a fresh task process ~2 s of system time per GiB
#: (1 GiB from loopback: 331 MiB/s with 1 MiB chunks, 688 MiB/s with these).
DOWNLOAD_CHUNK_BYTES = 124 * 1024
#: Chunks read ahead at most (~4 MiB in memory).
READ_AHEAD_CHUNKS = 32
READ_AHEAD_THREAD = "hailuo-download-read-ahead"


@dataclass(frozen=True)
class LandedFile:
    uri: str
    bytes: int
    sha256: str


_END = object()


def read_ahead(chunks: Iterable[bytes], depth: int = READ_AHEAD_CHUNKS) -> Generator[bytes, None, None]:
    """
    Yield ``chunks``, reading the next ones in a thread meanwhile.

    A download is read (socket), hashed and written one after another; on a 2-core worker the
    socket reads then take a fifth of the time. Reading ahead overlaps them with hashing and writing
    (both release the GIL). At most ``depth`` chunks wait in memory, so memory stays flat. If the
    caller stops early, close the generator: the reader is told to stop and joined, so nothing
    reads from the response after that (close it before the response).
    """
    pending: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def hand_over(item: Any) -> bool:
        while not stop.is_set():
            try:
                pending.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for chunk in chunks:
                if not hand_over(chunk):
                    return
        except BaseException as err:
            hand_over(err)
            return
        hand_over(_END)

    reader = threading.Thread(target=read, name=READ_AHEAD_THREAD, daemon=True)
    reader.start()
    try:
        while (item := pending.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        # The reader is at most one socket read (bounded by the read timeout) from seeing `stop`.
        reader.join()


def protocol_of(path: ObjectStoragePath) -> str:
    """A path's fsspec protocol (``s3``, ``gs``, ``file``...; ``""`` for a bare local path)."""
    protocol = path.protocol
    return protocol[0] if isinstance(protocol, tuple | list) else (protocol or "")


def plain_uri(path: ObjectStoragePath) -> str:
    """``s3://bucket/key`` without the ``conn_id@`` that ``str(ObjectStoragePath)`` embeds."""
    protocol = protocol_of(path) or "file"
    location = path.path
    if protocol in LOCAL_PROTOCOLS:
        return f"file://{location}"
    return f"{protocol}://{location}"


#: Object stores whose fsspec filesystem can refuse a commit over an existing object ("xb": S3's
#: conditional write). Elsewhere an existence check right before the commit narrows the race.
EXCLUSIVE_PROTOCOLS = ("s3", "s3a")


#: What ``link(2)`` answers on filesystems without hard links (gcsfuse, mountpoint-s3, blobfuse and
#: other FUSE mounts, some network shares).
NO_HARD_LINKS = frozenset({errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.ENOSYS})


def _commit_no_clobber(part: str, target: str) -> None:
    """
    Move ``part`` to ``target`` unless something is there.

    ``link`` is atomic and refuses an existing name. Where the filesystem has no hard links, a
    ``rename`` after an existence check keeps a narrower promise: a file another writer creates
    between the check and the rename (a few system calls) is replaced; without it no download
    would ever land there.
    """
    try:
        os.link(part, target)
    except FileExistsError:
        raise
    except OSError as err:
        if err.errno not in NO_HARD_LINKS:
            raise
        log.info("No hard links at %s (%s); committing by a checked rename", target, err.strerror)
        if os.path.lexists(target):
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), target) from None
        os.replace(part, target)
        return
    os.unlink(part)


def _remove_abandoned_parts(folder: str, name: str) -> None:
    """
    Remove the ``.part`` files of ``name`` that no writer holds: a killed try's leftovers.

    A live writer holds an exclusive ``flock`` on its ``.part`` (released by the kernel when its
    process dies), so one whose lock can be taken is abandoned. Where locks are local to a host (FUSE
    mounts), a writer of the same name on another host may lose its ``.part``: its commit then fails
    (nothing wrong lands); two writers of one name are refused upstream anyway.
    """
    pattern = re.compile(re.escape(f".{name}.") + r"[0-9a-f]{12}\.part")
    try:
        names = [entry for entry in os.listdir(folder) if pattern.fullmatch(entry)]
    except OSError:
        return
    for entry in names:
        stale = os.path.join(folder, entry)
        try:
            fd = os.open(stale, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            log.info("Removing %s, left by a download that did not finish", stale)
            os.unlink(stale)
        except OSError:
            continue  # held by a writer still running (or already gone)
        finally:
            os.close(fd)


def _hold(part: str) -> int:
    """
    Mark ``part`` as being written until the returned descriptor is closed.

    A descriptor of its own, so the lock outlives closing the written file, up to the commit.
    """
    fd = os.open(part, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:  # no locks on this filesystem: the write goes on, unmarked
        log.debug("Cannot lock %s: %s", part, err)
    return fd


@dataclass
class Uncommitted:
    """A write in progress: ``file`` to write, ``commit()`` to publish, ``local_path`` if readable now."""

    file: IO[bytes]
    commit: Callable[[], None]
    #: Where the written bytes can be read before the commit (a local ``.part``); None for object stores.
    local_path: str | None


@contextmanager
def write_aside(path: ObjectStoragePath, *, exclusive: bool = False) -> Iterator[Uncommitted]:
    """
    Yield an :class:`Uncommitted`: the object appears at ``path`` only if ``commit()`` is called.

    Leaving the block without committing (or with an exception) throws the written bytes away.
    With ``exclusive``, ``commit()`` raises :class:`FileExistsError` instead of replacing an object
    that appeared at ``path`` meanwhile. ``local_path`` tells where a local disk's bytes can be read
    before the commit.
    """
    committed = False
    protocol = protocol_of(path)
    if protocol in LOCAL_PROTOCOLS:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_abandoned_parts(path.parent.path, path.name)
        part = path.parent / f".{path.name}.{uuid.uuid4().hex[:12]}.part"
        handle = part.open("wb")
        held = _hold(part.path)

        def commit() -> None:
            nonlocal committed
            handle.close()
            if exclusive:
                _commit_no_clobber(part.path, path.path)
            else:
                part.rename(path)
            committed = True

        try:
            yield Uncommitted(file=handle, commit=commit, local_path=part.path)
        finally:
            try:
                if not committed:
                    handle.close()
                    part.unlink(missing_ok=True)
            finally:
                os.close(held)
        return

    conditional = exclusive and protocol in EXCLUSIVE_PROTOCOLS
    mode = "xb" if conditional else "wb"
    remote = path.fs.open(path.path, mode, autocommit=False, block_size=UPLOAD_BLOCK_SIZE)

    def commit_remote() -> None:
        nonlocal committed
        if exclusive and not conditional and path.fs.exists(path.path):
            raise FileExistsError(plain_uri(path))
        remote.close()
        try:
            remote.commit()
        except FileExistsError:
            raise
        except Exception as err:
            if conditional and _precondition_failed(err):
                raise FileExistsError(plain_uri(path)) from err
            raise
        committed = True

    try:
        yield Uncommitted(file=remote, commit=commit_remote, local_path=None)
    finally:
        if not committed:
            try:
                remote.close()
            finally:
                remote.discard()


def _precondition_failed(err: BaseException) -> bool:
    """S3's answer to a conditional write over an existing object (HTTP 412)."""
    response = getattr(err, "response", None) or getattr(err.__cause__, "response", None) or {}
    code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
    return code in ("PreconditionFailed", "412") or "PreconditionFailed" in str(err)


def sha256_of(path: ObjectStoragePath, chunk_size: int = 2**20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


#: Called with the path of a whole local copy of the video, after the length and signature checks
#: and before the commit; raising stops the commit, so nothing becomes visible.
BeforeCommit = Callable[[str], None]


def land_stream(
    chunks: Iterable[bytes],
    destination: ObjectStoragePath,
    *,
    expected_bytes: int | None,
    overwrite: bool,
    before_commit: BeforeCommit | None = None,
) -> LandedFile:
    """
    Write ``chunks`` to ``destination``, hashing and counting on the way; commit only a whole MP4.

    With ``overwrite=False`` an existing object is kept when its content is identical (the task
    succeeds, idempotent reruns) and refused when it differs. ``before_commit`` gets a local copy
    to decode (the ``.part`` file, or a spool file for an object store, deleted afterwards).
    """
    digest = hashlib.sha256()
    size = 0
    head = b""
    existed = destination.exists()
    if existed and not overwrite:
        log.info("%s exists; downloading to compare before deciding", destination)
    with ExitStack() as stack:
        pending = stack.enter_context(write_aside(destination, exclusive=not overwrite))
        handle, commit = pending.file, pending.commit
        spool: IO[bytes] | None = None
        if before_commit is not None and pending.local_path is None:
            spool = stack.enter_context(tempfile.NamedTemporaryFile(prefix="hailuo-", suffix=".mp4"))
        for chunk in chunks:
            if not chunk:
                continue
            if len(head) < 12:
                head += chunk[: 12 - len(head)]
                if len(head) >= 12 and not looks_like_mp4(head):
                    raise HailuoDownloadError(
                        "The downloaded file is not an MP4 (no `ftyp` box at its start)"
                    )
            digest.update(chunk)
            size += len(chunk)
            handle.write(chunk)
            if spool is not None:
                spool.write(chunk)
        if size == 0 or not looks_like_mp4(head):
            raise HailuoDownloadError(f"The downloaded file is not an MP4 ({size} bytes received)")
        if expected_bytes is not None and size != expected_bytes:
            raise HailuoDownloadError(
                f"The download was cut short: {size} of {expected_bytes} bytes received (Content-Length)"
            )
        sha256 = digest.hexdigest()
        if before_commit is not None:
            if spool is not None:
                spool.flush()
                before_commit(spool.name)
            else:
                handle.flush()
                before_commit(str(pending.local_path))
        try:
            if existed and not overwrite:
                raise FileExistsError(plain_uri(destination))
            commit()
        except FileExistsError:
            # There already, or created by someone else while this download ran: never replaced.
            if sha256_of(destination) != sha256:
                raise HailuoDestinationTakenError(
                    f"{plain_uri(destination)} already exists with different content; "
                    "set overwrite=True to replace it"
                ) from None
            log.info("%s already holds this exact video; kept as is", destination)
    return LandedFile(uri=plain_uri(destination), bytes=size, sha256=sha256)


def land_bytes(data: bytes, destination: ObjectStoragePath) -> LandedFile:
    """
    Publish a small file beside a video (poster, manifest) through the same write-aside commit.

    It replaces what is there: a sidecar describes the video now at its name, which the video's own
    commit (and its overwrite rule) has already settled.
    """
    with write_aside(destination, exclusive=False) as pending:
        pending.file.write(data)
        pending.commit()
    return LandedFile(uri=plain_uri(destination), bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
