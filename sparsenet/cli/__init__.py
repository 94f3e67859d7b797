"""The ``sparsenet`` command line (click).

Each command parses options and calls one library function; heavy imports (numpy, h5py,
torch, matplotlib) happen inside commands so ``sparsenet --help`` stays fast, and option
choices are read from the library's own constants when first needed. A
:class:`~sparsenet.errors.SparsenetError` (bad input the user can fix) or an ``OSError`` (which
names its file) becomes a one-line ``Error: ...``; any other exception is a bug and shows its
traceback.
"""

from __future__ import annotations

import click

from sparsenet.cli import data, runs, tools
from sparsenet.cli._common import CONTEXT


@click.group(context_settings=CONTEXT, short_help="Spatially-sparse CNNs on spconv, fed from HDF5 shards.")
@click.version_option(package_name="sparsenet")
def main() -> None:
    """Spatially-sparse CNNs on spconv, fed from coordinate/feature HDF5 shards.

    Typical flow: `sparsenet preprocess mnist --source ../shared/data/mnist`, then
    `sparsenet inspect data/mnist`.
    """


for command in (
    data.preprocess,
    tools.inspect,
    runs.train,
    runs.evaluate,
    runs.compare,
    runs.predict,
    runs.report,
    tools.export_model,
    tools.export_ensemble,
    tools.activity,
    tools.bench,
):
    main.add_command(command)
