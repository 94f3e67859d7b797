"""sparsenet: spatially-sparse CNNs on spconv, fed from coordinate/feature HDF5 shards."""

import os

# Intel's MKL splits long matrix-product reductions over threads, so spconv's weight gradients
# changed in the last bits with the thread count (docs/spconv-on-cpu.md); its strict
# reproducibility mode keeps results independent of the thread count. A user's own setting wins.
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

__version__ = "0.1.0"

# The data API, importable from the package top; loaded on first use so that `import sparsenet`
# stays light (the shard classes need h5py, the batch classes torch).
_EXPORTS = {
    "ShardReader": "sparsenet.shards",
    "ShardWriter": "sparsenet.shards",
    "ShardMeta": "sparsenet.shards",
    "Sample": "sparsenet.shards",
    "ShardError": "sparsenet.errors",
    "SparsenetError": "sparsenet.errors",
    "ShardDataset": "sparsenet.batch",
    "ShardStream": "sparsenet.batch",
    "SparseBatch": "sparsenet.batch",
    "Collate": "sparsenet.batch",
    "collate": "sparsenet.batch",
}
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'sparsenet' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
