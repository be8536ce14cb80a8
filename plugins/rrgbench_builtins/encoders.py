"""The timm image encoder: any timm backbone by name, random init or a local weights file.

Multi-view studies ([B, V, C, H, W], e.g. IU X-Ray frontal + lateral) run every view through the
same backbone in one call; the tokens of all views are concatenated (each view with its own learned
position embedding) and the pooled vector is the mean over views. Never downloads weights.

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
from rrgbench.extension.components import BuildContext, Encoder, VisualFeatures
from rrgbench_builtins.schemas import TimmEncoderOptions

_PREFIXES = ("module.", "model.", "visual.", "backbone.", "encoder.")


def create_backbone(name: str) -> nn.Module:
    """A timm model without classifier or pooling, randomly initialised (never downloaded)."""
    import timm

    if not timm.is_model(name):
        from rrgbench.errors import did_you_mean

        raise ConfigError(f"encoder.backbone: unknown timm model '{name}'{did_you_mean(name, timm.list_models())}")
    return timm.create_model(name, pretrained=False, num_classes=0, global_pool="")


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
        self.backbone = create_backbone(options.backbone)
        self.weights_report = load_backbone_weights(self.backbone, Path(options.weights)) if options.weights else {}
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
