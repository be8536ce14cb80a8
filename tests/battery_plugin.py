"""A plugin whose memory fails while training: the battery checks the one-line error that names this file.

Loaded with ``rrgbench -p battery_plugin`` (tests/ is on the import path under pytest).
"""

from __future__ import annotations

from rrgbench import hookimpl
from rrgbench.extension.components import Memory
from rrgbench.extension.options import NoOptions


class ExplodingMemory(Memory):
    applies_to = ("visual",)

    def __init__(self, options: NoOptions, context) -> None:
        super().__init__()

    def forward(self, queries, modality, mask=None):
        raise ValueError("the memory bank is on fire")


@hookimpl
def rrgbench_register_memories(register):
    register("exploding", ExplodingMemory, description="fails on its first forward pass")


@hookimpl
def rrgbench_register_models(register):
    register("transformer-exploding", description="Transformer + a memory that fails", memory="exploding")
