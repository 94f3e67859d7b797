"""Data-parallel training: torchrun or ``--procs N`` processes, one global batch.

Every process (rank) runs the same training loop on its share of each global batch:
``share(batch, rank, world)`` cuts the batch of B samples into ``world`` contiguous pieces
whose sizes differ by at most one. Each rank scales its summed loss by ``world / B``, and
DistributedDataParallel averages gradients over ranks: same global batch, same learning rate
(and, with ``sync_batchnorm`` or without BatchNorm, the same update as one process).

BatchNorm, by default, normalises each rank's share with that share's own statistics (as
torchvision's reference scripts do without ``--sync-bn``); the running statistics are averaged
over ranks once per epoch (:func:`average_buffers`), so every rank, and every checkpoint, holds
the same network. The result then differs from one process by more than float rounding, as any
change of batch composition does. ``sync_batchnorm`` swaps BatchNorm layers for
:class:`SyncedBatchNorm`, which normalises with the statistics of the global batch (torch's own
``SyncBatchNorm`` refuses CPU tensors) and so equals one process up to float rounding; it costs
an all-reduce per BatchNorm layer in the forward and one in the backward pass (docs/BENCHMARKS.md, case 6).

Process groups use gloo on the CPU and NCCL on CUDA. ``torchrun`` sets ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous; :func:`spawn` starts N local processes
itself with the same variables, on a free localhost port. They die with the process that
started them (``PR_SET_PDEATHSIG`` on Linux, and a watchdog thread on the parent's pid), and a
failure in one of them is reported once, as one line (:class:`RankFailed`), its traceback kept
in the rank's log.

Threads: :func:`resolve_threads` keeps processes x torch threads within the usable cores (the
rule is in docs/training.md, "Threads").
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from sparsenet.errors import SparsenetError


@dataclass(frozen=True)
class Rank:
    """Where this process stands: ``rank`` of ``world``, ``local_rank`` on its machine."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """The rank that writes metrics, checkpoints and plots."""
        return self.rank == 0

    @classmethod
    def from_env(cls) -> Rank:
        """The rank torchrun (or :func:`spawn`) set in the environment; a single process otherwise."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world == 1:
            return cls()
        return cls(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))


MIN_SHARE = 16  # "auto" gives every process at least this many samples of a global batch


