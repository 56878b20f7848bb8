"""Golden model of mercury-hw: the executable specification (see docs/spec.md).

Pure functions on tensors. This package never imports the hardware package ``mercury_hw``, the
replay ``sim`` or the command line ``mercury_cli`` (``tb/test_layers.py`` checks it): its
functions take the algorithm's parameters as plain keyword arguments. ``golden.grp19``
reproduces the seed project's semantics; ``golden.hw`` is what the hardware does, bit-exact.
"""
