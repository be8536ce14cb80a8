"""What a run builds before its first step: device, determinism, seeds, the dataset, the build context, the optimizer.

Shared by training (:mod:`rrgbench.run.loop`) and evaluation of a saved model (:mod:`rrgbench.run.evaluate`).
"""

from __future__ import annotations

import random
import sys
from typing import Any

import numpy as np
import torch

from rrgbench.config import RunConfig, TrainOptions
from rrgbench.data.source import DatasetSource
from rrgbench.data.tokenizer import Tokenizer
from rrgbench.errors import ConfigError, DataError
from rrgbench.extension.components import BuildContext
from rrgbench.extension.plugins import Registry


def resolve_device(requested: str) -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device cuda requested but no CUDA device is available; use --device cpu or auto")
    if requested not in ("cpu",) and not requested.startswith("cuda"):
        raise ConfigError(f"--device must be auto, cpu or cuda[:N], got '{requested}'")
    return torch.device(requested)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def configure_determinism(device: torch.device) -> None:
    """Deterministic kernels on CPU (warn-only for an op that has none); CUDA keeps its fast kernels.

    ``torch.use_deterministic_algorithms`` also imports ``torch._inductor`` only to set its flag
    (seconds per process start, and rrgbench does not compile); the kernel switch is set directly
    when that private entry point exists, and inductor's flag too when inductor is already loaded.
    """
    if device.type != "cpu":
        return
    setter = getattr(torch._C, "_set_deterministic_algorithms", None)
    if setter is None or "torch._inductor.config" in sys.modules:
        torch.use_deterministic_algorithms(True, warn_only=True)
    else:
        setter(True, warn_only=True)


def load_source(registry: Registry, config: RunConfig, data_dir: str | None) -> DatasetSource:
    """The dataset of a run, through its plugin's ``factory(options, data_dir, allow_missing=...)``."""
    entry = registry.get("dataset", config.dataset)
    source = entry.load()(config.dataset_options, data_dir, allow_missing=config.data.allow_missing)
    for split in ("train", "val", "test"):
        if not source.splits.get(split):
            raise DataError(f"dataset '{config.dataset}': split '{split}' is empty; every split needs studies")
    return source


def context_for(config: RunConfig, tokenizer: Tokenizer, n_views: int, load_weights: bool = True) -> BuildContext:
    """What every component factory is told about the model it is part of (``load_weights`` False: rebuilding a
    saved model, whose own weights follow)."""
    return BuildContext(d_model=config.model_options.d_model, vocab_size=len(tokenizer), pad_id=tokenizer.pad_id,
                        bos_id=tokenizer.bos_id, eos_id=tokenizer.eos_id, max_len=config.data.max_len,
                        n_views=n_views, image_size=config.data.image_size, load_weights=load_weights)


def make_optimizer(model: Any, train: TrainOptions) -> torch.optim.Optimizer:
    """Adam with two learning rates: the visual extractor's and everything else's."""
    visual = [p for p in model.encoder.parameters() if p.requires_grad]
    visual_ids = {id(p) for p in visual}
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in visual_ids]
    groups = [g for g in ({"params": visual, "lr": train.lr_visual}, {"params": rest, "lr": train.lr}) if g["params"]]
    if not groups:
        return torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=0.0)
    # The fused kernel updates a whole tensor per call, which shortens a training step on CPU; the update rule
    # is the same (rounding may differ in the last bits).
    fused = all(p.device.type in ("cpu", "cuda") for group in groups for p in group["params"])
    return torch.optim.Adam(groups, weight_decay=train.weight_decay, amsgrad=train.amsgrad,
                            betas=(train.beta1, train.beta2), eps=train.eps, fused=fused)


def make_scheduler(optimizer: torch.optim.Optimizer, train: TrainOptions) -> Any:
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=train.step_size, gamma=train.gamma)


def autocast(device: torch.device, config: RunConfig) -> Any:
    """bf16 autocast on CUDA when ``train.amp``; a no-op context elsewhere."""
    enabled = device.type == "cuda" and config.train.amp
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled)


def count_parameters(module: torch.nn.Module, trainable: bool = False) -> int:
    """The module's parameter count (with ``trainable``, only those that require gradients)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable)
