"""Raw dataset -> sparsenet shard converters (one module per dataset)."""
