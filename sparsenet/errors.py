"""The errors sparsenet reports to a user as one line: bad input or state that the user can fix.

``sparsenet``'s command line turns a :class:`SparsenetError` (and an ``OSError``, which names
its file) into ``Error: <message>``; any other exception is a bug and shows its traceback.
The path-carrying subclasses keep ``ValueError`` as a second base so that callers written
against the older API (``except ValueError``) keep working.
"""

from __future__ import annotations

import os


class SparsenetError(Exception):
    """Base class: the message says what is wrong, where, and how to fix it."""


class _PathError(SparsenetError, ValueError):
    """An error about one file or folder: ``str(err)`` is ``"<path>: <problem>"``."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class ShardError(_PathError):
    """A shard file or folder is missing, corrupt, foreign, or of an unsupported version."""


class DatasetError(_PathError):
    """A dataset folder cannot be written or read as one: it holds foreign files, another writer holds it,
    or its splits come from different conversions."""


class CheckpointError(_PathError):
    """A checkpoint is missing, corrupt, foreign, or does not match what it is used with."""


class RunError(_PathError):
    """A run folder cannot be used: it holds something else, another process writes it, or it cannot continue."""


class ConfigError(SparsenetError, ValueError):
    """A configuration or option value is invalid; the message names the field and what it must be."""


class RawDataError(SparsenetError):
    """Raw data is missing, unreadable or malformed; the message names the file and the fix."""

    def __init__(self, message: str):
        self.message = message
        super().__init__(message)
