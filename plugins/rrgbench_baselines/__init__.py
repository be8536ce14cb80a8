"""rrgbench plugin ``baselines``: the classic floors every report generator has to beat.

Registered:

* encoder ``timm-frozen`` (:class:`rrgbench_baselines.retrieval.FrozenTimmEncoder`): the built-in timm
  encoder as a fixed feature extractor (no gradients, always in eval mode);
* decoder ``lstm`` (:class:`rrgbench_baselines.lstm.LSTMDecoder`) and recipe ``show-tell``
  (Vinyals et al., CVPR 2015: CNN + LSTM);
* decoder ``retrieval`` (:class:`rrgbench_baselines.retrieval.RetrievalDecoder`) and recipe
  ``nearest-neighbor``: the training report of the most similar training image, verbatim.

Factories are lazy ``"module:attr"`` strings; nothing here imports torch.
"""

from __future__ import annotations

from rrgbench_builtins.schemas import TimmEncoderOptions

from rrgbench import hookimpl
from rrgbench.extension.options import NoOptions
from rrgbench_baselines.schemas import (
    NEAREST_NEIGHBOR_SETTINGS,
    NEAREST_NEIGHBOR_SMALL,
    SHOW_TELL_SETTINGS,
    SHOW_TELL_SMALL,
    LSTMDecoderOptions,
)

SHOW_TELL_DESCRIPTION = (
    "Show and Tell (Vinyals et al., CVPR 2015): CNN + 1-layer LSTM (512 hidden); the mean visual feature is "
    "the LSTM's first input, then the words. Deviations: ResNet-101 instead of GoogLeNet (same extractor as "
    "R2Gen); random-init backbone offline (set encoder.weights=PATH for ImageNet weights)."
)

NEAREST_NEIGHBOR_DESCRIPTION = (
    "Nearest-neighbour retrieval: returns verbatim the (tokenised) training report whose image is most "
    "cosine-similar in pooled CNN features; no training (train.epochs=0). Offline the backbone is randomly "
    "initialised, so this is a random-feature nearest neighbour: still an honest floor. Set "
    "encoder.weights=PATH for a pretrained-feature neighbour."
)


@hookimpl
def rrgbench_register_encoders(register):
    register("timm-frozen", "rrgbench_baselines.retrieval:FrozenTimmEncoder", options=TimmEncoderOptions,
             description="the timm encoder as a fixed feature extractor: no gradients, always in eval mode")


@hookimpl
def rrgbench_register_decoders(register):
    register("lstm", "rrgbench_baselines.lstm:LSTMDecoder", options=LSTMDecoderOptions,
             description="Show-Tell LSTM: pooled image as the first input (or initial state), then words")
    register("retrieval", "rrgbench_baselines.retrieval:RetrievalDecoder", options=NoOptions,
             description="nearest-neighbour report retrieval by cosine similarity of pooled visual features")


@hookimpl
def rrgbench_register_models(register):
    register(
        "show-tell",
        description=SHOW_TELL_DESCRIPTION,
        encoder="timm", memory="none", alignment="none", decoder="lstm",
        overrides=dict(SHOW_TELL_SETTINGS),
        profiles={"small": dict(SHOW_TELL_SMALL)},
    )
    register(
        "nearest-neighbor",
        description=NEAREST_NEIGHBOR_DESCRIPTION,
        encoder="timm-frozen", memory="none", alignment="none", decoder="retrieval",
        overrides=dict(NEAREST_NEIGHBOR_SETTINGS),
        profiles={"small": dict(NEAREST_NEIGHBOR_SMALL)},
    )
