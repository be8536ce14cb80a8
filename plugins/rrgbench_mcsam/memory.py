"""MCSAM's long-term clinical memory: the ``clinical-memory`` component.

Retrieval and consolidation are R2GenCMN's (inherited from :class:`rrgbench_cmn.memory.CrossModalMemory`:
shared matrix ``M`` [N_m, D], multi-head top-k querying, ``X + R(X)`` on visual tokens and word
embeddings). What MCSAM adds is how ``M`` starts and whether it learns:

``memory.init = "ot"`` (default): before training the trainer hands over a
:class:`~rrgbench.extension.components.TrainingSummary` (pooled visual features and mean word embeddings of
every training study, from the freshly built model). Each modality is standardised on its own
(z-scored per feature, so neither modality's offset or scale dominates), the chosen modalities are
stacked as samples (``memory.ot_features``), projected to the unit sphere, subsampled to at most
``memory.ot_max_samples``, and clustered into N_m prototypes by entropic OT with uniform marginals
(balanced assignment; :func:`rrgbench_mcsam.ot.balanced_prototypes`). ``M`` becomes the prototypes,
rescaled so its entries have the random init's standard deviation: OT and random init then differ in
structure only, not in scale. The returned record holds the seconds taken, Sinkhorn iterations, the
final marginal errors, and the prototype usage entropy of the OT prototypes next to that of random
prototypes on the same features (1.0 = perfectly even use).

``memory.init = "random"``: R2GenCMN's N(0, std 1/D) (the ``mcsam-random-memory`` ablation).
``memory.init_std`` changes the scale of both (0 keeps 1/D). ``memory.frozen``: ``M`` is never
updated (``requires_grad`` False, so the optimiser never sees it); the key/value/query/output
projections still train.
"""

from __future__ import annotations

import time
from typing import Any

import torch
import torch.nn.functional as F
from rrgbench_cmn.memory import CrossModalMemory

from rrgbench.extension.components import BuildContext, TrainingSummary
from rrgbench_mcsam.ot import balanced_prototypes, usage_entropy
from rrgbench_mcsam.schemas import ClinicalMemoryOptions


def standardize(features: torch.Tensor) -> torch.Tensor:
    """Per-feature z-scores of one modality's vectors [N, D] (constant features stay 0)."""
    features = features.float()
    std = features.std(dim=0, unbiased=False).clamp_min(1e-6)
    return (features - features.mean(dim=0)) / std


def ot_samples(summary: TrainingSummary, which: str) -> torch.Tensor:
    """The feature vectors to cluster: standardised visual and/or text vectors, stacked, unit norm."""
    parts = []
    if which in ("visual+text", "visual"):
        parts.append(standardize(summary.visual))
    if which in ("visual+text", "text"):
        parts.append(standardize(summary.text))
    return F.normalize(torch.cat(parts), dim=-1)


class ClinicalMemory(CrossModalMemory):
    """R2GenCMN retrieval over a memory initialised by optimal transport (see the module docstring)."""

    def __init__(self, options: ClinicalMemoryOptions, context: BuildContext) -> None:
        self.options = options
        super().__init__(options, context)
        if options.frozen:
            self.matrix.requires_grad_(False)

    @property
    def init_std(self) -> float:
        return self.options.init_std or 1.0 / self.d_model

    def wants_initialization(self) -> bool:
        return self.options.init == "ot"

    def initialize(self, summary: TrainingSummary) -> dict[str, Any]:
        start = time.perf_counter()
        opts = self.options
        generator = torch.Generator().manual_seed(int(torch.randint(0, 2**31 - 1, (1,))))
        samples = ot_samples(summary, opts.ot_features)
        n_total = samples.shape[0]
        if n_total > opts.ot_max_samples:
            samples = samples[torch.randperm(n_total, generator=generator)[: opts.ot_max_samples]]
        samples = samples.to(self.matrix.device)
        result = balanced_prototypes(samples, self.size, opts.ot_epsilon, opts.ot_iters, opts.ot_rounds,
                                     generator, tol=opts.ot_tol)
        self.load_matrix(self.rescale(result.prototypes))
        random = torch.randn(self.size, self.d_model, generator=generator).to(samples.device)
        return {
            "method": "sinkhorn-balanced-prototypes",
            "features": opts.ot_features,
            "samples": samples.shape[0],
            "samples_available": n_total,
            "prototypes": self.size,
            "sinkhorn_iterations": result.iterations,
            "rounds": opts.ot_rounds,
            "epsilon": opts.ot_epsilon,
            "marginal_error_samples": result.row_error,
            "marginal_error_prototypes": result.column_error,
            "usage_entropy": usage_entropy(samples, result.prototypes),
            "usage_entropy_random": usage_entropy(samples, random),
            "seconds": time.perf_counter() - start,
        }

    def rescale(self, prototypes: torch.Tensor) -> torch.Tensor:
        """Prototypes scaled so that M's entries have the random initialisation's standard deviation."""
        return prototypes * (self.init_std / prototypes.pow(2).mean().sqrt().clamp_min(1e-12))
