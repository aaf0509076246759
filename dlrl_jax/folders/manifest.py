"""Content manifests: a folder's `SHA256SUMS` lists the sha256 of every file it held when it was
written (sha256sum's format, so `sha256sum -c SHA256SUMS` inside the folder checks it too). Orbax keeps
no checksums of its own: without this, a flipped bit inside an array file is restored silently.

The manifest is written atomically (a temporary file renamed over it), after everything it lists is
final; a folder without one (written before manifests existed) verifies as "unknown", not as bad.
Files added to the folder later (an eval/ folder beside an export) are not part of it.
"""

from __future__ import annotations

import concurrent.futures
import errno
import hashlib
import os
import re

from dlrl_jax.folders.errors import CheckpointError

MANIFEST = "SHA256SUMS"
_LINE = re.compile(r"^([0-9a-f]{64})  (.+)$")
# Reading a listed file fails this way only when its content is gone or broken (not for lack of threads,
# memory or file handles, which say nothing about the checkpoint).
_CONTENT_ERRNOS = (errno.ENOENT, errno.EISDIR, errno.ENOTDIR, errno.EIO, errno.ELOOP)


class ManifestMismatch(CheckpointError):
    """A file differs from the folder's manifest (changed, missing, or the manifest itself malformed);
    the message names the file."""

    def __init__(self, folder: str, name: str, problem: str):
        self.folder, self.name = folder, name
        super().__init__(f"{os.path.join(folder, name)}: {problem}")


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _in_threads(fn, items) -> list:
    """[fn(item) for item in items], several files hashed at a time (hashlib lets other threads run
    while it hashes; an 8B model's checkpoint is ~100 GB); the first failure in `items` order is raised."""
    items = list(items)
    if len(items) < 2:
        return [fn(item) for item in items]
    with concurrent.futures.ThreadPoolExecutor(min(8, os.cpu_count() or 1, len(items))) as pool:
        return list(pool.map(fn, items))


def _files(folder: str) -> list[str]:
    """Every regular file under `folder` (relative, '/'-separated, sorted), the manifest and its
    temporary files left out."""
    names = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in files:
            rel = os.path.relpath(os.path.join(root, name), folder).replace(os.sep, "/")
            if rel == MANIFEST or rel.startswith(f".{MANIFEST}.tmp-"):
                continue
            names.append(rel)
    return sorted(names)


def write_manifest(folder: str) -> str:
    """Hashes every file under `folder` and writes FOLDER/SHA256SUMS atomically (fsynced, then renamed
    into place); returns its path."""
    names = _files(folder)
    for rel in names:
        if "\n" in rel or "\\" in rel:  # (sha256sum would escape these; no writer of ours makes them)
            raise CheckpointError(f"{os.path.join(folder, rel)}: a file name with a newline or backslash cannot "
                                  "be listed in a manifest")
    digests = _in_threads(file_sha256, [os.path.join(folder, rel) for rel in names])
    lines = [f"{digest}  {rel}\n" for rel, digest in zip(names, digests)]
    path = os.path.join(folder, MANIFEST)
    tmp = os.path.join(folder, f".{MANIFEST}.tmp-{os.getpid()}")
    with open(tmp, "w") as f:
        f.writelines(lines)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)  # the rename itself survives a power cut
    finally:
        os.close(fd)
    return path


def read_manifest(folder: str) -> dict[str, str] | None:
    """{relative path: sha256} of FOLDER/SHA256SUMS, None when there is none; a malformed line or a path
    outside the folder raises ManifestMismatch naming the manifest."""
    path = os.path.join(folder, MANIFEST)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ManifestMismatch(folder, MANIFEST, "the manifest is not text (damaged)") from None
    listed = {}
    for number, line in enumerate(text.splitlines(), 1):
        match = _LINE.match(line)
        if not match:
            raise ManifestMismatch(folder, MANIFEST, f"line {number} is not '<sha256>  <file>' (damaged manifest)")
        digest, rel = match.groups()
        parts = rel.split("/")
        if rel.startswith("/") or ".." in parts or "" in parts:
            raise ManifestMismatch(folder, MANIFEST, f"line {number} names {rel!r}, a path outside the folder")
        listed[rel] = digest
    if not listed:
        raise ManifestMismatch(folder, MANIFEST, "the manifest lists no files (damaged)")
    return listed


def verify_manifest(folder: str) -> bool:
    """True when every file FOLDER/SHA256SUMS lists has its listed sha256; False when the folder has no
    manifest. A changed, missing or unreadable-for-content file raises ManifestMismatch naming it; any
    other OSError (no memory, threads or file handles) is raised as it is: it says nothing of the content."""
    listed = read_manifest(folder)
    if listed is None:
        return False

    def digest_of(rel):
        try:
            return file_sha256(os.path.join(folder, rel))
        except OSError as e:
            if e.errno not in _CONTENT_ERRNOS:
                raise
            what = "listed in the manifest but missing" if e.errno == errno.ENOENT else \
                f"listed in the manifest but unreadable ({e.strerror})"
            raise ManifestMismatch(folder, rel, what) from None

    for (rel, digest), actual in zip(listed.items(), _in_threads(digest_of, listed)):
        if actual != digest:
            raise ManifestMismatch(folder, rel, f"sha256 {actual[:12]}... differs from {digest[:12]}... in its "
                                                f"{MANIFEST} (the file changed after it was written)")
    return True
