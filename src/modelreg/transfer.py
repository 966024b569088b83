"""Moving artifacts between the user's disk and the artifact store.

:func:`store_artifact` is the storing half of ``Registry.register``: it collects the files of a
file or folder artifact, hashes each one, uploads the content the store does not hold yet and
returns the :class:`~modelreg.models.Artifact` record to commit.

Inputs are checked strictly; nothing is skipped silently:

- a file artifact that is itself a symlink is stored with its target's content, and the target is
  recorded in ``Artifact.symlink_target``;
- inside a folder, a symlink (to a file or a folder) that resolves inside the folder is stored as
  the content it points to, under the link's path;
- a symlink that leaves the folder is refused unless ``follow_symlinks=True``; a dangling link, a
  symlink loop, a FIFO, a socket or a device is always refused (a FIFO is never opened: opening it
  for reading would block).

How a file is read:

- a file of at least :data:`SINGLE_PASS_MIN` bytes, on a store that hashes what it writes
  (``ArtifactStore.hashes_on_put``: local disk), is stored in one pass with
  ``ArtifactStore.put_file_hashed``: read once, hashed while it is written, published under the
  digest of the bytes written (progress phase ``upload`` only);
- any other file is hashed first (phase ``hash``; all files of a folder before any upload), then
  uploaded with ``put_file`` (phase ``upload``); on a store on this machine the uploaded blob is
  read back and hashed.

A file that changes while it is registered is detected: each file is stat-ed (size, mtime, ctime,
inode) before it is read, after it was read (also through the descriptor: a file deleted or renamed
over meanwhile is caught), before and after uploading. A change raises
:class:`~modelreg.errors.ArtifactChangedError` before anything is committed, and a blob this call
uploaded under a digest its content may not match (or, in one pass, any blob this call created) is
deleted.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .errors import ArtifactChangedError, InvalidInputError, Message, ModelregError, Remedy
from .hashing import ProgressFn, sha256_bytes, sha256_stream
from .models import Artifact, FileEntry
from .stores.base import ArtifactStore
from .validation import check_relpath

__all__ = ["SourceFile", "collect_files", "manifest_digest", "store_artifact"]

FOLLOW_HINT = Remedy(
    "pass follow_symlinks=True to store what it points to", "pass --follow-symlinks to store what it points to"
)

_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_BINARY", 0)
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_CLOEXEC", 0)
)
"""How a source file is opened for hashing: never through a symlink swapped in after collection
(the path opened is always a resolved one), and without blocking if a FIFO appeared there since
(it is then refused by its fstat)."""

SINGLE_PASS_MIN = 32 * 1024 * 1024
"""Files of at least this many bytes are stored in one pass where the store offers it
(``ArtifactStore.hashes_on_put``). Smaller ones are hashed, then uploaded, then read back: for
them the extra reads cost little, and comparing two reads also catches a rewrite that leaves the
file's size and times unchanged (which one pass cannot see)."""


def manifest_digest(files: list[FileEntry]) -> str:
    """The digest of a folder artifact: sha256 of its manifest (path, digest, size of each file, in order)."""
    payload = json.dumps([[f.path, f.digest, f.size] for f in files], separators=(",", ":")).encode()
    return sha256_bytes(payload)


@dataclass(frozen=True)
class SourceFile:
    """One file to store: its path in the artifact, the resolved path to read and the path to show."""

    rel: str
    path: str
    shown: str


Key = tuple[int, int, int, int, int]


