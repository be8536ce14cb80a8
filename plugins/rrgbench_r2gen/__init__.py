"""rrgbench plugin ``r2gen``: R2Gen's memory-driven Transformer decoder and the ``r2gen`` recipe.

Registered: decoder ``r2gen`` (:class:`rrgbench_r2gen.decoder.R2GenDecoder`: a relational memory
whose state conditions every decoder layer norm, MCLN) and model ``r2gen`` (Chen et al., EMNLP 2020).
Factories are lazy ``"module:attr"`` strings; nothing here imports torch.
"""

from __future__ import annotations

from rrgbench import hookimpl
from rrgbench_r2gen.schemas import R2GEN_ARCHITECTURE, R2GEN_SMALL, R2GEN_TRAINING, R2GenDecoderOptions

R2GEN_DESCRIPTION = (
    "R2Gen (Chen et al., EMNLP 2020): ResNet-101 + 3-layer Transformer encoder-decoder whose decoder has a "
    "relational memory (3 slots, 8 heads) driving memory-conditional layer norm (MCLN) in every sublayer. "
    "Deviations: random-init backbone offline (the paper used ImageNet weights: "
    "encoder.backbone=resnet101.tv_in1k from the local timm cache, or encoder.weights=PATH); "
    "learned visual position embeddings kept as in the 'transformer' recipe; LayerNorm with biased variance."
)


@hookimpl
def rrgbench_register_decoders(register):
    register("r2gen", "rrgbench_r2gen.decoder:R2GenDecoder", options=R2GenDecoderOptions,
             description="R2Gen decoder: relational memory + memory-driven conditional layer norm, cached steps")


@hookimpl
def rrgbench_register_models(register):
    register(
        "r2gen",
        description=R2GEN_DESCRIPTION,
        encoder="timm", memory="none", alignment="none", decoder="r2gen",
        overrides={**R2GEN_ARCHITECTURE, **R2GEN_TRAINING},
        profiles={"small": dict(R2GEN_SMALL)},
    )
