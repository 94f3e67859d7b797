"""``sparsenet bench``: does sparsity pay, and what does the rest of the pipeline cost?

Modules, bottom layer first; a module imports only from earlier lines of this list (and from
the library below the benchmarks), never from its own line or a later one:

- ``synthetic`` (raw stroke and MNIST IDX files, shared with the tests), ``common`` (settings,
  statistics, interleaved timing);
- ``data`` (where raw files and shards are, conversions through the converter registry),
  ``results`` (what each case measures);
- ``nets`` (networks, training steps, the sparse/dense pairs; loads spconv), ``plots``;
- the cases: ``steps`` (1, 1b), ``growth`` (2), ``feeding`` (3, 4), ``efficiency`` (5),
  ``parallel`` (6); and ``sections`` (the report's markdown for each case);
- ``report`` (the markdown report, ``results.json``);
- ``runner`` (:func:`~sparsenet.bench.runner.run_bench`, what the command calls).

This file imports nothing, so a case module loads only what it uses.
"""
