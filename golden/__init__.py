"""Golden model of mercury-hw: the executable specification (see docs/spec.md).

Pure functions on tensors. This package never imports the hardware package ``mercury_hw``.
``golden.grp19`` reproduces the seed project's semantics; ``golden.hw`` is what the hardware does,
bit-exact.
"""
