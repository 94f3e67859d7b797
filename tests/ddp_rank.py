"""A rank of the DDP test, started by ``sparsenet.distributed.spawn``: trains, then saves its own weights."""

import json
import os
from pathlib import Path

import torch

from sparsenet.train import run_rank


def main(payload: str) -> None:
    """Run ``sparsenet.train.run_rank(payload)`` and save the rank's state_dict to ``<out>/rank<RANK>.pt``."""
    network = run_rank(payload)
    torch.save(network.state_dict(), Path(json.loads(payload)["config"]["out"]) / f"rank{os.environ['RANK']}.pt")
