"""Errors a user can cause and fix.

The command line catches :class:`UserError` at its boundary, prints its message as one sentence on
stderr and exits with status 2. Everything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input (file, model directory, option) described in one sentence."""


class ConfigError(UserError):
    """A configuration value is missing, unknown or out of range."""


class IdentityMismatch(UserError):
    """Data made by one backend (tokenizer, encoder) was handed to a different one."""
