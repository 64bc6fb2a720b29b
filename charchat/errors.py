"""The one error type the core raises: its message is written for a person."""


class CharchatError(Exception):
    """A problem the user can act on; the edges print str(error) as one line."""
