"""Option schemas and recipe settings of the R2GenCMN plugin (torch-free, so listings stay fast).

Owns :class:`CMNMemoryOptions` (the ``cmn`` memory's options) and the R2GenCMN paper settings that
other recipes reuse (MCSAM starts from them): :data:`R2GENCMN_ARCHITECTURE`,
:data:`R2GENCMN_TRAINING` and :data:`R2GENCMN_SMALL`.

Sources: Chen et al., "Cross-modal Memory Networks for Radiology Report Generation" (ACL 2021) and
the authors' public scripts (``main_train.py`` defaults, ``train_mimic_cxr.sh``/``train_iu_xray.sh``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rrgbench.extension.options import option


@dataclass(frozen=True)
class CMNMemoryOptions:
    size: int = option(2048, "memory slots N_m (R2GenCMN cmm_size); slot width = model.d_model", min=1,
                       max=4_194_304)
    topk: int = option(32, "slots kept per head and query; softmax runs over the kept scores only", min=1,
                       max=65_536)
    heads: int = option(8, "query heads; each head selects its own top-k slots", min=1, max=1024)
    dropout: float = option(0.1, "dropout on the retrieval weights (R2GenCMN: 0.1)", min=0.0, max=1.0)


R2GENCMN_ARCHITECTURE: dict[str, Any] = {
    "model.d_model": 512,
    "decoder.layers": 3,
    "decoder.encoder_layers": 3,
    "decoder.heads": 8,
    "decoder.d_ff": 512,
    "decoder.dropout": 0.1,
}
"""R2GenCMN's Transformer: 3+3 layers, width 512, feed-forward 512, 8 heads, dropout 0.1."""

R2GENCMN_TRAINING: dict[str, Any] = {
    "train.epochs": 30,
    "train.lr_visual": 1e-4,
    "train.lr": 5e-4,
    "train.beta1": 0.9,
    "train.beta2": 0.98,
    "train.eps": 1e-9,
    "train.weight_decay": 5e-5,
    "train.amsgrad": True,
    "train.step_size": 3,
    "train.gamma": 0.8,
    "train.clip_value": 0.0,
    "train.clip_norm": 0.0,
    "decode.method": "beam",
    "decode.beam_size": 3,
}
"""R2GenCMN's optimisation (its MIMIC-CXR script: 30 epochs, StepLR every 3 epochs by 0.8; Adam with
betas (0.9, 0.98), eps 1e-9, weight decay 5e-5, AMSGrad; beam 3). Its trainer
(``modules/trainer.py``) steps on unclipped gradients, so both clips are off. Its IU X-Ray script
trains 100 epochs with step 10 instead: ``--set train.epochs=100 --set train.step_size=10``. Not
reproduced here: trigram blocking in beam search. MCSAM's recipes inherit all of these (MCSAM builds
on R2GenCMN)."""

R2GENCMN_SMALL: dict[str, Any] = {
    "memory.size": 256,
    "memory.topk": 16,
}
"""Extra shrinking for the synthetic ``small`` profile (on top of the harness's global profile)."""
