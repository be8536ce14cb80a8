"""Multi-process training under ``torchrun``: process group, sharding, collectives, rank-0-only side effects.

``torchrun --nproc_per_node N -m rrgbench run ...`` sets ``WORLD_SIZE``/``RANK``/``LOCAL_RANK``; :func:`setup`
reads them and joins the process group (``nccl`` when the run's device is CUDA, ``gloo`` on CPU). Without
those variables everything here degrades to a world of one process and every collective is a no-op, so the
trainer has a single code path.

Decisions (the reasons are in the trainer's docstring):

- ``data.batch_size`` is the *global* batch; each rank takes ``batch_size / world_size`` of it. Together with
  :func:`shard_indices` (torch's ``DistributedSampler``: one ``randperm`` seeded with ``seed + epoch``, rank
  ``r`` taking positions ``r, r + W, ...``) global batch ``j`` holds exactly the studies of the single-process
  batch ``j`` (padding duplicates aside), so results match one process up to reduction order, dropout
  masks and per-rank BatchNorm statistics (SyncBatchNorm is used on CUDA).
- Evaluation is sharded the same way without shuffling; :func:`gather_in_order` collects every rank's rows,
  drops the duplicates the sampler pads with and restores dataset order.
- Only rank 0 writes files. Anything that can fail on rank 0 alone runs through :func:`on_main`, which
  hands the result *or the exception* to every rank, so no rank is left waiting in a collective.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from rrgbench.errors import ConfigError

T = TypeVar("T")
_ENV = ("WORLD_SIZE", "RANK", "LOCAL_RANK")


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job (a world of one without torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_info() -> DistInfo:
    """The job layout torchrun put in the environment (no process group is touched)."""
    values = {}
    for name in _ENV:
        text = os.environ.get(name, "1" if name == "WORLD_SIZE" else "0")
        try:
            values[name] = int(text)
        except ValueError:
            raise ConfigError(f"environment variable {name} must be an integer, got '{text}'") from None
    world, rank = values["WORLD_SIZE"], values["RANK"]
    if world < 1 or not 0 <= rank < world:
        raise ConfigError(f"inconsistent torchrun environment: RANK={rank}, WORLD_SIZE={world}")
    return DistInfo(rank=rank, world_size=world, local_rank=values["LOCAL_RANK"])


def current() -> DistInfo:
    """The layout of the joined process group, or a world of one."""
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), env_info().local_rank)
    return DistInfo()


def wants_cuda(device: str) -> bool:
    """Whether ``--device`` resolves to CUDA on this machine."""
    return device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())


def setup(device: str) -> DistInfo:
    """Join the process group torchrun describes (idempotent); a world of one without torchrun."""
    info = env_info()
    if not info.enabled:
        return DistInfo()
    if not dist.is_available():
        raise ConfigError("this torch build has no torch.distributed; run a single process instead of torchrun")
    if not dist.is_initialized():
        cuda = wants_cuda(device)
        if cuda:
            torch.cuda.set_device(info.local_rank)
        dist.init_process_group(backend="nccl" if cuda else "gloo", init_method="env://")
    return current()


def teardown() -> None:
    """Leave the process group (end of the command)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def device_for(device: str, info: DistInfo) -> str:
    """``cuda`` / ``auto`` become this rank's GPU (``cuda:LOCAL_RANK``) in a multi-process job."""
    if info.enabled and wants_cuda(device):
        return f"cuda:{info.local_rank}"
    return device


def _enabled() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _tensor_device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def barrier() -> None:
    if _enabled():
        dist.barrier()


