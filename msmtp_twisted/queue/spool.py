"""The queue directory: crash-safe writes, defensive reads, claims.

Layout (docs/queue.md)::

    QUEUE/            0700
      .lock           flock(): shared while an entry is committed, rewritten,
                      removed or moved; exclusive while cleaning up
      tmp/            mails being received (each flock()ed by its writer) and
                      metadata being rewritten
      ID.eml          the mail as msmtpq read it (0600); flock()ed while it is sent
      ID.json         its metadata (:mod:`~msmtp_twisted.queue.entry`): the entry
                      exists exactly when this file does
      failed/         entries given up on, same two files
      log             the queue log (:mod:`~msmtp_twisted.queue.journal`)

Every write goes to a temporary name, is fsync()ed, renamed into place, and the
directory fsync()ed; the metadata is renamed last when an entry is added and
removed first when it goes, so a crash leaves either a whole entry or an orphan
message that the next clean-up removes (nobody was told that mail was queued).
flock() locks belong to the open file and die with the process, so a crashed
run never blocks the next one.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import BinaryIO

from msmtp_twisted.queue.entry import MAX_METADATA, BadEntry, Entry, new_id, valid_id

__all__ = ["Claim", "Incoming", "InputError", "Scan", "Spool", "SpoolError"]

CHUNK = 64 * 1024
LOCK_WAIT = 30.0  # seconds a commit waits for a clean-up to finish

_KNOWN = {".lock", "tmp", "failed", "log"}


class InputError(OSError):
    """The mail could not be read (as opposed to written to the queue)."""


class SpoolError(OSError):
    """The queue directory cannot be used (missing, not a directory, a symlink...)."""


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _flock(fd: int, operation: int, timeout: float) -> bool:
    """flock() with a bounded wait; False if it could not be had in time."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        try:
            fcntl.flock(fd, operation | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(delay)
            delay = min(delay * 2, 0.2)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _read_limited(path: str, limit: int) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise BadEntry("not a regular file")
        if info.st_size > limit:
            raise BadEntry(f"larger than {limit} bytes")
        chunks = []
        total = 0
        while True:
            chunk = os.read(fd, limit + 1 - total)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise BadEntry(f"larger than {limit} bytes")
        return b"".join(chunks)
    finally:
        os.close(fd)


class Incoming:
    """A mail being received into ``tmp/``: flock()ed for as long as it is open,
    so a clean-up never takes a live temporary for a crashed one."""

    def __init__(self, spool: Spool) -> None:
        self.spool = spool
        self.id = new_id()
        self.path = os.path.join(spool.tmp, self.id + ".eml")
        # created and flock()ed under the queue's shared lock: a clean-up
        # (exclusive) that saw the file between open() and flock() would take
        # it for a crashed run's temporary and remove it under our feet
        with spool._shared():
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                              | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX)
            except BaseException:
                os.close(self.fd)
                _unlink(self.path)
                raise
        self.size = 0
        self.done = False

    def write_from(self, stream: BinaryIO, chunk: int = CHUNK) -> int:
        """Copy ``stream`` to the file in chunks (never the whole mail in memory).

        Raises :class:`InputError` if reading fails, OSError if writing does.
        """
        read = getattr(stream, "read1", stream.read)
        while True:
            try:
                data = read(chunk)
            except OSError as e:
                raise InputError(e.errno, e.strerror) from None
            if not data:
                return self.size
            _write_all(self.fd, data)
            self.size += len(data)

    def reader(self) -> BinaryIO:
        """The mail from its start, through a file of its own (the caller closes it)."""
        return open(self.path, "rb")  # noqa: SIM115 - handed to the caller

    def discard(self) -> None:
        if self.done:
            return
        self.done = True
        try:
            os.unlink(self.path)
        except OSError:
            pass
        os.close(self.fd)


@dataclass
class Claim:
    """An entry this process holds: nobody else sends, drops or moves it until
    :meth:`release` (or the process's end)."""

    spool: Spool
    entry: Entry
    fd: int
    released: bool = False

    def message(self) -> BinaryIO:
        """The mail from its start (the caller closes the file)."""
        return open(os.path.join(self.spool.path, self.entry.id + ".eml"), "rb")  # noqa: SIM115

    def release(self) -> None:
        if not self.released:
            self.released = True
            os.close(self.fd)


@dataclass
class Scan:
    """What :meth:`Spool.scan` found: the entries, oldest first, and one line
    for each file it could not use (never an exception)."""

    entries: list[Entry] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)


