"""Extra ``sparsenet`` subcommands, one module each, found by :class:`sparsenet.cli.SparsenetGroup`.

A module ``sparsenet/commands/<name>.py`` defines a click command named ``command``; it
becomes ``sparsenet <name>``. Keep it thin: parse options, call one library function, and
decorate it with :func:`sparsenet.cli.reports_errors` so library errors print as messages.
"""
