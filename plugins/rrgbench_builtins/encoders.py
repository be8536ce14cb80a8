"""The timm image encoder: any timm backbone by name; random init, timm's pretrained weights or a local file.

Multi-view studies ([B, V, C, H, W], e.g. IU X-Ray frontal + lateral) run every view through the
same backbone in one call; the tokens of all views are concatenated (each view with its own learned
position embedding) and the pooled vector is the mean over views. Never downloads weights: a pretrained tag
(``resnet18.a1_in1k``) or hub name (``hf-hub:timm/...``) is loaded from the local cache
(:mod:`rrgbench_builtins.pretrained`). With pretrained weights the images are normalised and resized as
timm's data config of that model says (mean, std, interpolation); otherwise with the protocol's
ImageNet statistics. What was loaded, from where, and the normalisation go into
``protocol.initialization.encoder``.

``encoder.channels_last`` (default on; off in the ``small`` profile) keeps the backbone's weights and
inputs in ``channels_last`` memory format, which oneDNN (CPU) and cuDNN convolutions run faster; the
results are the same to float rounding. ``benchmarks/test_bench_ab.py`` times both layouts (``cnn-eval``,
``cnn-train``; figures in ``benchmarks/README.md``).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from rrgbench.errors import ConfigError
from rrgbench.extension.components import BuildContext, Encoder, ImageStats, VisualFeatures
from rrgbench_builtins.pretrained import BackboneSpec, create_backbone, data_config, resolve_backbone
from rrgbench_builtins.schemas import TimmEncoderOptions

_PREFIXES = ("module.", "model.", "visual.", "backbone.", "encoder.")


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors from a local weights file, loaded safely (no pickled code is executed)."""
    if not path.is_file():
        raise ConfigError(f"encoder.weights: file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unpickling failure is a problem of the user's file
        raise ConfigError(f"encoder.weights: cannot load {path} safely ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0][:160]})") from None
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(data, dict) and isinstance(data.get(key), dict):
            data = data[key]
    if not isinstance(data, dict):
        raise ConfigError(f"encoder.weights: {path} does not hold a state dict")
    return data


def load_backbone_weights(backbone: nn.Module, path: Path) -> dict[str, int]:
    """Load matching tensors into ``backbone``; refuse a file that matches nothing."""
    state = read_state_dict(path)
    own = backbone.state_dict()
    matched = {}
    for key, tensor in state.items():
        name = key
        for prefix in _PREFIXES:
            if name.startswith(prefix) and name not in own:
                name = name[len(prefix):]
        if name in own and own[name].shape == tensor.shape:
            matched[name] = tensor
    if not matched:
        raise ConfigError(f"encoder.weights: no tensor in {path} matches the backbone's parameter names/shapes")
    backbone.load_state_dict(matched, strict=False)
    return {"loaded": len(matched), "missing": len(own) - len(matched), "ignored": len(state) - len(matched)}


class TimmEncoder(Encoder):
    """timm backbone -> projected visual tokens [B, V*N, D] and pooled [B, D]."""

    def __init__(self, options: TimmEncoderOptions, context: BuildContext) -> None:
        super().__init__()
        self.spec = resolve_backbone(options.backbone, options.pretrained)
        from_timm = context.load_weights and not options.weights
        self.backbone = create_backbone(self.spec, load_weights=from_timm)
        self.weights_file = options.weights if context.load_weights else ""
        self.weights_report = load_backbone_weights(self.backbone, Path(options.weights)) if self.weights_file else {}
        self._stats = ImageStats(**data_config(self.backbone)) if self.spec.pretrained else ImageStats()
        if options.freeze:
            self.backbone.requires_grad_(False)
        self.memory_format = torch.channels_last if options.channels_last else torch.contiguous_format
        self.backbone.to(memory_format=self.memory_format)
        channels, grid = self._probe(context.image_size)
        self.out_dim = context.d_model
        self.proj = nn.Sequential(nn.Linear(channels, context.d_model), nn.ReLU(), nn.Dropout(options.dropout))
        self.n_views, self.grid = context.n_views, grid
        self.position = (nn.Parameter(torch.zeros(context.n_views, grid, context.d_model))
                         if options.position_embedding else None)

    def image_stats(self) -> ImageStats:
        return self._stats

    def initialization(self) -> dict[str, object]:
        return describe_initialization(self.spec, self.weights_file, self.weights_report, self._stats)

    @torch.no_grad()
    def _probe(self, image_size: int) -> tuple[int, int]:
        was_training = self.backbone.training
        self.backbone.eval()
        out = self.backbone.forward_features(torch.zeros(1, 3, image_size, image_size))
        self.backbone.train(was_training)
        return out.shape[1], out.shape[2] * out.shape[3]

    def forward(self, images: torch.Tensor) -> VisualFeatures:
        b, v = images.shape[:2]
        views = images.flatten(0, 1).contiguous(memory_format=self.memory_format)
        maps = self.backbone.forward_features(views)  # [B*V, C, h, w]
        tokens = self.proj(maps.flatten(2).transpose(1, 2))  # [B*V, N, D]
        tokens = tokens.view(b, v, tokens.shape[1], tokens.shape[2])
        pooled = tokens.mean(dim=(1, 2))
        if self.position is not None:
            tokens = tokens + self.position[:v, : tokens.shape[2]]
        return VisualFeatures(tokens=tokens.flatten(1, 2), pooled=pooled)


def describe_initialization(spec: BackboneSpec, weights_file: str, weights_report: dict[str, int],
                            stats: ImageStats) -> dict[str, object]:
    """``protocol.initialization.encoder``: the backbone, where its weights came from, the image statistics."""
    entry: dict[str, object] = {"backbone": spec.name, "architecture": spec.architecture}
    if weights_file:
        entry.update(weights="file", source=str(Path(weights_file).resolve()), **weights_report)
    elif spec.pretrained:
        entry.update(weights="pretrained", pretrained_tag=spec.tag, source=str(spec.weights_file),
                     found_in=spec.found_in, hub_repo=spec.hub_repo)
    else:
        entry["weights"] = "random"
    entry.update(mean=list(stats.mean), std=list(stats.std), interpolation=stats.interpolation,
                 image_stats_from="timm data config" if spec.pretrained else "protocol default (ImageNet)")
    return {k: v for k, v in entry.items() if v is not None}