class Spool:
    """The queue directory ``path``: mails streamed in (:meth:`incoming`),
    committed durably (:meth:`commit`), listed (:meth:`scan`), claimed, updated,
    removed or moved to ``failed/`` (docs/queue.md, *The spool*)."""

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        self.tmp = os.path.join(self.path, "tmp")
        self.failed = os.path.join(self.path, "failed")
        self.lockfile = os.path.join(self.path, ".lock")

    # ------------------------------------------------------------ the directory

    def ensure(self, *, create: bool = True) -> None:
        """Check (and create, 0700) the queue directory and its subdirectories.

        The queue must belong to us and be writable by nobody else: an entry
        holds msmtp arguments (``--passwordeval`` runs a command), so whoever
        can add one runs commands as the user who flushes the queue.
        """
        for path in (self.path, self.tmp, self.failed):
            try:
                # the queue itself may be a symbolic link the user made; not inside
                info = os.stat(path) if path == self.path else os.lstat(path)
            except FileNotFoundError:
                if not create:
                    raise SpoolError(errno.ENOENT, "no such queue directory", path) from None
                try:
                    os.makedirs(path, 0o700, exist_ok=True)
                except OSError as e:
                    raise SpoolError(e.errno, e.strerror, path) from None
                info = os.lstat(path)
            if not stat.S_ISDIR(info.st_mode):
                raise SpoolError(errno.ENOTDIR, "not a directory", path)
            if info.st_uid != os.geteuid() or info.st_mode & 0o022:
                raise SpoolError(errno.EPERM, "unsafe: owned by another user or writable "
                                 "by group or others", path)

    @contextmanager
    def _locked(self, operation: int, timeout: float = LOCK_WAIT) -> Iterator[bool]:
        fd = os.open(self.lockfile, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            yield _flock(fd, operation, timeout)
        finally:
            os.close(fd)

    @contextmanager
    def _shared(self) -> Iterator[None]:
        with self._locked(fcntl.LOCK_SH) as got:
            if not got:
                raise SpoolError(errno.EWOULDBLOCK, "the queue stays locked", self.lockfile)
            yield

    def _write_metadata(self, entry: Entry) -> str:
        """The entry's metadata in ``tmp/``, fsync()ed; returns its path."""
        path = os.path.join(self.tmp, f"{entry.id}.json.{os.urandom(4).hex()}")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600)
        try:
            _write_all(fd, entry.to_json())
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            _unlink(path)
            raise
        os.close(fd)
        return path

    # ------------------------------------------------------------ adding

    def incoming(self) -> Incoming:
        """A new mail being written into ``tmp/``; :meth:`commit` makes it an entry."""
        return Incoming(self)

    def commit(self, incoming: Incoming, entry: Entry) -> None:
        """Make ``incoming`` the entry ``entry`` (same id), durably: when this
        returns, a crash or power loss keeps the mail.  On failure (a full disk)
        nothing of the entry is left and the error is raised."""
        assert entry.id == incoming.id
        metadata = None
        try:
            os.fsync(incoming.fd)
            message = os.path.join(self.path, entry.id + ".eml")
            with self._shared():
                # written under the shared lock, so a clean-up cannot take it
                # for a crashed run's temporary
                metadata = self._write_metadata(entry)
                os.rename(incoming.path, message)
                try:
                    _fsync_dir(self.path)
                    os.rename(metadata, os.path.join(self.path, entry.id + ".json"))
                    metadata = None
                    _fsync_dir(self.path)
                except BaseException:
                    # the metadata never got in: the entry does not exist
                    _unlink(os.path.join(self.path, entry.id + ".json"))
                    _unlink(message)
                    raise
        finally:
            if metadata is not None:
                _unlink(metadata)
            incoming.discard()

    # ------------------------------------------------------------ reading

    def scan(self) -> Scan:
        """The entries in the queue, oldest first, and what is wrong in it."""
        result = Scan()
        try:
            names = sorted(os.listdir(self.path))
        except OSError as e:
            result.problems.append(f"{self.path}: cannot read the queue: {e.strerror}")
            return result
        present = set(names)
        for name in names:
            if name in _KNOWN:
                continue
            path = os.path.join(self.path, name)
            stem, dot, suffix = name.rpartition(".")
            if not dot or not valid_id(stem) or suffix not in ("eml", "json"):
                result.problems.append(f"{path}: not a queue file, skipped")
                continue
            if suffix == "eml":
                if stem + ".json" not in present:
                    result.orphans.append(stem)
                continue
            try:
                entry = Entry.from_json(_read_limited(path, MAX_METADATA), stem)
            except BadEntry as e:
                result.problems.append(f"{path}: unusable entry ({e}), skipped")
                continue
            except OSError as e:
                if e.errno != errno.ENOENT:  # gone meanwhile: delivered by another run
                    result.problems.append(f"{path}: cannot read: {e.strerror}, skipped")
                continue
            if stem + ".eml" not in present:
                result.problems.append(f"{path}: entry without its message, skipped")
                continue
            result.entries.append(entry)
        result.entries.sort(key=lambda e: (e.created, e.id))
        return result

    def read(self, entry_id: str) -> Entry | None:
        """The metadata of entry ``entry_id``, or None when there is no usable one."""
        if not valid_id(entry_id):
            return None
        try:
            return Entry.from_json(
                _read_limited(os.path.join(self.path, entry_id + ".json"), MAX_METADATA),
                entry_id)
        except (OSError, BadEntry):
            return None

    # ------------------------------------------------------------ claiming

    def claim(self, entry_id: str) -> Claim | None:
        """Hold the entry, or None if another process holds it or it is gone."""
        if not valid_id(entry_id):
            return None
        path = os.path.join(self.path, entry_id + ".eml")
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            # the entry may have been sent and removed between our open() and
            # the lock: it is ours only if the name still leads to this file
            if os.stat(path, follow_symlinks=False).st_ino != os.fstat(fd).st_ino:
                raise FileNotFoundError
            entry = self.read(entry_id)
            if entry is None:
                raise FileNotFoundError
        except OSError:  # BlockingIOError: held elsewhere; FileNotFoundError: gone
            os.close(fd)
            return None
        return Claim(self, entry, fd)

    def update(self, claim: Claim) -> None:
        """Write the claimed entry's metadata (attempts, next attempt, error)."""
        metadata = None
        try:
            with self._shared():
                metadata = self._write_metadata(claim.entry)
                os.rename(metadata, os.path.join(self.path, claim.entry.id + ".json"))
                metadata = None
                _fsync_dir(self.path)
        finally:
            if metadata is not None:
                _unlink(metadata)

    def remove(self, claim: Claim) -> None:
        """The claimed entry is done with (delivered, dropped): metadata first,
        so a crash in between leaves only an orphan message."""
        entry_id = claim.entry.id
        with self._shared():
            os.unlink(os.path.join(self.path, entry_id + ".json"))
            _unlink(os.path.join(self.path, entry_id + ".eml"))
            _fsync_dir(self.path)
        claim.release()

    def move_to_failed(self, claim: Claim) -> None:
        """Give up on the claimed entry: both files go to ``failed/`` (message
        first; :meth:`clean` finishes a move a crash interrupted)."""
        entry_id = claim.entry.id
        metadata = None
        try:
            with self._shared():
                metadata = self._write_metadata(claim.entry)
                os.rename(os.path.join(self.path, entry_id + ".eml"),
                          os.path.join(self.failed, entry_id + ".eml"))
                os.rename(metadata, os.path.join(self.failed, entry_id + ".json"))
                metadata = None
                _fsync_dir(self.failed)
                os.unlink(os.path.join(self.path, entry_id + ".json"))
                _fsync_dir(self.path)
        finally:
            if metadata is not None:
                _unlink(metadata)
        claim.release()

    # ------------------------------------------------------------ cleaning up

    def clean(self) -> list[str]:
        """Remove what crashed runs left: temporaries nobody holds, messages
        without metadata; finish interrupted moves to ``failed/``.  Returns a
        line for each thing done.  Skipped (returns []) while any other process
        is in the middle of changing the queue."""
        done: list[str] = []
        with self._locked(fcntl.LOCK_EX, timeout=0) as got:
            if not got:
                return done
            try:
                names = os.listdir(self.tmp)
            except OSError:
                names = []
            for name in names:
                path = os.path.join(self.tmp, name)
                if _abandoned(path):
                    _unlink(path)
                    done.append(f"{path}: removed a temporary file a crashed run left")
            # names only, no metadata read: the exclusive lock holds every
            # writer back, so this stays short however long the queue is
            names = os.listdir(self.path)
            present = set(names)
            for name in names:
                stem, _, suffix = name.rpartition(".")
                if suffix != "eml" or not valid_id(stem) or stem + ".json" in present:
                    continue
                path = os.path.join(self.path, name)
                if _abandoned(path):
                    _unlink(path)
                    done.append(f"{path}: removed a message without metadata "
                                "(never reported as queued, or already sent)")
            for name in names:
                stem, _, suffix = name.rpartition(".")
                if suffix != "json" or not valid_id(stem):
                    continue
                if stem + ".eml" in present:
                    continue
                if os.path.exists(os.path.join(self.failed, stem + ".eml")):
                    target = os.path.join(self.failed, stem + ".json")
                    if os.path.exists(target):
                        _unlink(os.path.join(self.path, name))
                    else:
                        os.rename(os.path.join(self.path, name), target)
                    done.append(f"{stem}: finished its interrupted move to failed/")
            if done:
                _fsync_dir(self.path)
        return done


def _abandoned(path: str) -> bool:
    """Whether nobody holds ``path``'s flock() (so its writer is gone)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
