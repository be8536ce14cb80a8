"""R2Gen's relational memory (RM) and memory-driven conditional layer norm (MCLN).

Relational memory (Chen et al., 2020, Sec. 2.2): a matrix ``M`` of ``slots x d`` updated once per
decoding step from the embedding ``y`` of the token fed at that step:

    Z      = M + MHA(query=M, keys/values=[M; y])         (attend over the memory and the new token)
    M~     = Z + MLP(Z)
    i, f   = sigmoid(W y + U tanh(M))  split in two       (input and forget gates, one per slot)
    M_next = i * tanh(M~) + f * M

The initial memory is the identity matrix padded (or cut) to ``slots x d`` and is not learned, as in
R2Gen's code. MCLN normalises ``x`` and scales/shifts it with ``gamma + MLP_g(vec(M))`` and
``beta + MLP_b(vec(M))``; its MLPs start with Xavier weights and biases of 0.1 (R2Gen's init).
Deviation: the normalisation is ``torch.nn.functional.layer_norm`` (biased variance inside the
square root) instead of R2Gen's ``(x - mean) / (std + eps)`` with the unbiased std.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from rrgbench_builtins.layers import MultiHeadAttention
from torch import nn


class RelationalMemory(nn.Module):
    """Gated multi-slot memory stepped over the sequence of input embeddings."""

    def __init__(self, slots: int, d_model: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.slots, self.d_model = slots, d_model
        self.attn = MultiHeadAttention(d_model, heads, dropout)
        self.mlp = nn.Sequential(nn.Linear(d_model, d_model), nn.ReLU(), nn.Linear(d_model, d_model), nn.ReLU())
        self.input_gates = nn.Linear(d_model, 2 * d_model)  # W: token -> (input, forget) gate logits
        self.memory_gates = nn.Linear(d_model, 2 * d_model)  # U: tanh(memory) -> (input, forget) gate logits

    @property
    def state_size(self) -> int:
        """Width of the flattened memory, ``slots * d_model``."""
        return self.slots * self.d_model

    def initial(self, batch: int, device: torch.device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The initial memory [B, slots, d]: identity padded (or cut) to ``slots x d``."""
        eye = torch.eye(self.slots, self.d_model, device=device, dtype=dtype)
        return eye.unsqueeze(0).expand(batch, -1, -1).contiguous()

    def gates(self, token: torch.Tensor, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Input and forget gates [B, slots, d] from the token embedding [B, d] and memory [B, slots, d]."""
        logits = self.input_gates(token).unsqueeze(1) + self.memory_gates(torch.tanh(memory))
        input_gate, forget_gate = logits.chunk(2, dim=-1)
        return torch.sigmoid(input_gate), torch.sigmoid(forget_gate)

    def step(self, token: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        """One update: token embedding [B, d], memory [B, slots, d] -> next memory [B, slots, d]."""
        source = torch.cat([memory, token.unsqueeze(1)], dim=1)
        candidate = memory + self.attn(memory, source)
        candidate = candidate + self.mlp(candidate)
        input_gate, forget_gate = self.gates(token, memory)
        return input_gate * torch.tanh(candidate) + forget_gate * memory

    def forward(self, tokens: torch.Tensor, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Step over ``tokens`` [B, T, d]; returns the state after each step [B, T, slots, d] and the last."""
        states = []
        for t in range(tokens.shape[1]):
            memory = self.step(tokens[:, t], memory)
            states.append(memory)
        return torch.stack(states, dim=1), memory


def _conditioner(memory_dim: int, d_model: int) -> nn.Sequential:
    """MLP from the flattened memory to a per-feature shift, initialised as in R2Gen."""
    mlp = nn.Sequential(nn.Linear(memory_dim, d_model), nn.ReLU(), nn.Linear(d_model, d_model))
    for layer in mlp:
        if isinstance(layer, nn.Linear):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.constant_(layer.bias, 0.1)
    return mlp


class ConditionalLayerNorm(nn.Module):
    """MCLN: layer norm whose gain and bias are shifted by MLPs of the memory state."""

    def __init__(self, d_model: int, memory_dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(d_model))
        self.beta = nn.Parameter(torch.zeros(d_model))
        self.mlp_gamma = _conditioner(memory_dim, d_model)
        self.mlp_beta = _conditioner(memory_dim, d_model)

    def forward(self, x: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        """``x`` [B, T, d] normalised per position with the memory ``memory`` [B, T, slots*d] of that position."""
        normed = F.layer_norm(x, x.shape[-1:], eps=self.eps)
        gamma = self.gamma + self.mlp_gamma(memory)
        beta = self.beta + self.mlp_beta(memory)
        return gamma * normed + beta
