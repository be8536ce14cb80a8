"""MCSAM's semantic alignment module (SAM): the ``sam`` alignment component.

Inputs are the memory outputs of both modalities. By default (``alignment.source = "retrieved"``,
the paper's wording) what is aligned is the *retrieved* knowledge (``MemoryOutput.retrieved``);
``"consolidated"`` aligns ``X + R(X)`` instead, which also carries the features themselves. Visual
vectors are mean-pooled over visual tokens, text vectors over real (unpadded) positions only. When the
memory returns nothing retrieved (memory ``none``, the ``mcsam-no-memory`` ablation) SAM falls back to
the consolidated features, i.e. the encoder's tokens and the word embeddings themselves, so the
ablation still aligns the two modalities.

Each pooled vector goes through its own 2-layer MLP head (``D -> hidden -> proj_dim``; by default,
``alignment.head_norm = "batch"``, a batch norm after the first layer, as in SimCLR, which removes
what all studies of a batch share) and is L2-normalised; the loss is the symmetric InfoNCE (CLIP) over the batch,
``(CE(V T^T / tau, I) + CE(T V^T / tau, I)) / 2``, with a learnable temperature ``tau`` initialised
at 0.07 and clamped to [``min_temperature``, ``max_temperature``]. Identical reports in one batch
count as negatives of each other, as in the plain InfoNCE. Why batch norm by default (measured): with
a randomly initialised encoder every chest image yields nearly the same pooled features (batch
standard deviation about 1e-4 of the retrieved vector's norm), so without it all logits are equal,
the loss sits at exactly ``ln B`` and its gradient vanishes; with it the loss falls from the first
steps.

The normalised visual embedding is mapped back to the model width by a linear layer and returned as
the semantic visual embeddings ``[B, K, D]`` the decoder adds to its word embeddings. They depend on
the image only, so training and inference (``text`` None: no loss) use the same path.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from rrgbench.errors import ConfigError
from rrgbench.extension.components import Alignment, AlignmentOutput, BuildContext, MemoryOutput
from rrgbench_mcsam.schemas import SAMOptions


def knowledge(output: MemoryOutput, source: str = "retrieved") -> torch.Tensor:
    """What a modality brings to the alignment: its retrieved memory (when asked and present), else its
    consolidated features."""
    if source == "retrieved" and output.retrieved is not None:
        return output.retrieved
    return output.consolidated


def masked_mean(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean over dimension 1 of [B, L, D], counting only positions where ``mask`` [B, L] is True."""
    if mask is None:
        return x.mean(dim=1)
    weights = mask.unsqueeze(-1).to(x.dtype)
    return (x * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)


class BatchStandardize(nn.BatchNorm1d):
    """Batch norm that uses its running statistics for a single-sample training batch (no batch to norm)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.shape[0] == 1:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)
        return super().forward(x)


def projection_head(d_in: int, hidden: int, d_out: int, norm: str = "none") -> nn.Module:
    """2-layer MLP ``d_in -> hidden -> d_out``, optionally batch-normalised after the first layer."""
    middle = [BatchStandardize(hidden)] if norm == "batch" else []
    return nn.Sequential(nn.Linear(d_in, hidden), *middle, nn.GELU(), nn.Linear(hidden, d_out))


def symmetric_info_nce(visual: torch.Tensor, text: torch.Tensor, temperature: torch.Tensor) -> torch.Tensor:
    """CLIP's loss for L2-normalised paired embeddings [B, E]: row i of each matches row i of the other."""
    logits = (visual.float() @ text.float().T) / temperature
    targets = torch.arange(logits.shape[0], device=logits.device)
    return 0.5 * (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets))


class SemanticAlignment(Alignment):
    """Contrastive alignment of retrieved visual and textual knowledge + semantic visual embeddings."""

    def __init__(self, options: SAMOptions, context: BuildContext) -> None:
        super().__init__()
        if not options.min_temperature <= options.temperature <= options.max_temperature:
            raise ConfigError(f"alignment.temperature ({options.temperature}) must lie within "
                              f"[{options.min_temperature}, {options.max_temperature}]")
        d, hidden = context.d_model, options.hidden or context.d_model
        self.tokens, self.d_model, self.source = options.semantic_tokens, d, options.source
        self.visual_head = projection_head(d, hidden, options.proj_dim, options.head_norm)
        self.text_head = projection_head(d, hidden, options.proj_dim, options.head_norm)
        self.to_semantic = nn.Linear(options.proj_dim, options.semantic_tokens * d)
        self.log_temperature = nn.Parameter(torch.tensor(math.log(options.temperature)),
                                            requires_grad=options.learn_temperature)
        self.temperature_bounds = (options.min_temperature, options.max_temperature)

    @property
    def temperature(self) -> torch.Tensor:
        low, high = self.temperature_bounds
        return self.log_temperature.exp().clamp(low, high)

    def embed_visual(self, visual: MemoryOutput) -> torch.Tensor:
        """L2-normalised visual embedding [B, proj_dim] in the shared space."""
        return F.normalize(self.visual_head(knowledge(visual, self.source).mean(dim=1)), dim=-1)

    def embed_text(self, text: MemoryOutput) -> torch.Tensor:
        """L2-normalised text embedding [B, proj_dim] (padding excluded from the pooling)."""
        return F.normalize(self.text_head(masked_mean(knowledge(text, self.source), text.mask)), dim=-1)

    def forward(self, visual: MemoryOutput, text: MemoryOutput | None) -> AlignmentOutput:
        v = self.embed_visual(visual)
        semantic = self.to_semantic(v).view(v.shape[0], self.tokens, self.d_model)
        if text is None:
            return AlignmentOutput(semantic=semantic)
        loss = symmetric_info_nce(v, self.embed_text(text), self.temperature)
        return AlignmentOutput(semantic=semantic, loss=loss)
