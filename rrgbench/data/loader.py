"""Torch datasets and batches: images through the protocol's transforms, reports through the tokenizer.

Training targets are ``bos w_1 .. w_k eos`` with ``k <= data.max_len - 1`` (truncated for training
only); the raw reference report travels with the batch untouched, so scoring never sees a
truncated reference. Images: training resizes to ``train_resize``, random-crops ``image_size`` and
(optionally) flips; evaluation resizes to ``image_size``; both normalise and interpolate as the encoder asks
(:meth:`rrgbench.extension.components.Encoder.image_stats`; ImageNet statistics and bilinear by default).
Grayscale files are decoded to one band, resized and cropped as such, and converted to RGB last
(:class:`ToRGB`): the same tensors as converting first, for a third of the resizing.

Worker processes (:func:`loader_workers`): ``data.num_workers``, or with the default -1 one per core this
process can spare (``cores // local processes - 1``, e.g. 1 on 2 cores, 15 on 16 with one GPU), and none
when decoded images are cached in memory (workers could not share that cache). Augmentation is seeded per
sample, so the worker count never changes a result. ``benchmarks/test_bench_loader.py`` measures what one
worker delivers on MIMIC-sized files.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from rrgbench.data.images import load_image
from rrgbench.data.source import available_cores
from rrgbench.data.studies import Study
from rrgbench.data.tokenizer import Tokenizer
from rrgbench.extension.components import ImageStats

__all__ = ["Batch", "StudyDataset", "image_transform", "make_loader"]


@dataclass
class Batch:
    ids: list[str]
    images: torch.Tensor  # [B, V, 3, H, W]
    target_ids: torch.Tensor  # [B, T]
    reports: list[str]

    def to(self, device: torch.device | str) -> Batch:
        return Batch(self.ids, self.images.to(device, non_blocking=True), self.target_ids.to(device), self.reports)


class ToRGB:
    """PIL image -> RGB (a no-op on RGB): the transform's last geometric step for one-band grayscale inputs."""

    def __call__(self, img: Any) -> Any:
        return img if img.mode == "RGB" else img.convert("RGB")


def image_transform(data: Any, train: bool, stats: ImageStats | None = None) -> Any:
    """The protocol's image transform for training or evaluation (``data``: the run's ``DataOptions``;
    ``stats``: the encoder's normalisation and interpolation)."""
    from torchvision import transforms as T

    stats = stats or ImageStats()
    try:
        mode = T.InterpolationMode(stats.interpolation)
    except ValueError:
        mode = T.InterpolationMode.BILINEAR  # a timm-only mode (e.g. "random") has no evaluation meaning here
    size = data.image_size
    steps: list[Any]
    if train:
        steps = [T.Resize(data.train_resize, interpolation=mode), T.RandomCrop(size)]
        if data.flip:
            steps.append(T.RandomHorizontalFlip())
    else:
        steps = [T.Resize((size, size), interpolation=mode)]
    return T.Compose([*steps, ToRGB(), T.ToTensor(), T.Normalize(stats.mean, stats.std)])


def encode_target(tokenizer: Tokenizer, report: str, max_len: int) -> list[int]:
    words = tokenizer.encode(report)[: max_len - 1]
    return [tokenizer.bos_id, *words, tokenizer.eos_id]


class StudyDataset(Dataset):
    """Studies of one split as (id, images [V, 3, H, W], target ids, raw report)."""

    def __init__(self, studies: Sequence[Study], image_root: Path, tokenizer: Tokenizer, data: Any,
                 train: bool, decoded: dict[str, Any] | None = None, stats: ImageStats | None = None) -> None:
        self.studies, self.image_root, self.tokenizer = list(studies), Path(image_root), tokenizer
        self.max_len = data.max_len
        self.transform = image_transform(data, train, stats)
        self._decoded = decoded

    def __len__(self) -> int:
        return len(self.studies)

    def __getitem__(self, index: int) -> tuple[str, torch.Tensor, list[int], str]:
        study = self.studies[index]
        views = [self.transform(self._image(rel)) for rel in study.image_paths]
        return study.id, torch.stack(views), encode_target(self.tokenizer, study.report, self.max_len), study.report

    def _image(self, rel: str) -> Any:
        """The decoded RGB image at ``rel``, kept in ``decoded`` (a cache shared across epochs) when one is given."""
        if self._decoded is None:
            return load_image(self.image_root / rel, keep_gray=True)
        if rel not in self._decoded:
            self._decoded[rel] = load_image(self.image_root / rel, keep_gray=True)
        return self._decoded[rel]


def collate(items: list[tuple[str, torch.Tensor, list[int], str]], pad_id: int) -> Batch:
    width = max(len(ids) for _, _, ids, _ in items)
    targets = torch.full((len(items), width), pad_id, dtype=torch.long)
    for row, (_, _, ids, _) in enumerate(items):
        targets[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
    return Batch([i for i, _, _, _ in items], torch.stack([img for _, img, _, _ in items]), targets,
                 [r for _, _, _, r in items])


def loader_workers(data: Any, cores: int | None = None, processes: int | None = None) -> int:
    """Data-loader worker processes for ``data`` (a ``DataOptions``): see the module docstring.

    ``cores`` defaults to :func:`~rrgbench.data.source.available_cores`, ``processes`` (training processes
    on this machine) to torchrun's ``LOCAL_WORLD_SIZE`` (1 without it).
    """
    if data.num_workers >= 0:
        return data.num_workers
    if data.cache_images:
        return 0
    cores = available_cores() if cores is None else cores
    processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1")) if processes is None else processes
    return max(0, cores // max(1, processes) - 1)


def make_loader(dataset: StudyDataset, batch_size: int, shuffle: bool, num_workers: int, seed: int,
                sampler: Any = None) -> DataLoader:
    """A DataLoader with a seeded shuffle (so runs and resumes are reproducible)."""
    generator = torch.Generator().manual_seed(seed)
    pad_id = dataset.tokenizer.pad_id
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle and sampler is None, sampler=sampler,
                      num_workers=num_workers, generator=generator,
                      collate_fn=functools.partial(collate, pad_id=pad_id), persistent_workers=False)
