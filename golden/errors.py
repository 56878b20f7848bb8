"""The one exception type for a user's mistake (bad file, bad option, bad shape)."""


class UserError(Exception):
    """A mistake in what the user gave us. The CLI prints ``error: <message>`` and exits 2.

    The message is one line: what is wrong, and what is allowed.
    """
