"""Checks and messages about input files that need no media library (so that reading a FLAC or WAV file never
imports PyAV)."""

from __future__ import annotations

import os

from v2meow.errors import UserError


def check_file(path: str, what: str = "media") -> None:
    """Raise :class:`UserError` for a missing, non-regular or empty file."""
    if not os.path.exists(path):
        raise UserError(f"The {what} file {path} does not exist.")
    if not os.path.isfile(path):
        raise UserError(f"The {what} path {path} is not a regular file.")
    if os.path.getsize(path) == 0:
        raise UserError(f"The {what} file {path} is empty.")


def short_error(e: BaseException) -> str:
    """A short description of a reading or writing error, without the file name repeated."""
    msg = getattr(e, "strerror", None) or str(e) or type(e).__name__
    return str(msg).rstrip(".")
