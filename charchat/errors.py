"""The error types the core raises: their messages are written for a person."""


class CharchatError(Exception):
    """A problem the user can act on; the edges print str(error) as one line."""

    exit_code = 1


class BadInput(CharchatError):
    """The command line or the piped script is wrong: exit status 2, as for usage errors."""

    exit_code = 2


class Stopped(CharchatError):
    """The person asked the action to stop (Ctrl+C): it ended early and changed nothing."""


class CommandError(CharchatError):
    """A slash command that cannot be applied; the session is left unchanged."""