def broadcast_object(obj: T, src: int = 0) -> T:
    """``obj`` from rank ``src`` on every rank (identity in a world of one)."""
    if not _enabled():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order."""
    if not _enabled():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def all_reduce(value: float, op: str = "sum") -> float:
    """Sum or max of a number over ranks."""
    if not _enabled():
        return value
    tensor = torch.tensor([float(value)], dtype=torch.float64, device=_tensor_device())
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM if op == "sum" else dist.ReduceOp.MAX)
    return float(tensor.item())


def on_main(fn: Callable[[], T]) -> T:
    """Run ``fn`` on rank 0 only; every rank returns its result or raises its exception."""
    if not _enabled():
        return fn()
    result: Any = None
    error: BaseException | None = None
    if dist.get_rank() == 0:
        try:
            result = fn()
        except Exception as exc:  # handed to every rank below, then raised everywhere
            error = exc
    result, error = broadcast_object((result, error))
    if error is not None:
        raise error
    return result


def main_first(fn: Callable[[], T]) -> T:
    """Run ``fn`` on rank 0, then on the others (e.g. a data cache that rank 0 fills); errors reach all."""
    if not _enabled():
        return fn()
    error: BaseException | None = None
    result: Any = None
    if dist.get_rank() == 0:
        try:
            result = fn()
        except Exception as exc:
            error = exc
    error = broadcast_object(error)
    if error is not None:
        raise error
    return result if dist.get_rank() == 0 else fn()


def shard_indices(n: int, info: DistInfo, *, shuffle: bool, seed: int, epoch: int) -> list[int]:
    """This rank's dataset indices for one epoch (DistributedSampler order; world of one: the whole set)."""
    from torch.utils.data import DistributedSampler

    sampler = DistributedSampler(range(n), num_replicas=info.world_size, rank=info.rank, shuffle=shuffle,
                                 seed=seed, drop_last=False)
    sampler.set_epoch(epoch)
    return list(sampler)


def merge_shards(shards: Iterable[Sequence[tuple[int, T]]]) -> list[T]:
    """Rows keyed by dataset index from every rank -> one row per index, in index order."""
    by_index: dict[int, T] = {}
    for shard in shards:
        for index, row in shard:
            by_index.setdefault(index, row)
    return [by_index[i] for i in sorted(by_index)]


def gather_in_order(rows: Sequence[T], indices: Sequence[int]) -> list[T]:
    """Every rank's ``rows`` (row ``i`` is dataset item ``indices[i]``), deduplicated, in dataset order."""
    if len(rows) != len(indices):
        raise ValueError(f"{len(rows)} rows for {len(indices)} indices")
    pairs = list(zip(indices, rows, strict=True))
    if not _enabled():
        return merge_shards([pairs])
    return merge_shards(all_gather_objects(pairs))


def broadcast_module(module: torch.nn.Module, src: int = 0) -> None:
    """Copy every parameter and buffer of rank ``src``'s ``module`` into the others' (shapes must agree)."""
    if not _enabled():
        return
    with torch.no_grad():
        for tensor in module.state_dict().values():
            if isinstance(tensor, torch.Tensor):
                dist.broadcast(tensor, src=src)


def wrap(module: torch.nn.Module, info: DistInfo, device: torch.device) -> torch.nn.Module:
    """``module`` under DistributedDataParallel in a multi-process job (unchanged otherwise).

    A module without trainable parameters (a frozen retrieval baseline) is left unwrapped: there is
    nothing to synchronise. ``find_unused_parameters`` is on because components routinely own
    parameters the loss never reaches (a timm backbone's unused classifier-head norm, ablations);
    without it DDP silently skips the gradient all-reduce of every bucket holding such a parameter
    (tested: ``static_graph`` does too). Its cost is one autograd-graph walk per step; torch prints a
    one-time note when a model turns out to use every parameter.
    """
    if not info.enabled or not any(p.requires_grad for p in module.parameters()):
        return module
    from torch.nn.parallel import DistributedDataParallel

    if device.type == "cuda":
        module = torch.nn.SyncBatchNorm.convert_sync_batchnorm(module)
        return DistributedDataParallel(module, device_ids=[device.index], find_unused_parameters=True)
    return DistributedDataParallel(module, find_unused_parameters=True)


def silence(info: DistInfo, log: Callable[[str], None]) -> Callable[[str], None]:
    """``log`` on rank 0, a no-op elsewhere (one copy of every message)."""
    return log if info.is_main else _quiet


def _quiet(_message: str) -> None:
    return None
