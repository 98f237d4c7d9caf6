"""Writing a file so that a crash or an error never leaves half of it behind."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write(path, write) -> Path:
    """Call ``write(binary_file)`` on a temporary file next to ``path``, then move it into place.

    The target is either untouched or complete: ``os.replace`` swaps the finished
    file in, and on any error the temporary file is removed. Missing parent folders
    are created. A killed process can leave the temporary file (``.<name>.*.tmp``);
    the training loop removes those at its next start.
    """
    path = Path(path)
    directory = path.absolute().parent
    directory.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        os.chmod(temporary, 0o666 & ~_umask())   # as open() would create it (mkstemp makes 0600)
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


def _umask() -> int:
    mask = os.umask(0)     # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask
