"""Exceptions raised for bad dataset files and folders.

Every message names the offending file or folder and says what was expected.
"""
from __future__ import annotations

from pathlib import Path


class DatasetError(ValueError):
    """A dataset file or folder is malformed, inconsistent or empty.

    ``path`` holds the file or folder at fault (or ``None``).
    """

    def __init__(self, message: str, path=None):
        super().__init__(message)
        self.path = Path(path) if path is not None else None


class MissingFileError(DatasetError, FileNotFoundError):
    """A file or folder the dataset needs does not exist."""