def _key(st: os.stat_result) -> Key:
    """What must not change while a file is registered: device, inode, size, mtime and ctime."""
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def _what(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    return "a special file"


def _special(shown: str, mode: int, via: str = "", *, member: bool = True) -> InvalidInputError:
    todo = (
        "remove it from the folder (or register a folder without it)"
        if member
        else "register a regular file or a folder"
    )
    return InvalidInputError(
        f"{shown!r} is {via}{_what(mode)}; only regular files and folders (and symlinks to them) can be "
        f"registered: {todo}"
    )


def _readlink(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return "?"


def _resolve_link(path: str, shown: str) -> str:
    """The fully resolved target of the symlink ``path``; a dangling link or a loop is refused."""
    try:
        return os.path.realpath(path, strict=True)
    except OSError as exc:
        target = _readlink(path)
        if exc.errno == errno.ELOOP:
            raise InvalidInputError(
                f"{shown!r} is a symlink loop (it points to {target!r}, which leads back to itself); "
                "remove or fix the link, then register again"
            ) from None
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            raise InvalidInputError(
                f"{shown!r} is a dangling symlink: it points to {target!r}, which does not exist; "
                "remove the link or restore its target, then register again"
            ) from None
        raise InvalidInputError(f"cannot resolve the symlink {shown!r} (to {target!r}): {exc.strerror}") from None


def _stat(path: str, shown: str) -> os.stat_result:
    try:
        return os.stat(path)
    except OSError as exc:
        raise InvalidInputError(f"cannot read {shown!r}: {exc.strerror}") from None


def _inside(path: str, root: str) -> bool:
    try:
        return os.path.commonpath([path, root]) == root
    except ValueError:  # different drives on Windows
        return False


def collect_files(
    src: Path, *, follow_symlinks: bool = False
) -> tuple[Literal["file", "directory"], list[SourceFile], str | None]:
    """(kind, files, symlink target of ``src`` or None) for a file or folder artifact.

    Folder members come in the order of the manifest (each folder's files by name, then its
    subfolders by name), which the folder digest depends on.
    """
    shown = str(src)
    try:
        lst = os.lstat(src)
    except FileNotFoundError:
        raise InvalidInputError(f"artifact path {shown!r} does not exist") from None
    except OSError as exc:
        raise InvalidInputError(f"cannot read the artifact path {shown!r}: {exc.strerror}") from None
    target: str | None = None
    real = os.fspath(src)
    st = lst
    if stat.S_ISLNK(lst.st_mode):
        target = real = _resolve_link(real, shown)
        st = _stat(real, shown)
    if stat.S_ISREG(st.st_mode):
        return "file", [SourceFile(rel=src.name, path=real, shown=shown)], target
    if stat.S_ISDIR(st.st_mode):
        root = os.path.realpath(real)
        files = list(_walk(real, "", shown, root, {(st.st_dev, st.st_ino)}, follow_symlinks))
        if not files:
            raise InvalidInputError(f"folder {shown!r} contains no files; nothing to register")
        return "directory", files, target
    raise _special(shown, st.st_mode, f"a symlink to {_readlink(shown)!r}, " if target else "", member=False)


def _walk(
    folder: str, prefix: str, root_shown: str, root: str, ancestors: set[tuple[int, int]], follow: bool
) -> Iterator[SourceFile]:
    """The files under ``folder`` (a resolved path) as artifact path ``prefix``; ``ancestors`` are the
    folders being walked (a symlink to one of them is a loop)."""
    folder_shown = os.path.join(root_shown, prefix.rstrip("/")) if prefix else root_shown
    try:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        raise InvalidInputError(f"cannot list the folder {folder_shown!r}: {exc.strerror}") from None
    subfolders: list[tuple[str, str, os.stat_result, str, str]] = []
    for entry in entries:
        rel = prefix + entry.name
        shown = os.path.join(root_shown, rel)
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError as exc:
            raise InvalidInputError(f"cannot read {shown!r}: {exc.strerror}") from None
        path = entry.path
        via = ""
        if stat.S_ISLNK(st.st_mode):
            path = _resolve_link(entry.path, shown)
            if not follow and not _inside(path, root):
                raise InvalidInputError(
                    Message(
                        f"{shown!r} is a symlink to {_readlink(entry.path)!r}, outside the folder {root_shown!r}; "
                        "modelreg stores only content inside the artifact folder unless asked: ",
                        FOLLOW_HINT,
                        ", or replace the link with a copy of its target",
                    )
                )
            st = _stat(path, shown)
            via = f"a symlink to {_readlink(entry.path)!r}, "
        if stat.S_ISREG(st.st_mode):
            yield SourceFile(rel=check_relpath(rel), path=path, shown=shown)
        elif stat.S_ISDIR(st.st_mode):
            subfolders.append((rel, path, st, shown, via))
        else:
            raise _special(shown, st.st_mode, via)
    for rel, path, st, shown, via in subfolders:
        key = (st.st_dev, st.st_ino)
        if key in ancestors:
            raise InvalidInputError(
                f"{shown!r} is {via}a folder that contains it: a symlink loop; remove the link or register "
                "a folder without it"
            )
        ancestors.add(key)
        yield from _walk(path, rel + "/", root_shown, root, ancestors, follow)
        ancestors.discard(key)


# -- change detection ----------------------------------------------------------------------------
def _changed(f: SourceFile, why: str) -> ArtifactChangedError:
    return ArtifactChangedError(
        f"{f.shown!r} changed while it was being registered ({why}); nothing was registered. "
        "Register again once the file is no longer being written"
    )


def _check_unchanged(f: SourceFile, before: Key, when: str) -> None:
    try:
        now = os.stat(f.path)
    except OSError as exc:
        raise _changed(f, f"it could not be read {when}: {exc.strerror}") from None
    if _key(now) != before:
        raise _changed(f, f"its size, time or inode differ {when}")


def _open(f: SourceFile) -> tuple[int, os.stat_result]:
    """Open a source file for reading; return its descriptor and its stat, checked to be that of
    the regular file the path named just before."""
    st = _stat(f.path, f.shown)
    if not stat.S_ISREG(st.st_mode):  # replaced since it was collected: never open a FIFO
        raise _changed(f, f"it is now {_what(st.st_mode)}")
    try:
        fd = os.open(f.path, _OPEN_FLAGS)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ELOOP):
            raise _changed(f, "it was removed or replaced") from None
        raise InvalidInputError(f"cannot read {f.shown!r}: {exc.strerror}") from None
    opened = os.fstat(fd)
    if not stat.S_ISREG(opened.st_mode) or _key(opened) != _key(st):
        os.close(fd)
        raise _changed(f, "it was replaced before it could be read")
    return fd, st


def _read_whole(f: SourceFile, fd: int, st: os.stat_result, size: int, what: str) -> ArtifactChangedError | None:
    """The change, if any, seen through the descriptor ``fd`` once the file was read (``size``
    bytes where ``st`` promised ``st.st_size``)."""
    after = os.fstat(fd)
    if after.st_nlink == 0:  # unlinked: deleted, or a new file was renamed over it
        return _changed(
            f,
            "it was replaced by a new file while it was read"
            if os.path.lexists(f.path)
            else "it was deleted while it was read",
        )
    if size != st.st_size:
        return _changed(f, f"{size} bytes were read where {st.st_size} were expected")
    if _key(after) != _key(st):
        return _changed(f, f"its size, time or inode differ after {what}")
    return None


def _hash(f: SourceFile, progress: ProgressFn | None) -> tuple[FileEntry, Key]:
    """Hash one file; return its entry and the stat key it must keep until it is uploaded."""
    fd, st = _open(f)
    with open(fd, "rb", buffering=0) as stream:
        digest, size = sha256_stream(stream, total=st.st_size, progress=progress)
        failure = _read_whole(f, fd, st, size, "hashing")
        if failure is not None:
            raise failure
    before = _key(st)
    _check_unchanged(f, before, "after hashing")
    return FileEntry(path=f.rel, digest=digest, size=size), before


def _store_in_one_pass(artifacts: ArtifactStore, f: SourceFile, progress: ProgressFn | None) -> FileEntry:
    """Store one file with ``put_file_hashed`` (a store that hashes what it writes: the digest is
    that of the stored bytes), with the change detection around it: the stat before, the open
    descriptor after (the store reads the file by its path), the stat after. On a change the blob
    this call created is deleted (it matches its digest, but holds content that may never have been
    the whole file)."""
    fd, st = _open(f)
    before = _key(st)
    with open(fd, "rb", buffering=0):  # held open: it tells whether the file was deleted or renamed over
        try:
            stored = artifacts.put_file_hashed(f.path, progress=progress)
        except Exception:
            _check_unchanged(f, before, "while uploading")  # a change explains the failure: say so
            raise
        failure = _read_whole(f, fd, st, stored.size, "uploading")
    if failure is None:
        try:
            _check_unchanged(f, before, "after uploading")
        except ArtifactChangedError as exc:
            failure = exc
    if failure is None:
        return FileEntry(path=f.rel, digest=stored.digest, size=stored.size)
    if stored.created:  # a blob stored before may be shared: only this call's is deleted
        with contextlib.suppress(ModelregError):  # left behind, it still matches its digest: gc removes it
            artifacts.delete(stored.digest)
    raise failure


def _blob_matches(artifacts: ArtifactStore, entry: FileEntry) -> bool:
    """Read the stored blob back and check that it hashes to its digest (stores on this machine only)."""
    try:
        with artifacts.open(entry.digest) as stream:
            digest, size = sha256_stream(stream, total=entry.size)
    except ModelregError:
        return False
    return digest == entry.digest and size == entry.size


def _upload(
    artifacts: ArtifactStore, f: SourceFile, entry: FileEntry, before: Key, progress: ProgressFn | None
) -> None:
    """``put_file`` with the change detection around it; a blob this call uploaded under a digest
    its content may not match is deleted before the error is raised."""
    _check_unchanged(f, before, "before uploading")
    new = not artifacts.exists(entry.digest)  # a blob stored before may be shared: never delete it
    failure: ArtifactChangedError | None = None
    try:
        # put_file deduplicates: a stored blob is reused (and its time refreshed for gc's grace
        # period); a missing one, or one that fails verification, is uploaded.
        artifacts.put_file(entry.digest, f.path, progress=progress)
    except Exception:
        try:
            _check_unchanged(f, before, "while uploading")  # a change explains the failure: say so
        except ArtifactChangedError:
            if new:  # in case the failure came after the blob was published
                with contextlib.suppress(Exception):
                    artifacts.delete(entry.digest)
            raise
        raise
    try:
        _check_unchanged(f, before, "after uploading")
    except ArtifactChangedError as exc:
        failure = exc
    verified: bool | None = None
    if new and not getattr(artifacts, "remote", True):  # hash what was actually stored
        verified = _blob_matches(artifacts, entry)
        if not verified and failure is None:
            failure = _changed(f, "the uploaded content differs from what was hashed")
    if failure is None:
        return
    if not new:
        # put_file may have replaced a stored (damaged) blob from the file that then changed:
        # flag the digest, so the next registration of this content re-uploads it
        with contextlib.suppress(Exception):
            artifacts.mark_suspect(entry.digest)
    if new and verified is not True:
        try:
            artifacts.delete(entry.digest)
        except ModelregError as exc:
            raise ArtifactChangedError(
                f"{failure} The blob {entry.digest} uploaded from it may not match its digest and could not be "
                f"deleted ({exc}): delete it (or run gc) before registering this content again"
            ) from None
    raise failure


def store_artifact(
    artifacts: ArtifactStore,
    src: Path,
    *,
    format: str | None = None,
    progress: ProgressFn | None = None,
    follow_symlinks: bool = False,
) -> Artifact:
    """Collect, hash and upload the file or folder ``src``; return the Artifact record to commit.

    Raises InvalidInputError for inputs that cannot be registered (see the module docstring) and
    ArtifactChangedError when a file changed while it was read or uploaded.
    """
    kind, files, target = collect_files(src, follow_symlinks=follow_symlinks)
    one_pass = getattr(artifacts, "hashes_on_put", False)
    entries: list[FileEntry] = []
    hashed: list[tuple[SourceFile, FileEntry, Key]] = []
    for f in files:
        if one_pass and _stat(f.path, f.shown).st_size >= SINGLE_PASS_MIN:
            entries.append(_store_in_one_pass(artifacts, f, progress))
        else:
            entry, before = _hash(f, progress)
            entries.append(entry)
            hashed.append((f, entry, before))
    for f, entry, before in hashed:
        _upload(artifacts, f, entry, before, progress)
    digest = entries[0].digest if kind == "file" else manifest_digest(entries)
    return Artifact(
        kind=kind,
        name=src.name or "artifact",
        digest=digest,
        size=sum(e.size for e in entries),
        files=entries,
        format=format,
        symlink_target=target,
    )
