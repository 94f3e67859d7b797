"""sparsenet: spatially-sparse CNNs on spconv, fed from coordinate/feature HDF5 shards."""

__version__ = "0.1.0"
