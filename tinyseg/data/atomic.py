"""Writing a file so that a crash or an error never leaves half of it behind."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write(path, write) -> Path:
    """Call ``write(binary_file)`` on a temporary file next to ``path``, then move it into place.

    The target is either untouched or complete: ``os.replace`` swaps the finished
    file in, and on any error the temporary file is removed. Missing parent folders
    are created.
    """
    path = Path(path)
    directory = path.absolute().parent
    directory.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    return path
