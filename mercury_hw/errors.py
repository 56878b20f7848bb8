"""The hardware package's own error type for its tools (generation, lint, synthesis).

``mercury_hw`` never imports the golden model, so its tools cannot raise
``golden.errors.UserError``;
they raise :class:`HardwareToolError` instead (an invalid configuration value stays
:class:`mercury_hw.config.ConfigError`). The command line prints either as one line
``error: ...`` and exits 2.
"""


class HardwareToolError(Exception):
    """A tool of the hardware flow cannot do what was asked: a missing program, a design that does
    not fit the chosen part, a tool that failed. The message is one line: what, and what to do."""
