"""rrgbench plugin ``mcsam``: MCSAM (Tao et al., arXiv 2404.00588, IEEE J-BHI 2024) and its ablations.

Registered: memory ``clinical-memory`` (:mod:`rrgbench_mcsam.memory`, R2GenCMN's shared memory with an
optimal-transport initialisation and an optional frozen matrix), alignment ``sam``
(:mod:`rrgbench_mcsam.alignment`, semantic alignment with a symmetric InfoNCE loss and semantic
visual embeddings for the decoder), and the recipes of :mod:`rrgbench_mcsam.recipes`: ``mcsam``,
``mcsam-no-memory``, ``mcsam-random-memory``, ``mcsam-frozen-memory``, ``mcsam-no-sam``,
``mcsam-no-prompts``. Nothing here imports torch.
"""

from __future__ import annotations

from rrgbench import hookimpl
from rrgbench_mcsam.recipes import RECIPES
from rrgbench_mcsam.schemas import ClinicalMemoryOptions, SAMOptions


@hookimpl
def rrgbench_register_memories(register):
    register("clinical-memory", "rrgbench_mcsam.memory:ClinicalMemory", options=ClinicalMemoryOptions,
             description="MCSAM long-term clinical memory: R2GenCMN retrieval, optimal-transport init, optional frozen")


@hookimpl
def rrgbench_register_alignments(register):
    register("sam", "rrgbench_mcsam.alignment:SemanticAlignment", options=SAMOptions,
             description="MCSAM semantic alignment: symmetric InfoNCE on retrieved knowledge + semantic embeddings")


@hookimpl
def rrgbench_register_models(register):
    for name, recipe in RECIPES.items():
        register(name, **recipe)
