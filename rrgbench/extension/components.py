"""Component contracts: the four kinds of module a model is composed of, and their output types.

    Encoder    images [B, V, C, H, W]                 -> VisualFeatures(tokens [B, N, D], pooled [B, D])
               image_stats() (optional: the normalisation its weights expect), initialization() (what it loaded)
    Memory     queries [B, L, D], modality, mask [B, L] -> MemoryOutput(consolidated, retrieved, scores, indices)
               applies_to (required: the modalities it consolidates), memory_size() (N_m, for cost plots)
               initialize(summary)                     optional data-driven initialisation
    Alignment  visual MemoryOutput, text MemoryOutput or None -> AlignmentOutput(semantic [B, K, D] | None, loss)
    Decoder    embed(ids) -> word embeddings; encode(context, semantic) -> encoded state;
               decode(encoded, embeddings, cache) -> logits, cache  (full pass when cache is None,
               incremental when it is given; both must agree exactly)

Every tensor inside a decoder's ``encoded`` state and ``cache`` has the batch on dimension 0 (other
values, such as a step counter, are carried as they are), so
beam search can reorder them generically (:func:`index_batch`). Multi-view studies are the
encoder's business; models never branch on a dataset name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

MODALITIES = ("visual", "text")


@dataclass(frozen=True)
class BuildContext:
    """What a component factory needs to know about the model it is part of."""

    d_model: int
    vocab_size: int
    pad_id: int
    bos_id: int
    eos_id: int
    max_len: int
    n_views: int
    image_size: int
    load_weights: bool = True  # False: a saved model's weights follow (skip pretrained/file weight loading)


@dataclass
class VisualFeatures:
    tokens: torch.Tensor  # [B, N, D]
    pooled: torch.Tensor  # [B, D]


@dataclass
class MemoryOutput:
    consolidated: torch.Tensor  # [B, L, D], the features after memory consolidation
    retrieved: torch.Tensor | None = None  # [B, L, D], what was read from memory
    scores: torch.Tensor | None = None  # [B, heads, L, k] retrieval weights
    indices: torch.Tensor | None = None  # [B, heads, L, k] slot indices
    mask: torch.Tensor | None = None  # [B, L] True where the query is real (text padding excluded)


@dataclass
class AlignmentOutput:
    semantic: torch.Tensor | None = None  # [B, K, D] semantic embeddings for the decoder
    loss: torch.Tensor | None = None  # scalar auxiliary loss, logged as "align"


@dataclass
class TrainingSummary:
    """The training set seen through the freshly built model, for data-driven initialisation.

    Any memory or decoder whose ``wants_initialization()`` is True receives it before training
    (MCSAM's optimal-transport memory init; the nearest-neighbour baseline's index).
    """

    visual: torch.Tensor  # [N, D] pooled encoder features
    text: torch.Tensor  # [N, D] mean word embedding of each report (padding excluded)
    target_ids: torch.Tensor  # [N, T] bos ... eos pad
    study_ids: list[str]


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ImageStats:
    """How images are prepared for an encoder: per-channel mean and std after scaling to [0, 1], and the resize
    interpolation (``bilinear``, ``bicubic``, ``nearest``, ...). The default is the protocol's: ImageNet, bilinear."""

    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    interpolation: str = "bilinear"


class Encoder(nn.Module):
    """Image encoder. Subclasses set ``out_dim`` (= the model width D).

    An encoder whose weights expect other inputs (a pretrained backbone's mean/std and interpolation)
    says so in :meth:`image_stats`; every split, the evaluation and ``predict`` then prepare images that way.
    """

    out_dim: int

    def image_stats(self) -> ImageStats:
        """The normalisation and interpolation the images must have (default: ImageNet, bilinear)."""
        return ImageStats()

    def initialization(self) -> dict[str, Any]:
        """What the weights started from, for the record's ``protocol.initialization.encoder``."""
        return {"weights": "random"}

    def forward(self, images: torch.Tensor) -> VisualFeatures:  # pragma: no cover - contract
        raise NotImplementedError


class Memory(nn.Module):
    """Memory bank.

    A subclass must set ``applies_to``: the modalities (``"visual"``, ``"text"``) whose features it
    consolidates; the model calls it for exactly those (a recipe whose memory applies to nothing is refused
    when the model is built). ``forward(queries [B, L, D], modality, mask [B, L] or None)`` returns a
    :class:`MemoryOutput`; ``mask`` is True where a text query is a real token (padding excluded).

    ``position_wise`` (default False) declares that, in eval mode, the output at each query position
    depends only on the query at that position (no mixing across positions, nothing random): decoding
    then computes the text response once per vocabulary token (:mod:`rrgbench.token_table`).
    """

    applies_to: tuple[str, ...]
    position_wise: bool = False

    def forward(self, queries: torch.Tensor, modality: str,
                mask: torch.Tensor | None = None) -> MemoryOutput:  # pragma: no cover - contract
        raise NotImplementedError

    def memory_size(self) -> int | None:
        """The number of memory slots N_m (None for a memory that is not a slot bank)."""
        return None

    def wants_initialization(self) -> bool:
        """True when :meth:`initialize` should run on training-set features before training."""
        return False

    def initialize(self, summary: TrainingSummary) -> dict[str, Any]:
        """Data-driven initialisation; returns figures to record (e.g. time taken)."""
        return {}


class Alignment(nn.Module):
    """Cross-modal alignment; ``text`` is None at inference time."""

    def forward(self, visual: MemoryOutput, text: MemoryOutput | None) -> AlignmentOutput:  # pragma: no cover
        raise NotImplementedError


class Decoder(nn.Module):
    """Report decoder with an incremental step (see module docstring)."""

    def embed(self, ids: torch.Tensor) -> torch.Tensor:  # pragma: no cover - contract
        raise NotImplementedError

    def encode(self, context: torch.Tensor, semantic: torch.Tensor | None) -> dict[str, torch.Tensor]:
        raise NotImplementedError  # pragma: no cover - contract

    def decode(self, encoded: dict[str, torch.Tensor], embeddings: torch.Tensor,
               cache: Any | None = None) -> tuple[torch.Tensor, Any]:  # pragma: no cover - contract
        raise NotImplementedError

    def init_cache(self, encoded: dict[str, torch.Tensor]) -> Any:  # pragma: no cover - contract
        raise NotImplementedError

    def wants_initialization(self) -> bool:
        """True for decoders built from the training set (e.g. report retrieval)."""
        return False

    def initialize(self, summary: TrainingSummary) -> dict[str, Any]:
        return {}


class NoMemory(Memory):
    """Identity memory: the ``none`` choice used by ablations and plain baselines."""

    applies_to = ()

    def forward(self, queries: torch.Tensor, modality: str, mask: torch.Tensor | None = None) -> MemoryOutput:
        return MemoryOutput(consolidated=queries, mask=mask)


class NoAlignment(Alignment):
    """No alignment: no semantic embedding, no loss."""

    def forward(self, visual: MemoryOutput, text: MemoryOutput | None) -> AlignmentOutput:
        return AlignmentOutput()


def index_batch(state: Any, index: torch.Tensor) -> Any:
    """Select ``index`` along dimension 0 of every tensor in a nested state (dict/list/tuple)."""
    if isinstance(state, torch.Tensor):
        return state.index_select(0, index)
    if isinstance(state, dict):
        return {key: index_batch(value, index) for key, value in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(index_batch(value, index) for value in state)
    return state


def _no_memory(options: Any, context: BuildContext) -> NoMemory:
    return NoMemory()


def _no_alignment(options: Any, context: BuildContext) -> NoAlignment:
    return NoAlignment()
