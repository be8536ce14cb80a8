"""rrgbench plugin ``cmn``: R2GenCMN's shared cross-modal memory and the ``r2gencmn`` recipe.

Registered: memory ``cmn`` (:class:`rrgbench_cmn.memory.CrossModalMemory`: a memory matrix shared by
visual tokens and word embeddings, multi-head top-k querying, consolidation ``X + R(X)``) and model
``r2gencmn`` (Chen et al., ACL 2021). Factories are lazy ``"module:attr"`` strings; nothing here
imports torch.
"""

from __future__ import annotations

from rrgbench import hookimpl
from rrgbench_cmn.schemas import R2GENCMN_ARCHITECTURE, R2GENCMN_SMALL, R2GENCMN_TRAINING, CMNMemoryOptions

R2GENCMN_DESCRIPTION = (
    "R2GenCMN (Chen et al., ACL 2021): ResNet-101 + 3+3-layer Transformer with a 2048-slot cross-modal "
    "memory shared by image and text (8 heads, top-32). Deviation: random-init backbone offline (the paper "
    "used ImageNet weights: encoder.backbone=resnet101.tv_in1k from the local timm cache, or "
    "encoder.weights=PATH)."
)


@hookimpl
def rrgbench_register_memories(register):
    register("cmn", "rrgbench_cmn.memory:CrossModalMemory", options=CMNMemoryOptions,
             description="R2GenCMN cross-modal memory: shared N_m x D matrix, multi-head top-k retrieval, X + R(X)")


@hookimpl
def rrgbench_register_models(register):
    register(
        "r2gencmn",
        description=R2GENCMN_DESCRIPTION,
        encoder="timm", memory="cmn", alignment="none", decoder="transformer",
        overrides={"encoder.backbone": "resnet101", **R2GENCMN_ARCHITECTURE, **R2GENCMN_TRAINING},
        profiles={"small": dict(R2GENCMN_SMALL)},
    )
