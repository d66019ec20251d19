"""The project's own error types: the only ones the CLI prints as one line (exit code 2).

Anything else that escapes a command is a bug and shows its traceback. A user error names the file
or the setting and the reason. Each type also derives from the builtin a caller would expect
(`ValueError`, `FileNotFoundError`, ...), so library code can catch it the usual way. Modules whose
own imports are heavy (MLflow, DeepSpeed) derive from these too, so the CLI catches their errors
without importing those modules at start-up.
"""

__all__ = ["DivergedError", "InputError", "MissingFileError", "UserError"]


class UserError(Exception):
    """Printed by the CLI as `indextts-dist CMD: error: MESSAGE`, exit code 2."""


class InputError(UserError, ValueError):
    """A setting, a file's content or a text the user gave cannot be used as it is."""


class MissingFileError(UserError, FileNotFoundError):
    """A file or folder the user named (or the layout requires) is not there."""


class DivergedError(UserError, FloatingPointError):
    """Training produced non-finite losses until it gave up: a learning-rate or data problem."""
