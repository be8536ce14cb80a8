"""Option schema and recipe settings of the R2Gen plugin (torch-free, so listings stay fast)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rrgbench.extension.options import option


@dataclass(frozen=True)
class R2GenDecoderOptions:
    layers: int = option(3, "decoder layers (each with three MCLN sublayers)", min=1, max=256)
    encoder_layers: int = option(3, "Transformer encoder layers over the visual tokens", min=0, max=256)
    heads: int = option(8, "attention heads of the encoder and decoder", min=1, max=1024)
    d_ff: int = option(512, "feed-forward width", min=1, max=262_144)
    dropout: float = option(0.1, "dropout (also inside the relational memory's attention)", min=0.0, max=1.0)
    rm_slots: int = option(3, "relational memory slots (each of width d_model)", min=1, max=4096)
    rm_heads: int = option(8, "attention heads of the relational memory", min=1, max=1024)


# R2Gen's published settings (IU X-Ray script: StepLR 50 / 0.1). Dataset protocol defaults (max length,
# vocabulary threshold) and the size profile are applied on top of these by rrgbench.config.
R2GEN_ARCHITECTURE: dict[str, Any] = {
    "encoder.backbone": "resnet101",
    "model.d_model": 512,
    "decoder.layers": 3,
    "decoder.encoder_layers": 3,
    "decoder.heads": 8,
    "decoder.d_ff": 512,
    "decoder.dropout": 0.1,
    "decoder.rm_slots": 3,
    "decoder.rm_heads": 8,
}

R2GEN_TRAINING: dict[str, Any] = {
    "decode.method": "beam",
    "decode.beam_size": 3,
    "train.amsgrad": True,
    "train.weight_decay": 5e-5,
    "train.lr_visual": 5e-5,
    "train.lr": 1e-4,
    "train.clip_value": 0.1,
    "train.clip_norm": 0.0,
    "train.step_size": 50,
    "train.gamma": 0.1,
}

# On top of the global ``small`` profile (d_model 128, regnetx_002, 2 decoder layers, 4 heads, d_ff 256):
# the relational memory gets as many heads as the rest of the model. The visual encoder depth stays
# the same as the ``transformer`` recipe's, so r2gen vs transformer differ only in RM + MCLN.
R2GEN_SMALL: dict[str, Any] = {
    "decoder.rm_heads": 4,
}