def usable_cores() -> int:
    """CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def resolve_procs(procs: int | str, device: torch.device, batch_size: int) -> int:
    """``procs``, or for ``"auto"`` one process per GPU on CUDA and one per usable core on the CPU,
    but no more than leave each at least :data:`MIN_SHARE` samples of a ``batch_size`` batch."""
    if procs != "auto":
        return int(procs)
    available = max(torch.cuda.device_count(), 1) if device.type == "cuda" else usable_cores()
    return max(1, min(available, batch_size // MIN_SHARE))


def resolve_threads(threads: int | str, procs: int, sparse: bool) -> int:
    """Torch threads per process: ``threads``, or for ``"auto"`` 1 for a ``sparse`` network and
    otherwise the usable cores shared among ``procs`` processes (at least 1); see the module docstring."""
    if threads != "auto":
        return int(threads)
    return 1 if sparse else max(1, usable_cores() // procs)


def init(rank: Rank, device: torch.device) -> None:
    """Join the process group (gloo on CPU, NCCL on CUDA) when there is more than one rank."""
    if rank.world > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=rank.rank, world_size=rank.world)


def shutdown() -> None:
    """Leave the process group, if this process joined one."""
    if dist.is_initialized():
        dist.destroy_process_group()


def share(batch: Sequence[int], rank: int, world: int) -> list[int]:
    """Rank ``rank``'s contiguous piece of a global ``batch`` (sizes differ by at most one)."""
    n = len(batch)
    return list(batch[rank * n // world : (rank + 1) * n // world])


def all_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum of ``tensor`` over ranks, on ``tensor``'s device (``tensor`` itself when there is one rank)."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return tensor
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else tensor.device
    out = tensor.to(device, copy=True)
    dist.all_reduce(out)
    return out.to(tensor.device)


@torch.no_grad()
def average_buffers(module: nn.Module) -> None:
    """Replace every floating point buffer of ``module`` (BatchNorm running statistics) by its
    mean over ranks, in one all-reduce; nothing happens with one rank."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return
    buffers = [b for b in module.buffers() if b.is_floating_point()]
    if not buffers:
        return
    total = all_sum(torch.cat([b.reshape(-1).double() for b in buffers]))
    mean = total / dist.get_world_size()
    offset = 0
    for b in buffers:
        b.copy_(mean[offset : offset + b.numel()].view_as(b))
        offset += b.numel()


class _SumOverRanks(torch.autograd.Function):
    """``all_reduce`` (sum) whose gradient is the sum of the ranks' output gradients."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        out = tensor.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return _SumOverRanks.apply(grad.contiguous())


class SyncedBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm over the union of all ranks' inputs, on any device; plain BatchNorm otherwise.

    Input [M, C] (sparse features) or [B, C, *spatial]. In training with more than one rank,
    per-channel sums, sums of squares and counts are added over ranks with a differentiable
    ``all_reduce`` (in float64), so outputs, gradients and running statistics equal those of
    a single process seeing the whole batch (up to float rounding).
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected input of at least 2 dims [*, C, ...], got {list(input.shape)}")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(input)
        channels = input.shape[1]
        flat = input.transpose(0, 1).reshape(channels, -1).double()  # [C, M]
        count = torch.tensor([float(flat.shape[1])], dtype=torch.float64, device=input.device)
        total = _SumOverRanks.apply(torch.cat([flat.sum(1), (flat * flat).sum(1), count]))
        n = total[-1]
        mean = total[:channels] / n
        var = (total[channels : 2 * channels] / n - mean * mean).clamp_min(0)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                self.running_mean.lerp_(mean.to(self.running_mean.dtype), factor)
                unbiased = var * n / (n - 1).clamp_min(1)
                self.running_var.lerp_(unbiased.to(self.running_var.dtype), factor)
        shape = [1, channels] + [1] * (input.dim() - 2)
        scale = torch.rsqrt(var + self.eps).to(input.dtype)
        out = (input - mean.to(input.dtype).view(shape)) * scale.view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out


def sync_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm in ``module`` (in place) by a :class:`SyncedBatchNorm` with the same state."""
    for name, child in module.named_children():
        if isinstance(child, nn.modules.batchnorm._BatchNorm) and not isinstance(child, SyncedBatchNorm):
            synced = SyncedBatchNorm(
                child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats
            )
            synced.load_state_dict(child.state_dict())
            setattr(module, name, synced.to(next(child.buffers(), torch.empty(0)).device))
        else:
            sync_batchnorm(child)
    return module


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# A rank's first statements: die with the parent (Linux) before importing anything slow, then rank_main.
_CHILD = """
import os, sys
if sys.platform.startswith("linux"):
    import ctypes, signal
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
if os.getppid() != int(sys.argv[3]):
    sys.exit(1)  # the parent died before prctl
from sparsenet.distributed import rank_main
rank_main(*sys.argv[1:])
"""
CONSOLE_FD = "SPARSENET_CONSOLE_FD"  # rank 0's copy of the parent's standard error, when its own goes to a log


class RankFailed(SparsenetError):
    """A process of :func:`spawn` failed: its one-line cause (a bug: its traceback) and its log."""


def watch_parent(parent: int, interval: float = 0.5) -> None:
    """End this process when its parent ``parent`` (a pid) is gone (a portable ``PR_SET_PDEATHSIG``)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        os._exit(1)

    threading.Thread(target=watch, name="sparsenet-parent-watchdog", daemon=True).start()


_console = None  # rank 0's copy of the user's standard error, when its own goes to a log (set by rank_main)


def console():
    """Where this process shows the user its progress: standard error, or for rank 0 of :func:`spawn`
    the standard error of the process that started it (its own goes to its log)."""
    return _console or sys.stderr


def failure_record(log: Path) -> Path:
    """Where a rank writing ``log`` records why it failed: ``rank-N.failure.json`` beside it."""
    return log.with_suffix(".failure.json")


def rank_main(target: str, payload: str, parent: str, log: str) -> None:
    """The body of a process started by :func:`spawn`: watch the parent, call ``target(payload)``
    (``"module:function"``); on an exception print its traceback to standard error (the rank's
    ``log``) and record the failure for the parent (:func:`failure_record`), then exit with 1."""
    global _console
    watch_parent(int(parent))
    if CONSOLE_FD in os.environ:
        _console = os.fdopen(int(os.environ.pop(CONSOLE_FD)), "w", buffering=1)
    module, name = target.split(":")
    try:
        getattr(importlib.import_module(module), name)(payload)
    except Exception as err:
        text = traceback.format_exc()
        print(text, file=sys.stderr, end="", flush=True)
        expected = isinstance(err, (SparsenetError, OSError))
        record = {"time": time.time(), "expected": expected, "message": str(err), "traceback": text}
        failure_record(Path(log)).write_text(json.dumps(record))
        sys.exit(1)


def spawn(
    target: str, world: int, payload: str, *, log: Callable[[int], Path], threads: int = 1, pass_fds: Sequence[int] = ()
) -> None:
    """Run ``target(payload)`` (``"module:function"``) in ``world`` new Python processes, ranks
    0..world-1 on localhost with ``threads`` torch threads each, and wait for all of them.

    Fresh interpreters (not fork, not multiprocessing's spawn, which re-imports the caller's
    ``__main__``), like torchrun; they die with this process. Rank r's standard error is appended
    to file ``log(r)``; rank 0 shows its progress on ours (:func:`console`). A rank that fails stops
    the others and raises :class:`RankFailed` here, with its cause once. On Ctrl-C every rank gets
    SIGINT and should stop where it is; :class:`KeyboardInterrupt` is raised here once they have
    exited. ``pass_fds`` are inherited by every rank (a run's lock).
    """
    import sparsenet

    package_root = str(Path(sparsenet.__file__).resolve().parents[1])
    env = dict(
        os.environ,
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(_free_port()),
        WORLD_SIZE=str(world),
        OMP_NUM_THREADS=str(threads),
    )
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    ranks = []
    for r in range(world):
        command = [sys.executable, "-c", _CHILD, target, payload, str(os.getpid()), str(log(r))]
        ranks.append(_start_logged(command, dict(env, RANK=str(r), LOCAL_RANK=str(r)), pass_fds, log(r), r == 0))
    try:
        while not any(process.poll() for process in ranks):
            if all(process.poll() == 0 for process in ranks):
                return
            time.sleep(0.2)
    except KeyboardInterrupt:
        _stop(ranks, signal.SIGINT)
        raise
    _stop(ranks, signal.SIGTERM, grace=10.0)  # the others fail soon too, often with the first failure's cause
    raise _failure(world, log, ", ".join(f"rank {r}: {process.returncode}" for r, process in enumerate(ranks)))


def _start_logged(command: list[str], env: dict, pass_fds: Sequence[int], log: Path, console: bool) -> subprocess.Popen:
    """Start a rank whose standard error is appended to ``log``; with ``console`` it gets our standard error too."""
    log.parent.mkdir(parents=True, exist_ok=True)
    failure_record(log).unlink(missing_ok=True)
    fds = list(pass_fds)
    if console:
        fds.append(os.dup(2))
        env = dict(env, **{CONSOLE_FD: str(fds[-1])})
    with open(log, "a") as stderr:
        stderr.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} rank {env['RANK']} of {env['WORLD_SIZE']}\n")
        stderr.flush()
        try:
            return subprocess.Popen(command, env=env, stderr=stderr, pass_fds=fds)
        finally:  # the rank holds its own copy
            if console:
                os.close(fds[-1])


def _failure(world: int, log: Callable[[int], Path], codes: str) -> RankFailed:
    """The error to report for failed ranks: the earliest expected failure (a SparsenetError or
    OSError), else the earliest unexpected one; the other ranks' failures are mostly lost peers."""
    records = []
    for r in range(world):
        path = failure_record(log(r))
        if path.is_file():
            records.append({**json.loads(path.read_text()), "rank": r})
    if not records:
        return RankFailed(f"training processes ended without a Python error (exit codes {codes}); see {log(0).parent}")
    first = min(records, key=lambda record: (not record["expected"], record["time"]))
    where = f"training process {first['rank']} of {world}; full log: {log(first['rank'])}"
    if first["expected"]:
        return RankFailed(f"{first['message']} ({where})")
    return RankFailed(f"unexpected error in {where}\n{first['traceback'].rstrip()}")


def _stop(ranks: list[subprocess.Popen], sig: int, grace: float = 30.0) -> None:
    """Wait a moment for the ranks to exit, send ``sig`` to those still running, wait up to
    ``grace`` seconds, then kill them."""
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline and any(process.poll() is None for process in ranks):
        time.sleep(0.1)
    for process in ranks:
        if process.poll() is None:
            process.send_signal(sig)
    deadline = time.monotonic() + grace
    for process in ranks:
        try:
            process.wait(max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
