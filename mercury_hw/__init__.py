"""mercury-hw: open RTL of MERCURY (input-similarity reuse for DNN training).

Importing this package is cheap: it pulls in neither Amaranth nor torch. The hardware blocks live
in submodules (``mercury_hw.siggen``, ``mercury_hw.mcache``, ``mercury_hw.pe_array``,
``mercury_hw.core``); ``mercury_hw.config.MercuryConfig`` is the one configuration object;
``mercury_hw.host`` packs a layer into the core's beats; ``mercury_hw.gen``, ``lint`` and
``synth`` are the tools (errors: ``mercury_hw.errors.HardwareToolError``). This package never
imports the golden model, the replay ``sim`` or the command line (docs/architecture.md).
"""

from .config import ConfigError, MercuryConfig

__all__ = ["MercuryConfig", "ConfigError"]
