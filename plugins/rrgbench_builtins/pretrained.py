"""Where a timm backbone's pretrained weights are on this machine; rrgbench never downloads them.

Names are timm's: ``resnet18`` (an architecture), ``resnet18.a1_in1k`` (with a pretrained tag) or
``hf-hub:timm/resnet18.a1_in1k`` (a Hugging Face Hub repository, optionally ``@revision``). The weights are
looked up in the local caches that timm itself fills when it downloads (``HF_HUB_CACHE``, else
``$HF_HOME/hub``, else ``~/.cache/huggingface/hub``; then torch hub's ``checkpoints`` folder,
``$TORCH_HOME/hub``) and loaded by timm from that file, so the run works offline (``HF_HUB_OFFLINE=1``).
Absent weights are refused in one line that says how to fetch them once, or how to start from random
weights (``encoder.pretrained=false``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from rrgbench.errors import ConfigError, did_you_mean

HF_PREFIX = "hf-hub:"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "pytorch_model.pth", "model.pth")


@dataclass(frozen=True)
class BackboneSpec:
    """A backbone name taken apart: the timm name to create, and where its pretrained weights would be."""

    name: str  # as configured
    create_name: str  # what timm.create_model receives (``arch.tag``, ``arch`` or ``local-dir:SNAPSHOT``)
    architecture: str
    tag: str | None
    pretrained: bool  # weights are wanted (a tag or hub name, or encoder.pretrained=true)
    hub_repo: str | None = None  # hf-hub:REPO[@revision]
    hub_snapshot: Path | None = None  # the cached snapshot folder of an hf-hub name (config.json inside)
    weights_file: Path | None = None  # the cached weights file, when found
    found_in: str | None = None  # "huggingface cache", "torch hub cache"
    hint: str = ""  # why the weights are missing and how to get them


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache as the environment says now (HF_HUB_CACHE, HF_HOME/hub, ~/.cache/...)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(home).expanduser() / "hub"


def cached_file(repo: str, filename: str) -> Path | None:
    """A file of a hub repository (``org/name[@revision]``) in the local cache, or None."""
    from huggingface_hub import try_to_load_from_cache

    repo_id, _, revision = repo.partition("@")
    found = try_to_load_from_cache(repo_id, filename, cache_dir=hf_cache_dir(), revision=revision or None)
    return Path(found) if isinstance(found, str) else None


def _fetch_hint(name: str) -> str:
    return (f"fetch it once with network access (python -c \"import timm; timm.create_model('{name}', "
            f"pretrained=True)\"), or set encoder.pretrained=false for random weights")


def resolve_backbone(name: str, pretrained: bool | None) -> BackboneSpec:
    """Parse ``name`` and locate its weights (``pretrained`` None: wanted when the name has a tag or is a hub name)."""
    if name.startswith(HF_PREFIX):
        return _resolve_hub(name, pretrained is not False)
    import timm
    from timm.models import get_pretrained_cfg, split_model_name_tag

    architecture, tag = split_model_name_tag(name)
    tag = tag or None
    if not timm.is_model(architecture):
        raise ConfigError(f"encoder.backbone: unknown timm model '{architecture}'"
                          f"{did_you_mean(architecture, timm.list_models())}")
    wanted = bool(tag) if pretrained is None else pretrained
    if not wanted:
        return BackboneSpec(name, name, architecture, tag, pretrained=False)
    try:
        cfg = get_pretrained_cfg(name)
    except RuntimeError:
        cfg = None
    if cfg is None:
        known = timm.list_pretrained(f"{architecture}.*")
        if not known:
            raise ConfigError(f"encoder.backbone: timm has no pretrained weights for '{architecture}'; set "
                              "encoder.pretrained=false for random weights")
        raise ConfigError(f"encoder.backbone: '{name}' is not a pretrained tag timm knows"
                          f"{did_you_mean(name, known)}; known: {', '.join(known[:8])}")
    full = f"{architecture}.{cfg.tag}" if cfg.tag else architecture
    weights, where = _find_registry_weights(cfg)
    return BackboneSpec(name, full, architecture, cfg.tag or None, pretrained=True, weights_file=weights,
                        found_in=where, hint=f"no weights of '{full}' in the Hugging Face cache ({hf_cache_dir()}) "
                                             f"or torch hub's ({_torch_hub_checkpoints()}): {_fetch_hint(full)}")


def _torch_hub_checkpoints() -> Path:
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


def _find_registry_weights(cfg: Any) -> tuple[Path | None, str | None]:
    """A timm registry entry's weights in the HF cache (its hub id) or in torch hub's cache (its url)."""
    if cfg.hf_hub_id:
        for filename in ((cfg.hf_hub_filename,) if cfg.hf_hub_filename else WEIGHT_FILES):
            found = cached_file(cfg.hf_hub_id, filename)
            if found is not None:
                return found, "huggingface cache"
    if cfg.url:
        candidate = _torch_hub_checkpoints() / os.path.basename(urlparse(cfg.url).path)
        if candidate.is_file():
            return candidate, "torch hub cache"
    return None, None


def _resolve_hub(name: str, wanted: bool) -> BackboneSpec:
    """``hf-hub:REPO``: timm builds it from the cached snapshot folder (its config.json and weights)."""
    import timm

    repo = name[len(HF_PREFIX):]
    config = cached_file(repo, "config.json")
    snapshot = config.parent if config is not None else None
    guess = repo.partition("@")[0].rsplit("/", 1)[-1]
    architecture = guess.split(".", 1)[0]
    tag = guess.split(".", 1)[1] if "." in guess else None
    if snapshot is not None:
        import json

        architecture = str(json.loads(config.read_text(encoding="utf-8")).get("architecture", architecture))
    weights = next((snapshot / f for f in WEIGHT_FILES if (snapshot / f).is_file()), None) if snapshot else None
    hint = (f"'{name}' is not in the local Hugging Face cache ({hf_cache_dir()}; config.json and model.safetensors "
            f"are needed): {_fetch_hint(name)}")
    if snapshot is None and not timm.is_model(architecture):
        raise ConfigError(f"encoder.backbone: {hint}")
    create = f"local-dir:{snapshot}" if snapshot is not None else architecture
    return BackboneSpec(name, create, architecture, tag, pretrained=wanted, hub_repo=repo, hub_snapshot=snapshot,
                        weights_file=weights, found_in="huggingface cache" if weights else None, hint=hint)


def create_backbone(spec: BackboneSpec | str, load_weights: bool = True) -> Any:
    """The timm model without classifier or pooling; pretrained weights from the located file when wanted.

    ``spec``: a resolved name, or a name (pretrained when it carries a tag). ``load_weights`` False builds the
    same architecture (and data config) without reading any weights: a saved model's own weights replace them.
    """
    import timm

    if isinstance(spec, str):
        spec = resolve_backbone(spec, None)

    if spec.pretrained and load_weights and spec.weights_file is None:
        raise ConfigError(f"encoder.backbone: {spec.hint}")
    kwargs: dict[str, Any] = {"num_classes": 0, "global_pool": ""}
    load = spec.pretrained and load_weights
    if load and spec.hub_snapshot is None:
        kwargs["pretrained_cfg_overlay"] = {"file": str(spec.weights_file)}
    try:
        return timm.create_model(spec.create_name, pretrained=load, **kwargs)
    except (RuntimeError, OSError, ValueError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"encoder.backbone: timm cannot build '{spec.name}' from {spec.weights_file or 'its name'}"
                          f" ({first})") from None


def data_config(backbone: Any) -> dict[str, Any]:
    """timm's preprocessing of a model (mean, std, interpolation) from its pretrained config."""
    from timm.data import resolve_model_data_config

    cfg = resolve_model_data_config(backbone)
    return {"mean": tuple(float(v) for v in cfg["mean"]), "std": tuple(float(v) for v in cfg["std"]),
            "interpolation": str(cfg["interpolation"])}
