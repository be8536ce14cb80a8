"""Option schemas of the built-in components (kept free of torch so listings stay fast)."""

from __future__ import annotations

from dataclasses import dataclass

from rrgbench.extension.options import option


@dataclass(frozen=True)
class TimmEncoderOptions:
    backbone: str = option("resnet101", "any timm model name; its last feature map becomes the visual tokens; "
                                        "with a pretrained tag (resnet18.a1_in1k) or hf-hub:ORG/NAME its timm weights "
                                        "are loaded from the local cache")
    pretrained: bool | None = option(None, "load timm's pretrained weights from the local cache (never downloaded): "
                                           "none = when the backbone names a tag or hub repo; false = random init")
    weights: str = option("", "local weights file (.pth/.pt/.safetensors) for the backbone; empty: random init "
                              "(or timm's pretrained weights)")
    freeze: bool = option(False, "freeze the backbone (train only the projection)")
    dropout: float = option(0.1, "dropout after the projection to the model width", min=0.0, max=1.0)
    position_embedding: bool = option(True, "learned embedding per token position and view")
    channels_last: bool = option(True, "run the backbone in channels_last memory format (faster convolutions on "
                                       "CPU and CUDA; the small profile keeps the default layout)")


@dataclass(frozen=True)
class TransformerDecoderOptions:
    layers: int = option(3, "decoder layers", min=1, max=256)
    encoder_layers: int = option(3, "Transformer encoder layers over the visual tokens", min=0, max=256)
    heads: int = option(8, "attention heads", min=1, max=1024)
    d_ff: int = option(512, "feed-forward width", min=1, max=262_144)
    dropout: float = option(0.1, "dropout", min=0.0, max=1.0)
    n_prompts: int = option(0, "learnable prompt (memory) tokens attended by every position", min=0,
                            max=65_536)
    semantic_mode: str = option("add", "how alignment embeddings enter: add to word embeddings, or attend",
                                choices=("add", "attend"))


@dataclass(frozen=True)
class AnnotationDatasetOptions:
    image_dir: str = option("", "image root (absolute, or relative to the data folder); empty: the root "
                                "recorded by `rrgbench data prepare`, else <data folder>/images (R2Gen layout)")
