"""Resolving a run's configuration: recipe + dataset protocol + size profile + user overrides.

Precedence, lowest first:

1. each schema's defaults (harness sections below, component/dataset schemas from plugins);
2. the recipe's ``overrides`` (the paper's settings for that model);
3. the dataset's protocol ``defaults`` (max length, vocabulary threshold, ...);
4. the size profile (``small`` for the synthetic dataset, ``paper`` for real data) from
   :data:`PROFILES`, then the recipe's own ``profiles[profile]``. Profile keys are *soft*: a key that
   names an option the chosen component does not have is skipped (a profile shrinks whatever exists);
5. ``--set section.key=value`` from the user: strict, unknown keys are errors.

The result, :class:`RunConfig`, is plain data (JSON-able) and is what a run records and a
checkpoint carries, so an evaluation rebuilds exactly the trained model.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rrgbench import options as opt
from rrgbench.errors import ConfigError, did_you_mean
from rrgbench.options import option
from rrgbench.plugins import Registry

COMPONENT_KINDS = ("encoder", "memory", "alignment", "decoder")


@dataclass(frozen=True)
class ModelOptions:
    d_model: int = option(512, "model width D shared by all components", min=8)


@dataclass(frozen=True)
class DataOptions:
    image_size: int = option(224, "side of the square image the model sees (eval: resize to this)", min=16)
    train_resize: int = option(256, "training: resize to this, then random-crop image_size", min=16)
    flip: bool = option(True, "training: random horizontal flip")
    max_len: int = option(60, "maximum target length in tokens for training and decoding", min=2)
    threshold: int = option(3, "vocabulary: keep words seen at least this often in train reports", min=1)
    batch_size: int = option(16, "training batch size", min=1)
    eval_batch_size: int = option(32, "evaluation batch size", min=1)
    num_workers: int = option(0, "data loader worker processes", min=0)
    cache_images: bool = option(False, "keep each decoded image in memory after its first load (3 bytes per pixel; "
                                       "only with num_workers 0, whose dataset lives for the whole run)")
    allow_missing: bool = option(False, "skip studies whose images are absent (counted in results.json)")


@dataclass(frozen=True)
class TrainOptions:
    epochs: int = option(30, "training epochs", min=0)
    lr_visual: float = option(5e-5, "learning rate of the visual extractor (encoder)", min=0.0)
    lr: float = option(1e-4, "learning rate of every other parameter", min=0.0)
    weight_decay: float = option(5e-5, "Adam weight decay", min=0.0)
    amsgrad: bool = option(True, "use AMSGrad")
    beta1: float = option(0.9, "Adam beta1", min=0.0, max=1.0)
    beta2: float = option(0.999, "Adam beta2", min=0.0, max=1.0)
    eps: float = option(1e-8, "Adam epsilon (torch's default; R2GenCMN's trainer uses 1e-9)", min=0.0)
    step_size: int = option(50, "StepLR: decay the learning rates every this many epochs", min=1)
    gamma: float = option(0.1, "StepLR decay factor", min=0.0)
    clip_value: float = option(0.1, "clip each gradient value to +-this (0 disables)", min=0.0)
    clip_norm: float = option(0.0, "clip the global gradient norm to this (0 disables)", min=0.0)
    select_metric: str = option("bleu_4", "validation metric used to select the checkpoint (never test)")
    validate_from: int = option(1, "first epoch (1-based) that is validated and can be selected; earlier "
                                   "epochs are only checkpointed as 'last'; the final epoch is always validated",
                                min=1)
    max_steps_per_epoch: int = option(0, "stop an epoch after this many steps (0: whole epoch)", min=0)
    checkpoint_every: int = option(0, "also checkpoint every N steps inside an epoch (0: epochs only)", min=0)
    amp: bool = option(True, "bf16 autocast on CUDA (ignored on CPU)")


@dataclass(frozen=True)
class DecodeOptions:
    method: str = option("beam", "decoding method", choices=("beam", "greedy"))
    beam_size: int = option(3, "beam width", min=1)
    max_len: int = option(0, "maximum generated tokens (0: data.max_len)", min=0)


@dataclass(frozen=True)
class LossOptions:
    weights: dict[str, float] = option({}, "weights of auxiliary loss terms by name, e.g. {\"align\": 1.0}")


HARNESS_SECTIONS: dict[str, type] = {
    "model": ModelOptions,
    "data": DataOptions,
    "train": TrainOptions,
    "decode": DecodeOptions,
    "loss": LossOptions,
}

PROFILES: dict[str, dict[str, Any]] = {
    "paper": {},
    # Sized so that a default synthetic run (``rrgbench run --model mcsam``) trains, validates, decodes
    # and scores within 10 minutes on 2 CPU cores, and long enough for a generator to learn to read
    # the image (measured; see README "Quickstart"). regnetx_002: the fastest of the timm CNNs timed
    # (resnet18/10t/14t/26, efficientnet_b0, mobilenetv3_small_100, regnetx_002; forward + backward of
    # 32 images at 64 px: 0.15 s on 2 cores, resnet18 0.60 s); trained end to end as a finding
    # classifier at 64 px it reaches micro-F1 0.73 in 100 s. More studies, not more epochs: with 1,000
    # training studies MCSAM's validation finding F1 was 0.17 after ~780 steps, with 3,000 it was 0.35.
    # No dropout: at ~1,000 steps it only slowed learning (MCSAM, same seed and schedule: validation CE
    # micro-F1 0.556 vs 0.399 after 6 epochs, test 0.638 vs 0.570) and it cost 8% of a training step.
    # Epochs 1-3 are not validated (no measured run ever selected one of them); the learning rates
    # halve after epoch 6; decoded images stay in memory (4,000 studies x 49 KB).
    "small": {
        "model.d_model": 128,
        "encoder.backbone": "regnetx_002",
        "data.image_size": 64,
        "data.train_resize": 70,
        "data.batch_size": 32,
        "data.eval_batch_size": 100,
        "dataset.n_train": 3600,
        "dataset.n_val": 100,
        "decoder.layers": 2,
        "decoder.encoder_layers": 1,
        "decoder.heads": 4,
        "decoder.d_ff": 256,
        "data.cache_images": True,
        "encoder.dropout": 0.0,
        "memory.dropout": 0.0,
        "decoder.dropout": 0.0,
        "train.epochs": 9,
        "train.validate_from": 4,
        "train.lr_visual": 1e-3,
        "train.lr": 1e-3,
        "train.step_size": 6,
        "train.gamma": 0.5,
        "train.clip_value": 0.0,
        "train.clip_norm": 1.0,
    },
}


@dataclass
class RunConfig:
    """The fully resolved, validated configuration of one run (plain data)."""

    model: str
    dataset: str
    profile: str
    seed: int
    components: dict[str, str]
    sections: dict[str, dict[str, Any]]
    recipe_kind: str = "generator"
    user_overrides: dict[str, str] = field(default_factory=dict)

    def section(self, name: str) -> dict[str, Any]:
        return self.sections[name]

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "dataset": self.dataset,
            "profile": self.profile,
            "seed": self.seed,
            "components": dict(self.components),
            "recipe_kind": self.recipe_kind,
            "sections": copy.deepcopy(self.sections),
            "user_overrides": dict(self.user_overrides),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunConfig:
        return cls(
            model=data["model"], dataset=data["dataset"], profile=data["profile"], seed=int(data["seed"]),
            components=dict(data["components"]), sections=copy.deepcopy(dict(data["sections"])),
            recipe_kind=data.get("recipe_kind", "generator"), user_overrides=dict(data.get("user_overrides", {})),
        )

    def fingerprint(self) -> str:
        """Short hash of everything that determines the result (used to match runs for --resume)."""
        payload = {k: v for k, v in self.to_dict().items() if k != "user_overrides"}
        text = json.dumps(payload, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def schemas_for(registry: Registry, components: Mapping[str, str], dataset: str) -> dict[str, type]:
    """Option schema of every config section for this choice of components and dataset."""
    schemas = dict(HARNESS_SECTIONS)
    for kind in COMPONENT_KINDS:
        schemas[kind] = registry.get(kind, components[kind]).options
    schemas["dataset"] = registry.get("dataset", dataset).options
    return schemas


def resolve_config(
    registry: Registry,
    model: str,
    dataset: str,
    overrides: Mapping[str, Any] | None = None,
    profile: str | None = None,
    seed: int = 0,
) -> RunConfig:
    """Build the :class:`RunConfig` of ``model`` on ``dataset`` (see the module docstring)."""
    recipe = registry.get("model", model)
    dataset_entry = registry.get("dataset", dataset)
    components = {kind: recipe.extra.get(kind, default) for kind, default in
                  zip(COMPONENT_KINDS, ("timm", "none", "none", "transformer"), strict=True)}
    schemas = schemas_for(registry, components, dataset)
    profile = profile or dataset_entry.extra.get("profile", "paper")
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile '{profile}'{did_you_mean(profile, PROFILES)}; known: "
                          + ", ".join(PROFILES))
    raw: dict[str, dict[str, Any]] = {name: {} for name in schemas}
    _apply(raw, schemas, recipe.extra.get("overrides") or {}, strict=True, origin=f"recipe '{model}'")
    _apply(raw, schemas, dataset_entry.extra.get("defaults") or {}, strict=False, origin="dataset")
    _apply(raw, schemas, PROFILES[profile], strict=False, origin=f"profile '{profile}'")
    recipe_profiles = recipe.extra.get("profiles") or {}
    _apply(raw, schemas, recipe_profiles.get(profile, {}), strict=False, origin=f"recipe '{model}'")
    _apply(raw, schemas, overrides or {}, strict=True, origin="--set")
    sections = {name: opt.as_dict(opt.validate(schema, raw[name], _where(name, components, dataset)))
                for name, schema in schemas.items()}
    return RunConfig(model=model, dataset=dataset, profile=profile, seed=seed, components=components,
                     sections=sections, recipe_kind=recipe.extra.get("kind", "generator"),
                     user_overrides={k: str(v) for k, v in (overrides or {}).items()})


def _where(section: str, components: Mapping[str, str], dataset: str) -> str:
    if section in components:
        return f"{section} '{components[section]}'"
    if section == "dataset":
        return f"dataset '{dataset}'"
    return section


def _apply(raw: dict[str, dict[str, Any]], schemas: Mapping[str, type], values: Mapping[str, Any],
           *, strict: bool, origin: str) -> None:
    for dotted, value in values.items():
        section, _, key = dotted.partition(".")
        if section not in schemas or not key:
            if strict:
                raise ConfigError(f"{origin}: '{dotted}' is not section.key{did_you_mean(section, schemas)}; "
                                  f"sections: {', '.join(schemas)}")
            continue
        known = {info.name for info in opt.describe(schemas[section])}
        if key not in known:
            if strict:
                hint = did_you_mean(key, known) or (f"; valid: {', '.join(sorted(known))}" if known else
                                                    "; this component takes no options")
                raise ConfigError(f"{origin}: unknown option '{dotted}'{hint}")
            continue
        raw[section][key] = value
