"""Option schemas of the MCSAM plugin (torch-free, so listings stay fast).

Owns :class:`ClinicalMemoryOptions` (memory ``clinical-memory``) and :class:`SAMOptions` (alignment
``sam``). The MCSAM paper body (sizes, OT formulation, top-k, temperature) is not available to us:
every such choice is an option whose default starts from R2GenCMN (N_m 2048, top-32, 8 heads) or
from common practice (Sinkhorn balanced clustering; CLIP's InfoNCE with temperature 0.07).
"""

from __future__ import annotations

from dataclasses import dataclass

from rrgbench_cmn.schemas import CMNMemoryOptions

from rrgbench.extension.options import option


@dataclass(frozen=True)
class ClinicalMemoryOptions(CMNMemoryOptions):
    """R2GenCMN's memory options (size, top-k, heads, dropout) plus MCSAM's initialisation and freezing."""

    init: str = option("ot", "initialise M by optimal transport on training-set features, or randomly "
                             "(R2GenCMN: N(0, std 1/D))", choices=("ot", "random"))
    init_std: float = option(0.0, "standard deviation of M's entries at init, random and OT alike "
                                  "(0: R2GenCMN's 1/D)", min=0.0)
    frozen: bool = option(False, "never update M (requires_grad False); its projections still train")
    ot_features: str = option("visual+text", "training-set features clustered for the OT init",
                              choices=("visual+text", "visual", "text"))
    ot_epsilon: float = option(0.05, "entropic regularisation of the OT plan (cost 1 - cos, in [0, 2])", min=1e-6)
    ot_iters: int = option(100, "Sinkhorn iterations per plan (at most)", min=1, max=100_000)
    ot_rounds: int = option(10, "alternations of OT plan and barycentre (prototype) updates", min=1,
                            max=10_000)
    ot_tol: float = option(1e-3, "stop Sinkhorn early once the sample marginals are this close (L1; 0: never)",
                           min=0.0)
    ot_max_samples: int = option(16384, "random subset of feature vectors used by the OT init (bounds its cost)",
                                 min=1, max=16_777_216)


@dataclass(frozen=True)
class SAMOptions:
    source: str = option("retrieved", "what is aligned: the retrieved memory, or the consolidated features X + R(X)",
                         choices=("retrieved", "consolidated"))
    head_norm: str = option("batch", "normalisation inside the projection heads: batch norm after the first layer "
                                     "(SimCLR-style; default), or none", choices=("none", "batch"))
    proj_dim: int = option(256, "width of the shared contrastive space", min=1, max=65_536)
    hidden: int = option(0, "hidden width of the 2-layer projection heads (0: model.d_model)", min=0,
                         max=65_536)
    temperature: float = option(0.07, "initial InfoNCE temperature", min=1e-4)
    learn_temperature: bool = option(True, "learn the temperature (log-parametrised)")
    min_temperature: float = option(0.01, "lower clamp of the temperature (CLIP: logit scale <= 100)", min=1e-4)
    max_temperature: float = option(1.0, "upper clamp of the temperature", min=1e-4)
    semantic_tokens: int = option(1, "semantic visual embeddings K handed to the decoder ([B, K, D])", min=1,
                                  max=4096)
