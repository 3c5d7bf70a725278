"""The exceptions the data package raises for problems with data on disk or its settings.

Both are :class:`~resnet_lightning.errors.UserError`: the command line prints them as one line.
"""

from resnet_lightning.errors import UserError


class DataError(UserError, RuntimeError):
    """A dataset is missing, incomplete, truncated or corrupt.

    Messages name the offending path, what was expected there, and what to do next
    (download it, point ``--data.data_dir`` elsewhere, or delete a corrupt file), so
    the CLI can print them as they are instead of a deep traceback.
    """


class DataConfigError(DataError, ValueError):
    """A DataModule argument is out of range (a batch size of 0, a split larger than the data).

    A ``ValueError`` for Python callers, and a ``DataError`` (a ``UserError``) so the CLI
    prints it as one line, like the other data problems, rather than as a traceback.
    """
