"""Publishing a finished output: temporary name -> final name, with ordinary permissions.

Outputs are written under a temporary name in the destination folder and renamed when complete, so a
crash never leaves a half-written file under the final name. ``tempfile`` creates those temporaries
private (0600 files, 0700 folders); :func:`publish` gives them the permissions a plain ``open`` would
(the process's umask applied) right before the rename.
"""

from __future__ import annotations

import os


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def publish(tmp: str | os.PathLike[str], final: str | os.PathLike[str]) -> None:
    """Rename the finished ``tmp`` (file or folder) to ``final``, atomically, with umask permissions."""
    mode = 0o777 if os.path.isdir(tmp) else 0o666
    os.chmod(tmp, mode & ~_umask())
    os.replace(tmp, final)
