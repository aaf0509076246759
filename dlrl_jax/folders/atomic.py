"""Folders written whole or not at all: a model export goes into a temporary folder beside its target
and replaces the target in one rename, so a kill or a full disk mid-export leaves the previous
folder intact (never a half-written one under the target's name). Its last file is a manifest of
content hashes (`SHA256SUMS`, dlrl_jax.folders.manifest) of everything written into it, checked by
`dlrl-jax eval`.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fnmatch
import os
import shutil
import tempfile

from dlrl_jax.folders.manifest import write_manifest

_RENAME_EXCHANGE = 2  # linux/fs.h
_AT_FDCWD = -100
# What an export writes: a replaced folder's own copies of these are stale; anything else in it (an
# eval/ folder of results, notes) moves over to the new folder.
EXPORT_PATTERNS = ("*.safetensors", "*.safetensors.index.json", "config.json", "SHA256SUMS")


def _exchange(a: str, b: str) -> bool:
    """Swaps two paths atomically (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):  # file system or kernel without it
        return False
    raise OSError(code, os.strerror(code), b)


def _fsync_tree(folder: str) -> None:
    for root, _, files in os.walk(folder):
        for name in files:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


@contextlib.contextmanager
def replace_folder(path: str, own_patterns: tuple[str, ...] = EXPORT_PATTERNS):
    """Yields an empty temporary folder in `path`'s parent; when the block ends without an error it
    gets a SHA256SUMS manifest of what the block wrote and becomes `path` in one step (the old folder's
    entries that match none of `own_patterns` and that the new folder lacks are moved into it). On an
    error the temporary folder is removed and `path` is untouched."""
    path = os.path.abspath(path)
    parent, name = os.path.split(path)
    os.makedirs(parent, exist_ok=True)
    if os.path.exists(path) and not os.path.isdir(path):
        raise NotADirectoryError(errno.ENOTDIR, "the export target is a file, not a folder", path)
    for stale in os.listdir(parent):  # left by an export killed before its rename
        if fnmatch.fnmatch(stale, f".{name}.tmp-*"):
            shutil.rmtree(os.path.join(parent, stale), ignore_errors=True)
    tmp = tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=parent)
    try:
        yield tmp
        write_manifest(tmp)  # an export nested in another is listed again, whole, by the outer one
        _fsync_tree(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; an export is an ordinary folder
    if not os.path.isdir(path):
        os.rename(tmp, path)
        return
    old = tmp
    if not _exchange(tmp, path):  # two renames: a kill between them leaves both folders, under other names
        old = f"{path}.old-{os.getpid()}"
        os.rename(path, old)
        os.rename(tmp, path)
    for entry in os.listdir(old):
        if not os.path.exists(os.path.join(path, entry)) and \
                not any(fnmatch.fnmatch(entry, p) for p in own_patterns):
            os.rename(os.path.join(old, entry), os.path.join(path, entry))
    shutil.rmtree(old, ignore_errors=True)
