"""Entropic optimal transport for MCSAM's memory initialisation (torch only, no other dependency).

Owns :func:`sinkhorn` (log-domain Sinkhorn-Knopp), :func:`marginal_errors`, and the balanced
clustering built on them, :func:`balanced_prototypes`: alternate (1) the entropic OT plan between
samples and prototypes under uniform marginals (every sample carries mass 1/N, every prototype
receives 1/K, so the assignment is balanced) and (2) barycentre updates (each prototype becomes the
plan-weighted mean of the samples it receives). Samples and prototypes live on the unit sphere and
the cost is ``1 - cos``, so ``epsilon`` is on a fixed scale (cost in [0, 2]).

When there are fewer samples than prototypes (N < K) uniform marginals still work: each sample's
mass is spread over about K/N prototypes, which then sit on (entropically blurred copies of) that
sample; a small jitter is added at the end so that copies differ (identical slots would receive
identical gradients and never separate).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


def sinkhorn(cost: torch.Tensor, a: torch.Tensor, b: torch.Tensor, epsilon: float, iters: int,
             tol: float = 0.0) -> torch.Tensor:
    """Entropic OT plan ``P`` [N, K] with row sums ``a`` [N] and column sums ``b`` [K].

    Minimises ``<P, C> - epsilon * H(P)``; the dual potentials are updated in the log domain, so a
    small ``epsilon`` does not underflow. After the last iteration the column marginals are exact and
    the row marginals are as close as ``iters`` allows; with ``tol`` > 0 the iterations stop early once
    the row marginals are within ``tol`` (L1).
    """
    f, g, _ = sinkhorn_potentials(cost, a, b, epsilon, iters, tol)
    return transport_plan(cost, f, g, epsilon)


def sinkhorn_potentials(cost: torch.Tensor, a: torch.Tensor, b: torch.Tensor, epsilon: float, iters: int,
                        tol: float = 0.0) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Dual potentials ``f`` [N], ``g`` [K] and the number of iterations run (see :func:`sinkhorn`)."""
    _check_problem(cost, a, b, epsilon, iters)
    scaled = cost / epsilon
    log_a, log_b = a.log(), b.log()
    f = torch.zeros_like(a)
    g = torch.zeros_like(b)
    done = 0
    for done in range(1, iters + 1):
        row_lse = torch.logsumexp(g[None, :] / epsilon - scaled, dim=1)
        if tol and done > 1 and float((torch.exp(f / epsilon + row_lse) - a).abs().sum()) < tol:
            done -= 1
            break
        f = epsilon * (log_a - row_lse)
        g = epsilon * (log_b - torch.logsumexp(f[:, None] / epsilon - scaled, dim=0))
    return f, g, done


def transport_plan(cost: torch.Tensor, f: torch.Tensor, g: torch.Tensor, epsilon: float) -> torch.Tensor:
    """The primal plan ``exp((f_i + g_j - C_ij) / epsilon)`` of dual potentials ``f``, ``g``."""
    return torch.exp((f[:, None] + g[None, :] - cost) / epsilon)


def _check_problem(cost: torch.Tensor, a: torch.Tensor, b: torch.Tensor, epsilon: float, iters: int) -> None:
    if cost.dim() != 2 or a.shape != cost.shape[:1] or b.shape != cost.shape[1:]:
        raise ValueError(f"sinkhorn: cost {tuple(cost.shape)} does not match a {tuple(a.shape)} and b {tuple(b.shape)}")
    if epsilon <= 0 or iters < 1:
        raise ValueError(f"sinkhorn: epsilon must be > 0 and iters >= 1, got {epsilon} and {iters}")
    if bool((a <= 0).any()) or bool((b <= 0).any()):
        raise ValueError("sinkhorn: marginals must be strictly positive")
    if not math.isclose(float(a.sum()), float(b.sum()), rel_tol=1e-4):
        raise ValueError(f"sinkhorn: marginals carry different mass ({float(a.sum())} vs {float(b.sum())})")


def marginal_errors(plan: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    """L1 distance of the plan's row and column sums from the requested marginals."""
    return float((plan.sum(1) - a).abs().sum()), float((plan.sum(0) - b).abs().sum())


@dataclass
class PrototypeResult:
    prototypes: torch.Tensor  # [K, D], unit norm
    iterations: int  # Sinkhorn iterations in total
    row_error: float  # L1 marginal errors of the last plan
    column_error: float


def cosine_cost(samples: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
    """``1 - cos`` between unit-norm samples [N, D] and prototypes [K, D] (normalised here)."""
    return 1.0 - samples @ F.normalize(prototypes, dim=-1).T


def initial_prototypes(samples: torch.Tensor, k: int, generator: torch.Generator, jitter: float) -> torch.Tensor:
    """K distinct samples when there are enough, else the samples repeated with jitter."""
    n = samples.shape[0]
    if n >= k:
        return samples[torch.randperm(n, generator=generator, device="cpu")[:k].to(samples.device)].clone()
    repeated = samples[torch.arange(k, device=samples.device) % n]
    return add_jitter(repeated, generator, jitter)


def add_jitter(x: torch.Tensor, generator: torch.Generator, scale: float) -> torch.Tensor:
    """Unit vectors moved by Gaussian noise of norm about ``scale`` and renormalised."""
    noise = torch.randn(x.shape, generator=generator).to(x.device, x.dtype) / math.sqrt(x.shape[1])
    return F.normalize(x + scale * noise, dim=-1)


def balanced_prototypes(samples: torch.Tensor, k: int, epsilon: float, iters: int, rounds: int,
                        generator: torch.Generator, tol: float = 0.0, jitter: float = 0.1) -> PrototypeResult:
    """Balanced clustering of ``samples`` [N, D] (projected to the unit sphere) into ``k`` prototypes.

    ``rounds`` alternations of an entropic OT plan (``iters`` Sinkhorn iterations at most, stopping
    at row-marginal error ``tol``) and spherical barycentre updates.
    """
    samples = F.normalize(samples.float(), dim=-1)
    n = samples.shape[0]
    a = torch.full((n,), 1.0 / n, device=samples.device)
    b = torch.full((k,), 1.0 / k, device=samples.device)
    prototypes = initial_prototypes(samples, k, generator, jitter)
    total = 0
    for _ in range(max(rounds, 1)):
        cost = cosine_cost(samples, prototypes)
        f, g, done = sinkhorn_potentials(cost, a, b, epsilon, iters, tol)
        plan, total = transport_plan(cost, f, g, epsilon), total + done
        prototypes = F.normalize(plan.T @ samples / plan.sum(0)[:, None], dim=-1)
    if n < k:
        prototypes = add_jitter(prototypes, generator, jitter)
    row_error, column_error = marginal_errors(plan, a, b)
    return PrototypeResult(prototypes, total, row_error, column_error)


def usage_entropy(samples: torch.Tensor, prototypes: torch.Tensor) -> float:
    """How evenly samples use the prototypes: entropy of nearest-prototype (cosine) counts.

    Normalised to [0, 1] by ``log(min(N, K))``, the most even usage possible; 1.0 means every
    reachable prototype is the nearest of the same number of samples.
    """
    nearest = (F.normalize(samples.float(), dim=-1) @ F.normalize(prototypes.float(), dim=-1).T).argmax(dim=1)
    counts = torch.bincount(nearest, minlength=prototypes.shape[0]).double()
    p = counts[counts > 0] / counts.sum()
    best = math.log(min(samples.shape[0], prototypes.shape[0]))
    return float(-(p * p.log()).sum() / best) if best > 0 else 1.0
