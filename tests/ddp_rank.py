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


def average(folder: str) -> None:
    """BatchNorm statistics ``rank + 1`` (and ``rank`` batches counted), then ``average_buffers``;
    saves ``rank<RANK>.pt``."""
    from sparsenet import distributed

    rank = distributed.Rank.from_env()
    distributed.init(rank, torch.device("cpu"))
    norm = torch.nn.BatchNorm1d(3)
    norm.running_mean.fill_(rank.rank + 1)
    norm.running_var.fill_(2 * (rank.rank + 1))
    norm.num_batches_tracked.fill_(rank.rank)
    distributed.average_buffers(norm)
    torch.save(norm.state_dict(), Path(folder) / f"rank{rank.rank}.pt")
    distributed.shutdown()


def fail(kind: str) -> None:
    """Rank 1 fails (``kind`` "shard": a ShardError; "bug": a ZeroDivisionError) while rank 0 waits for it."""
    from sparsenet import distributed
    from sparsenet.errors import ShardError

    rank = distributed.Rank.from_env()
    distributed.init(rank, torch.device("cpu"))
    if rank.rank == 1:
        if kind == "shard":
            raise ShardError("data/train/shard-00000.h5", "content checksum mismatch: the file was modified")
        print(1 / 0)
    torch.distributed.barrier()  # fails, or waits to be stopped, once rank 1 is gone


def crash(folder: str) -> None:
    """Rank 1 fails at once; rank 0 joins the process group and waits for it forever (writes ``rank0.pid`` first)."""
    from sparsenet import distributed

    rank = distributed.Rank.from_env()
    if rank.rank == 1:
        raise ValueError("rank 1 fails on purpose")
    (Path(folder) / "rank0.pid").write_text(str(os.getpid()))
    distributed.init(rank, torch.device("cpu"))
    torch.distributed.barrier()


def synced(folder: str) -> None:
    """A SyncedBatchNorm (momentum 0.5) in training mode on rank r's rows ``x_r = (r + 1) * [[0, 1, 4], [2, -1, 3],
    [5, 5, -2]][: 2 + r]``; saves ``rank<RANK>.pt`` with its output and running statistics."""
    from sparsenet import distributed

    rank = distributed.Rank.from_env()
    distributed.init(rank, torch.device("cpu"))
    rows = torch.tensor([[0.0, 1.0, 4.0], [2.0, -1.0, 3.0], [5.0, 5.0, -2.0]])
    norm = distributed.SyncedBatchNorm(3, momentum=0.5)
    out = norm((rank.rank + 1) * rows[: 2 + rank.rank])
    state = {"out": out.detach(), "running_mean": norm.running_mean, "running_var": norm.running_var}
    torch.save(state, Path(folder) / f"rank{rank.rank}.pt")
    distributed.shutdown()
