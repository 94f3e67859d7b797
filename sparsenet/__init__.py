"""sparsenet: spatially-sparse CNNs on spconv, fed from coordinate/feature HDF5 shards."""

import os

# Intel's MKL splits long matrix-product reductions over threads, so spconv's weight gradients
# changed in the last bits with the thread count (docs/spconv-on-cpu.md); its strict
# reproducibility mode keeps results independent of the thread count. A user's own setting wins.
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

__version__ = "0.1.0"
