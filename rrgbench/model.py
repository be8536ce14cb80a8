"""The composed report generator: encoder -> memory -> alignment -> decoder, and its loss.

``L = L_gen + sum_k w_k * L_k`` where ``L_gen`` is token cross-entropy (padding ignored) and the
auxiliary terms come from components (``align`` from the alignment module); every term is returned
by name so training logs them separately. The weights come from ``loss.weights`` (default 1.0).
The model knows components only through the contracts in :mod:`rrgbench.extension.components`.

An incremental decoding step reads its input from a per-vocabulary table
(:class:`rrgbench.token_table.TokenTable`) instead of querying the memory for every hypothesis, when
the memory consolidates text, declares itself position-wise, and nothing is random (eval mode, no
autograd); otherwise it calls :meth:`ReportGenerator.embed_text` as the full pass does. The table is
checked against the weights once per batch, in :meth:`ReportGenerator.prepare`; the steps that follow
only index it (the weights do not change inside one ``generate()``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from rrgbench.config import COMPONENT_KINDS, RunConfig
from rrgbench.errors import ConfigError
from rrgbench.extension.components import (
    MODALITIES,
    Alignment,
    BuildContext,
    Decoder,
    Encoder,
    Memory,
    MemoryOutput,
    NoMemory,
    TrainingSummary,
)
from rrgbench.extension.plugins import Registry
from rrgbench.token_table import TokenTable


@dataclass
class ModelOutput:
    loss: torch.Tensor
    terms: dict[str, torch.Tensor] = field(default_factory=dict)
    logits: torch.Tensor | None = None


class ReportGenerator(nn.Module):
    """Four components and the glue between them."""

    def __init__(self, encoder: Encoder, memory: Memory, alignment: Alignment, decoder: Decoder,
                 context: BuildContext, loss_weights: dict[str, float] | None = None) -> None:
        super().__init__()
        self.encoder, self.memory, self.alignment, self.decoder = encoder, memory, alignment, decoder
        self.context = context
        self.loss_weights = dict(loss_weights or {})
        self.token_table = TokenTable()
        self.token_table_enabled = True  # False: every step queries the memory (benchmarks compare both)

    # -- pieces used by training and decoding -------------------------------------------------
    def visual(self, images: torch.Tensor) -> MemoryOutput:
        """Encode images and consolidate the visual tokens with the memory."""
        feats = self.encoder(images)
        if "visual" in self.memory.applies_to:
            return self.memory(feats.tokens, "visual")
        return MemoryOutput(consolidated=feats.tokens)

    def embed_text(self, ids: torch.Tensor) -> tuple[torch.Tensor, MemoryOutput]:
        """Word embeddings, consolidated by the memory when it applies to text (position-wise).

        The second value is the text branch an alignment module sees during training: the memory's
        output, or the plain embeddings (with the padding mask) when the memory does not touch text.
        """
        embeddings = self.decoder.embed(ids)
        mask = ids != self.context.pad_id
        if "text" not in self.memory.applies_to:
            return embeddings, MemoryOutput(consolidated=embeddings, mask=mask)
        out = self.memory(embeddings, "text", mask=mask)
        return out.consolidated, out

    def prepare(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Everything decoding needs from the images (no report: only the visual branch exists); also brings the
        token table up to date with the weights for the steps that follow."""
        visual = self.visual(images)
        semantic = self.alignment(visual, None).semantic
        encoded = self.decoder.encode(visual.consolidated, semantic)
        if self.uses_token_table():
            self.refresh_token_table()
        return encoded

    def step(self, encoded: dict[str, torch.Tensor], tokens: torch.Tensor, cache: Any) -> tuple[torch.Tensor, Any]:
        """Logits [B, vocab] for the next token after ``tokens`` [B] (incremental)."""
        logits, cache = self.decoder.decode(encoded, self.step_inputs(tokens), cache)
        return logits[:, -1], cache

    def step_inputs(self, tokens: torch.Tensor) -> torch.Tensor:
        """The decoder's inputs [B, 1, D] for single tokens [B]: ``embed_text``, or its rows from the token table
        (as :meth:`prepare` last refreshed it; built here if no call ever did)."""
        if not self.uses_token_table():
            return self.embed_text(tokens[:, None])[0]
        if not self.token_table.built:
            self.refresh_token_table()
        return self.token_table.rows(tokens).unsqueeze(1)

    def refresh_token_table(self) -> None:
        """Rebuild the token table if any weight or mode it depends on changed (walks every parameter)."""
        self.token_table.refresh((self.memory, self.decoder), self._all_token_inputs)

    def uses_token_table(self) -> bool:
        """True when a step's input depends on the token id alone (see the module docstring)."""
        memory = self.memory
        deterministic = not (torch.is_grad_enabled() or self.training or memory.training or self.decoder.training)
        return self.token_table_enabled and deterministic and memory.position_wise and "text" in memory.applies_to

    def _all_token_inputs(self) -> torch.Tensor:
        ids = torch.arange(self.context.vocab_size, device=self._device())
        return self.embed_text(ids[None])[0][0]

    # -- training ----------------------------------------------------------------------------
    def forward(self, images: torch.Tensor, target_ids: torch.Tensor) -> ModelOutput:
        """Teacher-forced loss for ``target_ids`` [B, T] = bos w_1 ... w_n eos pad..."""
        inputs, targets = target_ids[:, :-1], target_ids[:, 1:]
        visual = self.visual(images)
        embeddings, text = self.embed_text(inputs)
        aligned = self.alignment(visual, text)
        encoded = self.decoder.encode(visual.consolidated, aligned.semantic)
        logits, _ = self.decoder.decode(encoded, embeddings)
        gen = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1),
                              ignore_index=self.context.pad_id)
        terms = {"gen": gen}
        if aligned.loss is not None:
            terms["align"] = aligned.loss
        loss = gen + sum(self.loss_weights.get(name, 1.0) * value for name, value in terms.items()
                         if name != "gen")
        return ModelOutput(loss=loss, terms=terms, logits=logits)

    # -- data-driven initialisation ----------------------------------------------------------
    def components_wanting_initialization(self) -> list[nn.Module]:
        return [c for c in (self.memory, self.decoder) if c.wants_initialization()]

    @torch.no_grad()
    def summarize(self, batches: Any) -> TrainingSummary:
        """Pooled visual features and mean word embeddings of the training set (eval mode)."""
        was_training = self.training
        self.eval()
        visual, text, ids, study_ids = [], [], [], []
        for batch in batches:
            feats = self.encoder(batch.images.to(self._device()))
            target = batch.target_ids.to(self._device())
            emb = self.decoder.embed(target)
            mask = (target != self.context.pad_id).unsqueeze(-1).to(emb.dtype)
            visual.append(feats.pooled.float().cpu())
            text.append(((emb * mask).sum(1) / mask.sum(1).clamp(min=1)).float().cpu())
            ids.append(target.cpu())
            study_ids.extend(batch.ids)
        self.train(was_training)
        width = max(t.shape[1] for t in ids)
        ids = [F.pad(t, (0, width - t.shape[1]), value=self.context.pad_id) for t in ids]
        return TrainingSummary(torch.cat(visual), torch.cat(text), torch.cat(ids), study_ids)

    def _device(self) -> torch.device:
        return next(self.parameters()).device


def build_model(registry: Registry, config: RunConfig, context: BuildContext) -> ReportGenerator:
    """Instantiate the recipe's components from their registered factories with the config's options."""
    parts = {kind: registry.get(kind, config.components[kind]).load()(config.sections[kind], context)
             for kind in COMPONENT_KINDS}
    check_memory_applies_to(registry, config, parts["memory"])
    return ReportGenerator(parts["encoder"], parts["memory"], parts["alignment"], parts["decoder"], context,
                           loss_weights=config.loss.weights)


def check_memory_applies_to(registry: Registry, config: RunConfig, memory: Memory) -> None:
    """Refuse a memory that declares no modality it consolidates (the model would never call it)."""
    if isinstance(memory, NoMemory):
        return
    applies = getattr(memory, "applies_to", None)
    wrong = [m for m in applies or () if m not in MODALITIES]
    if not applies or wrong:
        entry = registry.get("memory", config.components["memory"])
        what = f"names unknown modalities {wrong}" if wrong else "applies to no modality"
        raise ConfigError(f"recipe '{config.model}': memory '{entry.name}' of plugin '{entry.plugin}' {what}; its "
                          f"class must set applies_to to a tuple of {', '.join(map(repr, MODALITIES))}")
