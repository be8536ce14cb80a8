"""The MCSAM recipe family: one helper builds the full model and each ablation (torch-free).

Every recipe starts from R2GenCMN's architecture and training settings (imported from the ``cmn``
plugin) with MCSAM's components: a timm ResNet-50 (random init offline; the paper initialises it
from MedCLIP: load a local file with ``--set encoder.weights=PATH``), the OT-initialised
``clinical-memory``, the ``sam`` alignment and 16 learnable prompt ("memory") tokens in the decoder;
``L = L_gen + 1.0 * L_align``. Each ablation changes exactly one thing.
"""

from __future__ import annotations

from typing import Any

from rrgbench_cmn.schemas import R2GENCMN_ARCHITECTURE, R2GENCMN_SMALL, R2GENCMN_TRAINING

MEMORY = "clinical-memory"
ALIGNMENT = "sam"

BASE_OVERRIDES: dict[str, Any] = {
    "encoder.backbone": "resnet50",
    **R2GENCMN_ARCHITECTURE,
    **R2GENCMN_TRAINING,
    "decoder.n_prompts": 16,
    "decoder.semantic_mode": "add",
}

SMALL_PROFILE: dict[str, Any] = {
    **R2GENCMN_SMALL,
    "decoder.n_prompts": 8,
    "alignment.source": "consolidated",
    "decoder.semantic_mode": "attend",
}
"""Synthetic ``small`` profile: 256 slots, top-16, 8 prompts (soft keys: skipped where absent; the
prompt count only where the recipe has prompts). Two measured deviations for a randomly initialised
encoder trained for minutes on CPU: SAM aligns the consolidated features ``X + R(X)`` (a direct path
from the encoder to the contrastive loss; through the retrieved memory alone the alignment loss fell
more slowly and generated reports stated fewer findings), and the semantic embedding is attended as
extra cross-attention context (validation finding F1 0.47 after 700 steps with 4,000 training
studies; 0.35 when added to the word embeddings, measured with 3,000 studies, so not a clean ablation)."""

DEVIATION = "ResNet-50 random init offline (paper: MedCLIP; set encoder.weights=PATH)"


def mcsam_recipe(description: str, *, memory: str = MEMORY, alignment: str = ALIGNMENT,
                 overrides: dict[str, Any] | None = None, ablation_of: str | None = "mcsam") -> dict[str, Any]:
    """Keyword arguments for ``register(name, **...)``: the MCSAM base plus one variant's changes."""
    merged = dict(BASE_OVERRIDES)
    if alignment == ALIGNMENT:
        merged["loss.weights"] = {"align": 1.0}
    merged.update(overrides or {})
    small = dict(SMALL_PROFILE)
    if not merged["decoder.n_prompts"]:
        del small["decoder.n_prompts"]  # the no-prompts ablation stays without prompts when shrunk
    return {
        "description": description,
        "encoder": "timm",
        "memory": memory,
        "alignment": alignment,
        "decoder": "transformer",
        "overrides": merged,
        "profiles": {"small": small},
        **({"ablation_of": ablation_of} if ablation_of else {}),
    }


RECIPES: dict[str, dict[str, Any]] = {
    "mcsam": mcsam_recipe(
        "MCSAM (Tao et al., J-BHI 2024): OT-initialised clinical memory shared by image and text, semantic "
        f"alignment (InfoNCE) feeding the decoder, 16 prompt tokens; {DEVIATION}.", ablation_of=None),
    "mcsam-no-memory": mcsam_recipe(
        "MCSAM ablation: no clinical memory (SAM aligns the unconsolidated features).", memory="none"),
    "mcsam-random-memory": mcsam_recipe(
        "MCSAM ablation: memory initialised randomly as in R2GenCMN instead of by optimal transport.",
        overrides={"memory.init": "random"}),
    "mcsam-frozen-memory": mcsam_recipe(
        "MCSAM ablation: OT-initialised memory kept frozen (M never updated).",
        overrides={"memory.frozen": True}),
    "mcsam-no-sam": mcsam_recipe(
        "MCSAM ablation: no semantic alignment module (no align loss, no semantic embedding).", alignment="none"),
    "mcsam-no-prompts": mcsam_recipe(
        "MCSAM ablation: no learnable memory (prompt) tokens in the decoder.",
        overrides={"decoder.n_prompts": 0}),
}
