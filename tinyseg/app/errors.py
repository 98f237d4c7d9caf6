"""What counts as an error the user can fix, and the one line that tells them.

The command line (``cli.run_command``) and a distributed run (``distributed.comm``) report
such errors the same way: one line, no traceback. Any other exception is a bug of the
program and keeps its traceback.
"""
from __future__ import annotations


class TrainingDiverged(FloatingPointError):
    """The loss or the weights became NaN or infinite."""


# tinyseg's own errors derive from these (DatasetError and CheckpointError from ValueError,
# DeviceUnavailable from RuntimeError, OutputInUse from FileExistsError).
USER_ERRORS = (OSError, ValueError, RuntimeError, MemoryError, TrainingDiverged)
INTERRUPTED = "interrupted; files already written (checkpoints included) are complete"


def one_line(error) -> str:
    """The message of a user error as one line, naming the file of an OSError."""
    if isinstance(error, KeyboardInterrupt):
        return INTERRUPTED
    if isinstance(error, MemoryError):
        return "out of memory; try a smaller --batch-size or --size"
    message = str(error) or type(error).__name__
    if isinstance(error, OSError) and error.filename and str(error.filename) not in message:
        message = f"{message}: {error.filename}"
    return message.splitlines()[0]
