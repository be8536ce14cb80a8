"""MCSAM's optimal-transport memory initialisation: time against the memory size N_m.

``ClinicalMemory.initialize`` on a training-set summary of ``STUDIES`` studies (pooled visual
features and mean word embeddings, d 512: ``2 x STUDIES`` samples for the default
``ot_features = visual+text``) with the default OT settings (epsilon 0.05, at most 100 Sinkhorn
iterations per round, tolerance 1e-3) but ``ROUNDS`` plan/barycentre rounds instead of 10, to keep the
benchmark short: the cost is linear in the rounds, and ``extra_info`` records the Sinkhorn iterations
actually run. Features are clustered Gaussian blobs, a stand-in for real features with structure.
"""

from __future__ import annotations

import pytest
import torch
from benchutil import record_median

from rrgbench.extension.components import BuildContext, TrainingSummary
from rrgbench.extension.options import validate

SIZES = (256, 512, 2048, 8192)
STUDIES, D_MODEL, ROUNDS = 1024, 512, 2
CONTEXT = BuildContext(d_model=D_MODEL, vocab_size=1000, pad_id=0, bos_id=1, eos_id=2, max_len=60, n_views=1,
                       image_size=224)


def summary(n: int = STUDIES, clusters: int = 40) -> TrainingSummary:
    generator = torch.Generator().manual_seed(0)
    centres = torch.randn(clusters, D_MODEL, generator=generator)
    which = torch.randint(0, clusters, (n,), generator=generator)
    visual = centres[which] + 0.5 * torch.randn(n, D_MODEL, generator=generator)
    text = centres[which].flip(-1) + 0.5 * torch.randn(n, D_MODEL, generator=generator)
    return TrainingSummary(visual=visual, text=text, target_ids=torch.zeros(n, 2, dtype=torch.long),
                           study_ids=[f"s{i}" for i in range(n)])


def clinical_memory(registry, size: int, rounds: int = ROUNDS):
    entry = registry.get("memory", "clinical-memory")
    options = validate(entry.options, {"size": size, "topk": 32, "ot_rounds": rounds}, "memory 'clinical-memory'")
    torch.manual_seed(0)
    return entry.load()(options, CONTEXT)


@pytest.mark.parametrize("size", SIZES)
def test_ot_initialisation(benchmark, registry, size, torch_threads):
    memory, data = clinical_memory(registry, size), summary()
    report = benchmark.pedantic(memory.initialize, args=(data,), rounds=1 if size >= 8192 else 2, warmup_rounds=0)
    benchmark.extra_info.update({"memory_size": size, "studies": STUDIES, "samples": report["samples"],
                                 "rounds": ROUNDS, "sinkhorn_iterations": report["sinkhorn_iterations"],
                                 "usage_entropy": report["usage_entropy"], "threads": torch_threads})
    record_median(f"ot/{size}", benchmark)


def test_ot_initialisation_fills_the_memory(registry):
    memory = clinical_memory(registry, 64, rounds=1)
    before = memory.matrix.detach().clone()
    report = memory.initialize(summary(128))
    assert report["prototypes"] == 64 and not torch.equal(before, memory.matrix.detach())
