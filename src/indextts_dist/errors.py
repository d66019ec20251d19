"""A light base for errors whose message is meant for the user (one line, no traceback).

Modules whose own imports are heavy (MLflow, DeepSpeed) derive from it so that the CLI can catch
their errors without importing those modules at start-up.
"""

__all__ = ["UserError"]


class UserError(Exception):
    """Printed by the CLI as `indextts-dist CMD: error: MESSAGE`, exit code 2."""
