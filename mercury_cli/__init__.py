"""The ``mercury-hw`` command line: the top floor of the project.

``mercury_cli.main`` dispatches; each subcommand is one module here (``hitmaps``,
``hitmap_report``, ``compare``, ``dump_vectors``, ``verilog``, ``lint``, ``synth``, ``sim``,
``bench``) exposing ``add_arguments(parser)`` and ``run(args) -> int``; the argument groups
they share live in ``mercury_cli.args``. A command parses, validates, calls the library
(``golden``, ``mercury_hw``, ``sim``) and prints. Nothing below imports this package.
"""
