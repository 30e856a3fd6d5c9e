"""Errors that the CLI turns into one clear line and a non-zero exit code."""


class EdgesegError(Exception):
    """A user-facing error: bad input, a missing file, a failed gate.

    ``exit_code`` is what the CLI exits with (1 for failures, 2 for unusable input).
    """

    exit_code: int = 1

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class InputError(EdgesegError):
    """Unusable input: a file that does not exist or cannot be read, a bad value."""

    exit_code = 2


class GateFailed(EdgesegError):
    """A validation or accuracy gate failed; nothing was written."""

    exit_code = 1
