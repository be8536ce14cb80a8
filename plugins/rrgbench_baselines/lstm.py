"""The Show-and-Tell LSTM decoder (Vinyals et al., CVPR 2015).

The image enters once: the mean of the visual tokens (which the encoder has already projected to
the model width) goes through a linear layer and is either the LSTM's first input, from a zero
state (``image_feed=input``, the paper's choice), or sets the initial hidden and cell state of every
layer through ``tanh`` (``image_feed=state``). The words follow as ordinary inputs; dropout is
applied to the inputs and to the LSTM outputs before the vocabulary projection.

Cache for incremental decoding: ``{"h": [B, layers, hidden], "c": [B, layers, hidden], "t": int}``
(batch first, so beam search can reorder it). The full pass runs the same recurrence over the whole
sequence, so both modes give the same logits. Semantic embeddings of an alignment module, if a
recipe adds one, are added (mean over their tokens) to the pooled image.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from rrgbench.extension.components import BuildContext, Decoder
from rrgbench_baselines.schemas import LSTMDecoderOptions

State = tuple[torch.Tensor, torch.Tensor]


class LSTMDecoder(Decoder):
    """CNN-feature-conditioned LSTM language model."""

    def __init__(self, options: LSTMDecoderOptions, context: BuildContext) -> None:
        super().__init__()
        d = context.d_model
        self.layers, self.hidden, self.image_feed = options.layers, options.hidden, options.image_feed
        self.lut = nn.Embedding(context.vocab_size, d, padding_idx=context.pad_id)
        image_out = d if options.image_feed == "input" else 2 * options.layers * options.hidden
        self.image = nn.Linear(d, image_out)
        self.lstm = nn.LSTM(d, options.hidden, options.layers, batch_first=True,
                            dropout=options.dropout if options.layers > 1 else 0.0)
        self.drop = nn.Dropout(options.dropout)
        self.proj = nn.Linear(options.hidden, context.vocab_size)

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.lut(ids)

    def encode(self, context: torch.Tensor, semantic: torch.Tensor | None) -> dict[str, torch.Tensor]:
        image = context.mean(dim=1)
        if semantic is not None:
            image = image + semantic.mean(dim=1)
        return {"image": image}

    def _start(self, encoded: dict[str, torch.Tensor]) -> State:
        """The LSTM state [layers, B, hidden] after the image, before the first word."""
        feature = self.image(encoded["image"])
        if self.image_feed == "input":
            _, state = self.lstm(self.drop(feature).unsqueeze(1))
            return state
        batch = feature.shape[0]
        h, c = torch.tanh(feature).view(batch, 2, self.layers, self.hidden).permute(1, 2, 0, 3)
        return h.contiguous(), c.contiguous()

    def init_cache(self, encoded: dict[str, torch.Tensor]) -> dict[str, Any]:
        h, c = self._start(encoded)
        return {"h": h.transpose(0, 1), "c": c.transpose(0, 1), "t": 0}

    def decode(self, encoded: dict[str, torch.Tensor], embeddings: torch.Tensor,
               cache: dict[str, Any] | None = None) -> tuple[torch.Tensor, dict[str, Any] | None]:
        if cache is None:
            state = self._start(encoded)
        else:
            state = (cache["h"].transpose(0, 1).contiguous(), cache["c"].transpose(0, 1).contiguous())
        out, (h, c) = self.lstm(self.drop(embeddings), state)
        logits = self.proj(self.drop(out))
        if cache is None:
            return logits, None
        return logits, {"h": h.transpose(0, 1), "c": c.transpose(0, 1), "t": cache["t"] + embeddings.shape[1]}
