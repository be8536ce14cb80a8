"""Nearest-neighbour report retrieval: the training report of the most similar training image.

``RetrievalDecoder`` is built from the training set, not trained. Before training the harness calls
``initialize(summary)``; it stores the L2-normalised pooled visual feature of every training study
(``summary.visual``, i.e. ``encoder(images).pooled``) and its target ids (``bos w_1 .. eos pad``, the
report as the vocabulary sees it: rare words are ``<unk>``, long reports cut at ``data.max_len``).
``encode`` pools the query the same way (mean over the visual tokens; equal to ``pooled`` because
the recipe's encoder has no position embedding and no memory consolidates the tokens), takes the
cosine similarity to every stored study and keeps the best one (ties: the lowest index, i.e. the
first study in training order). ``decode`` returns logits that are ``0`` for the retrieved report's
next token and ``-1e4`` elsewhere (``eos`` once the report has ended), so greedy and beam search
both reproduce the stored report verbatim. The index lives in buffers, so it is saved with every
checkpoint; loading a checkpoint resizes them.

Training is meaningless here. So that a harness training step is a harmless no-op (``--epochs N``),
teacher-forced logits are a leaf tensor that requires grad: ``backward`` runs, no parameter gets a
gradient. ``FrozenTimmEncoder`` keeps the encoder fixed even then (no gradients, BatchNorm statistics
frozen by staying in eval mode), so the index never goes stale.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from rrgbench_builtins.encoders import TimmEncoder
from rrgbench_builtins.schemas import TimmEncoderOptions

from rrgbench.errors import RRGBenchError
from rrgbench.extension.components import BuildContext, Decoder, TrainingSummary

MISS_LOGIT = -1e4  # logit of every token but the retrieved one (finite: the training loss stays finite)
_INDEX_BUFFERS = ("keys", "reports")


class FrozenTimmEncoder(TimmEncoder):
    """The built-in timm encoder as a fixed feature extractor: no gradients, always in eval mode."""

    def __init__(self, options: TimmEncoderOptions, context: BuildContext) -> None:
        super().__init__(options, context)
        self.requires_grad_(False)
        self.train(False)

    def train(self, mode: bool = True) -> FrozenTimmEncoder:
        """Ignore ``mode``: BatchNorm statistics and dropout stay in inference behaviour."""
        return super().train(False)


class RetrievalDecoder(Decoder):
    """Cosine nearest neighbour over pooled visual features; see the module docstring."""

    def __init__(self, options: Any, context: BuildContext) -> None:
        super().__init__()
        self.d_model, self.vocab_size = context.d_model, context.vocab_size
        self.pad_id, self.eos_id = context.pad_id, context.eos_id
        self.register_buffer("keys", torch.zeros(0, context.d_model))
        self.register_buffer("reports", torch.zeros(0, 2, dtype=torch.int32))

    # -- building the index ----------------------------------------------------------------------
    def wants_initialization(self) -> bool:
        return True

    @torch.no_grad()
    def initialize(self, summary: TrainingSummary) -> dict[str, Any]:
        device = self.keys.device
        self.keys = F.normalize(summary.visual.float(), dim=-1).to(device)
        self.reports = summary.target_ids.to(device=device, dtype=torch.int32)
        return {"studies": int(self.keys.shape[0]), "feature_dim": int(self.keys.shape[1])}

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        for name in _INDEX_BUFFERS:
            incoming = state_dict.get(prefix + name)
            if incoming is not None:
                current = getattr(self, name)
                setattr(self, name, torch.empty(incoming.shape, dtype=current.dtype, device=current.device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # -- the decoder contract --------------------------------------------------------------------
    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """No word embedding is needed: zeros of the model width (only the length is used)."""
        return torch.zeros(*ids.shape, self.d_model, device=ids.device)

    def neighbours(self, query: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Index [B] and cosine similarity [B] of the nearest stored study for pooled ``query`` [B, D]."""
        if self.keys.shape[0] == 0:
            raise RRGBenchError("the retrieval decoder has no index: initialize(summary) must run on the training "
                                "set first (the trainer does this before training)")
        similarity = F.normalize(query.float(), dim=-1) @ self.keys.T
        best, index = similarity.max(dim=-1)  # ties: the first (lowest) index
        return index, best

    def encode(self, context: torch.Tensor, semantic: torch.Tensor | None) -> dict[str, torch.Tensor]:
        index, similarity = self.neighbours(context.mean(dim=1))
        return {"report": self.reports[index].long(), "index": index, "similarity": similarity}

    def init_cache(self, encoded: dict[str, torch.Tensor]) -> dict[str, Any]:
        return {"t": 0}

    def _next_tokens(self, report: torch.Tensor, start: int, length: int) -> torch.Tensor:
        """The retrieved report's token after each input position ``start .. start+length-1`` [B, length]."""
        positions = torch.arange(start + 1, start + length + 1, device=report.device)
        inside = positions < report.shape[1]
        tokens = report[:, positions.clamp(max=report.shape[1] - 1)]
        tokens = torch.where(inside, tokens, torch.full_like(tokens, self.eos_id))
        return tokens.masked_fill(tokens == self.pad_id, self.eos_id)

    def decode(self, encoded: dict[str, torch.Tensor], embeddings: torch.Tensor,
               cache: dict[str, Any] | None = None) -> tuple[torch.Tensor, dict[str, Any] | None]:
        start = 0 if cache is None else cache["t"]
        length = embeddings.shape[1]
        tokens = self._next_tokens(encoded["report"], start, length)
        logits = torch.full((*tokens.shape, self.vocab_size), MISS_LOGIT, device=embeddings.device)
        logits.scatter_(-1, tokens.unsqueeze(-1), 0.0)
        if self.training and torch.is_grad_enabled():
            logits.requires_grad_(True)  # a training step is then a no-op instead of an autograd error
        return logits, (None if cache is None else {"t": start + length})
