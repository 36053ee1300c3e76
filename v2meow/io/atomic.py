"""Publishing a finished output: temporary name -> final name, with ordinary permissions.

Outputs are written under a temporary name in the destination folder and renamed when complete, so a
crash never leaves a half-written file under the final name. ``tempfile`` creates those temporaries
private (0600 files, 0700 folders); :func:`publish` gives them the permissions a plain ``open`` would
(the process's umask applied) right before the rename.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator

from v2meow.errors import UserError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def publish(tmp: str | os.PathLike[str], final: str | os.PathLike[str]) -> None:
    """Rename the finished ``tmp`` (file or folder) to ``final``, atomically, with umask permissions."""
    mode = 0o777 if os.path.isdir(tmp) else 0o666
    os.chmod(tmp, mode & ~_umask())
    os.replace(tmp, final)


@contextlib.contextmanager
def staged_file(final: str | os.PathLike[str], suffix: str = "") -> Iterator[str]:
    """Yield a temporary path in ``final``'s folder to write; on success it is published as ``final``, on any
    error it is removed (``final`` is left as it was) and the error goes on."""
    final = os.fspath(final)
    folder = os.path.dirname(os.path.abspath(final))
    if not os.path.isdir(folder):
        raise UserError(f"The output folder {folder} does not exist.")
    fd, tmp = tempfile.mkstemp(prefix=".tmp-" + os.path.basename(final) + "-", suffix=suffix, dir=folder)
    os.close(fd)
    try:
        yield tmp
        publish(tmp, final)
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file, read in 1 MB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
