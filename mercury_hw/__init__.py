"""mercury-hw: open RTL of MERCURY (input-similarity reuse for DNN training).

Importing this package is cheap: it pulls in neither Amaranth nor torch. The hardware blocks live
in submodules (``mercury_hw.siggen``, ``mercury_hw.mcache``, ``mercury_hw.pe_array``,
``mercury_hw.core``); ``mercury_hw.config.MercuryConfig`` is the one configuration object.
"""

from .config import ConfigError, MercuryConfig

__all__ = ["MercuryConfig", "ConfigError"]
