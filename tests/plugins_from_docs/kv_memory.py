"""A third-party plugin written only from the README ("Writing a plugin") and rrgbench/extension/hookspecs.py.

A key-value memory: learnable keys and values; each query reads the softmax-weighted values and adds them
(``X + R(X)``). Used by tests/test_extension_contract.py to prove the documented contract is the real one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from rrgbench import hookimpl
from rrgbench.extension.components import Memory, MemoryOutput
from rrgbench.extension.options import option


@dataclass(frozen=True)
class KVOptions:
    slots: int = option(512, "number of memory slots", min=1)


class KVMemory(Memory):
    applies_to = ("visual",)

    def __init__(self, options: KVOptions, context) -> None:
        super().__init__()
        self.keys = nn.Parameter(torch.randn(options.slots, context.d_model) / context.d_model ** 0.5)
        self.values = nn.Parameter(torch.zeros(options.slots, context.d_model))

    def forward(self, queries, modality, mask=None):
        weights = torch.softmax(queries @ self.keys.T, dim=-1)
        retrieved = weights @ self.values
        return MemoryOutput(consolidated=queries + retrieved, retrieved=retrieved, mask=mask)

    def memory_size(self) -> int:
        return self.keys.shape[0]


class ForgetfulMemory(KVMemory):
    """The same memory with ``applies_to`` left out: the harness must refuse it, not silently skip it."""

    applies_to = ()


@hookimpl
def rrgbench_register_memories(register):
    register("kv", KVMemory, options=KVOptions, description="key-value memory")
    register("kv-forgetful", ForgetfulMemory, options=KVOptions, description="applies to nothing")


@hookimpl
def rrgbench_register_models(register):
    register("transformer-kv", description="Transformer + kv memory", memory="kv",
             overrides={"memory.slots": 1024}, profiles={"small": {"memory.slots": 64}}, ablation_of="transformer")
    register("transformer-forgetful", description="a memory that applies to nothing", memory="kv-forgetful")
