"""Errors of the namespaces isolation provider."""

from __future__ import annotations

from shoal.errors import ShoalError


class ExecError(ShoalError):
    """A container process could not run its program.

    ``exit_code`` is what Docker reports for it: 127 when the command is not found, 126
    when it is not executable (or the user, working directory... cannot be applied).
    """

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code
