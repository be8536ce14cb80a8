"""A run's configuration: typed option sections resolved from recipe, dataset, profile, file and flags.

Precedence, lowest first (each value's origin is kept in :attr:`RunConfig.sources`):

1. ``default``: each schema's defaults (harness sections below, component/dataset schemas from plugins);
2. ``recipe``: the recipe's ``overrides`` (the paper's settings for that model);
3. ``dataset``: the dataset's protocol ``defaults`` (max length, vocabulary threshold, ...);
4. ``profile``: the size profile (``small`` for the synthetic dataset, ``paper`` for real data) from
   :data:`PROFILES`, then the recipe's own ``profiles[profile]``;
5. ``suite``: a suite file's suite-wide overrides;
6. ``file``: a run configuration file (``rrgbench run --config FILE``);
7. ``flag``: ``--set section.key=value`` (and the flags that are shortcuts for it).

Layers 3-5 are *soft*: a key naming an option the chosen components do not have is skipped (a profile
shrinks whatever exists). Recipe overrides, files and flags are strict: an unknown key is an error with
"did you mean". :attr:`RunConfig.overrides` keeps the suite's (those applied), the file's and the flags'
values by origin; only the file's and the flags' (:data:`USER_ORIGINS`, merged by :func:`user_choices`)
are the user's choices, and a leaderboard labels rows by them.

:class:`RunConfig` holds the *validated option instances* (``config.train.epochs``); ``to_dict`` /
``from_dict`` give the plain JSON form that a run, a checkpoint and a record carry, so an evaluation
rebuilds exactly the trained model. The ``efficiency`` section changes what is measured about cost, never
a result: it is left out of :meth:`RunConfig.fingerprint`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rrgbench.errors import ConfigError, did_you_mean
from rrgbench.extension import options as opt
from rrgbench.extension.options import OptionInfo, option
from rrgbench.extension.plugins import Registry
from rrgbench.sizes import check_memory

DEFAULT_COMPONENTS = {"encoder": "timm", "memory": "none", "alignment": "none", "decoder": "transformer"}
"""The component of each kind a recipe gets when it names none."""
COMPONENT_KINDS = tuple(DEFAULT_COMPONENTS)


@dataclass(frozen=True)
class ModelOptions:
    d_model: int = option(512, "model width D shared by all components", min=8, max=16_384)


@dataclass(frozen=True)
class DataOptions:
    image_size: int = option(224, "side of the square image the model sees (eval: resize to this)", min=16,
                             max=4096)
    train_resize: int = option(256, "training: resize to this, then random-crop image_size", min=16, max=4096)
    flip: bool = option(True, "training: random horizontal flip")
    max_len: int = option(60, "maximum target length in tokens for training and decoding", min=2, max=4096)
    threshold: int = option(3, "vocabulary: keep words seen at least this often in train reports", min=1)
    batch_size: int = option(16, "training batch size", min=1, max=65_536)
    eval_batch_size: int = option(32, "evaluation batch size", min=1, max=65_536)
    num_workers: int = option(-1, "data loader worker processes; -1: one per spare core (none when images are "
                                  "cached)", min=-1, max=512)
    cache_images: bool = option(False, "keep each decoded image in memory after its first load (1 byte per pixel, "
                                       "3 for colour; only without worker processes: the dataset lives for the run)")
    allow_missing: bool = option(False, "skip studies whose images are absent (counted in results.json)")


@dataclass(frozen=True)
class TrainOptions:
    epochs: int = option(30, "training epochs", min=0, max=1_000_000)
    lr_visual: float = option(5e-5, "learning rate of the visual extractor (encoder)", min=0.0, max=10.0)
    lr: float = option(1e-4, "learning rate of every other parameter", min=0.0, max=10.0)
    weight_decay: float = option(5e-5, "Adam weight decay", min=0.0)
    amsgrad: bool = option(True, "use AMSGrad")
    beta1: float = option(0.9, "Adam beta1", min=0.0, max=1.0)
    beta2: float = option(0.999, "Adam beta2", min=0.0, max=1.0)
    eps: float = option(1e-8, "Adam epsilon (torch's default; R2GenCMN's trainer uses 1e-9)", min=0.0)
    step_size: int = option(50, "StepLR: decay the learning rates every this many epochs", min=1)
    gamma: float = option(0.1, "StepLR decay factor", min=0.0, max=10.0)
    clip_value: float = option(0.1, "clip each gradient value to +-this (0 disables)", min=0.0)
    clip_norm: float = option(0.0, "clip the global gradient norm to this (0 disables)", min=0.0)
    select_metric: str = option("bleu_4", "validation metric used to select the checkpoint (never test)")
    curve_metrics: list[str] = option(["bleu_4", "ce_f1_micro"], "metrics also computed at every validation, for "
                                                               "learning curves (cheap ones: no METEOR)")
    validate_from: int = option(1, "first epoch (1-based) that is validated and can be selected; earlier "
                                   "epochs are only checkpointed as 'last'; the final epoch is always validated",
                                min=1)
    max_steps_per_epoch: int = option(0, "stop an epoch after this many steps (0: whole epoch)", min=0)
    checkpoint_every: int = option(0, "also checkpoint every N steps inside an epoch (0: epochs only)", min=0)
    amp: bool = option(True, "bf16 autocast on CUDA (ignored on CPU)")
    validate_studies: int = option(0, "validate on a fixed subset of this many validation studies, the same every "
                                      "epoch (0: all); for large splits such as MIMIC-CXR's", min=0)
    validate_method: str = option("decode", "decoding at validation: as decode.method, or greedy (cheaper; the "
                                            "test split is always decoded with decode.method)",
                                  choices=("decode", "greedy"))


@dataclass(frozen=True)
class DecodeOptions:
    method: str = option("beam", "decoding method", choices=("beam", "greedy"))
    beam_size: int = option(3, "beam width", min=1, max=512)
    max_len: int = option(0, "maximum generated tokens (0: data.max_len)", min=0, max=4096)


@dataclass(frozen=True)
class LossOptions:
    weights: dict[str, float] = option({}, "weights of auxiliary loss terms by name, e.g. {\"align\": 1.0}")


@dataclass(frozen=True)
class ScoringOptions:
    labeler: str = option("chexpert-rules", "labeler of the clinical-efficacy metrics (rrgbench list labelers)")
    uncertain: str = option("auto", "uncertain-label mapping: auto (the labeler's own: r2gen for chexpert-rules, "
                                    "chexbert for chexbert), r2gen (only 1 is positive) or chexbert (1 and -1 "
                                    "positive, f1chexbert's own)", choices=("auto", "r2gen", "chexbert"))
    skip: list[str] = option([], "metric keys not computed (recorded as unavailable with this reason, never as 0)")
    resamples: int = option(1000, "bootstrap resamples of the 95% CIs", min=1, max=1_000_000)
    bootstrap_seed: int = option(0, "seed of the bootstrap resampling", min=0)


@dataclass(frozen=True)
class EfficiencyOptions:
    mode: str = option("auto", "cost measurements after the test decode: full, fast (fewer repeats, no profiling "
                               "repeats), off (parameters, training and test-decode times only), auto (fast for runs "
                               "of under 2,000 training steps, else full)", choices=("auto", "full", "fast", "off"))
    budget_seconds: float = option(120.0, "soft cap on the seconds spent on inference measurements", min=1.0)


HARNESS_SECTIONS: dict[str, type] = {
    "model": ModelOptions,
    "data": DataOptions,
    "train": TrainOptions,
    "decode": DecodeOptions,
    "loss": LossOptions,
    "scoring": ScoringOptions,
    "efficiency": EfficiencyOptions,
}
RESULT_NEUTRAL_SECTIONS = ("efficiency",)
"""Sections that change what is measured about cost but never a result (not in the fingerprint)."""
USER_ORIGINS = ("file", "flag")
"""Origins of the user's own choices, lowest first (see :func:`user_choices`)."""


def user_choices(overrides: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The user's choices among overrides kept by origin (:attr:`RunConfig.overrides`): file, then flags."""
    return {key: value for origin in USER_ORIGINS for key, value in (overrides.get(origin) or {}).items()}


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
    # halve after epoch 6; decoded images stay in memory (4,000 grayscale studies x 16 KB).
    "small": {
        "model.d_model": 128,
        "encoder.backbone": "regnetx_002",
        "encoder.channels_last": False,  # keeps the default run's numerics (1.57x faster: benchmarks/results/ab.json)
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


@dataclass(frozen=True)
class RunConfig:
    """The fully resolved, validated configuration of one run.

    ``sections`` maps each section name to its validated option instance: the harness sections
    (``model``, ``data``, ``train``, ``decode``, ``loss``, ``scoring``, ``efficiency``), the four component
    sections and ``dataset``. ``overrides`` holds the values set by the user (``file`` and ``flag``) and by a
    suite, apart; ``sources`` the origin of every value that is not a schema default.
    """

    model: str
    dataset: str
    profile: str
    seed: int
    components: Mapping[str, str]
    sections: Mapping[str, Any]
    overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    sources: Mapping[str, str] = field(default_factory=dict)

    # -- typed access to each section --------------------------------------------------------------
    @property
    def model_options(self) -> ModelOptions:
        return self.sections["model"]

    @property
    def data(self) -> DataOptions:
        return self.sections["data"]

    @property
    def train(self) -> TrainOptions:
        return self.sections["train"]

    @property
    def decode(self) -> DecodeOptions:
        return self.sections["decode"]

    @property
    def loss(self) -> LossOptions:
        return self.sections["loss"]

    @property
    def scoring(self) -> ScoringOptions:
        return self.sections["scoring"]

    @property
    def efficiency(self) -> EfficiencyOptions:
        return self.sections["efficiency"]

    @property
    def encoder(self) -> Any:
        return self.sections["encoder"]

    @property
    def memory(self) -> Any:
        return self.sections["memory"]

    @property
    def alignment(self) -> Any:
        return self.sections["alignment"]

    @property
    def decoder(self) -> Any:
        return self.sections["decoder"]

    @property
    def dataset_options(self) -> Any:
        return self.sections["dataset"]

    @property
    def user_overrides(self) -> dict[str, Any]:
        """What the user chose (file, then flags): the values that tell a row of a leaderboard apart."""
        return user_choices(self.overrides)

    @property
    def decode_max_len(self) -> int:
        """Generated-token limit: ``decode.max_len``, or ``data.max_len`` when that is 0."""
        return self.decode.max_len or self.data.max_len

    def replace(self, **sections: Any) -> RunConfig:
        """A copy with some sections replaced by other (validated) option instances."""
        return dataclasses.replace(self, sections={**self.sections, **sections})

    # -- plain form --------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "dataset": self.dataset,
            "profile": self.profile,
            "seed": self.seed,
            "components": dict(self.components),
            "sections": {name: opt.as_dict(value) for name, value in self.sections.items()},
            "overrides": {origin: dict(values) for origin, values in self.overrides.items()},
            "sources": dict(self.sources),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], registry: Registry) -> RunConfig:
        """Validate a plain configuration (a run's config.json, a checkpoint's metadata) against the schemas."""
        try:
            components = {kind: str(data["components"][kind]) for kind in COMPONENT_KINDS}
            schemas = schemas_for(registry, components, str(data["dataset"]))
            raw_sections = data["sections"]
            sections = {name: opt.validate(schema, _known_only(schema, raw_sections.get(name) or {}),
                                           _where(name, components, str(data["dataset"])))
                        for name, schema in schemas.items()}
            overrides = data.get("overrides")
            if overrides is None:  # written before the overrides were split by origin
                overrides = {"flag": dict(data.get("user_overrides") or {})}
            return cls(model=str(data["model"]), dataset=str(data["dataset"]), profile=str(data["profile"]),
                       seed=int(data["seed"]), components=components, sections=sections,
                       overrides={k: dict(v) for k, v in overrides.items()}, sources=dict(data.get("sources") or {}))
        except (KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(f"malformed configuration ({type(exc).__name__}: {exc})") from None

    def result_settings(self) -> dict[str, Any]:
        """Everything that determines the result: the plain form without overrides, sources and cost settings."""
        plain = self.to_dict()
        plain["sections"] = {k: v for k, v in plain["sections"].items() if k not in RESULT_NEUTRAL_SECTIONS}
        return {k: v for k, v in plain.items() if k not in ("overrides", "sources")}

    def fingerprint(self) -> str:
        """Short hash of everything that determines the result (matches runs for --resume and suites)."""
        text = json.dumps(self.result_settings(), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def _known_only(schema: type, values: Mapping[str, Any]) -> dict[str, Any]:
    """Values of options the schema still declares (a config written by an older version may have more)."""
    known = {f.name for f in dataclasses.fields(schema)}
    return {k: v for k, v in values.items() if k in known}


def components_of(registry: Registry, model: str) -> dict[str, str]:
    """The component names a recipe chooses."""
    recipe = registry.get("model", model)
    return {kind: recipe.extra.get(kind, default) for kind, default in DEFAULT_COMPONENTS.items()}


def schemas_for(registry: Registry, components: Mapping[str, str], dataset: str) -> dict[str, type]:
    """Option schema of every config section for this choice of components and dataset."""
    schemas = dict(HARNESS_SECTIONS)
    for kind in COMPONENT_KINDS:
        schemas[kind] = registry.get(kind, components[kind]).options
    schemas["dataset"] = registry.get("dataset", dataset).options
    return schemas


def known_options(registry: Registry, model: str, dataset: str) -> dict[str, OptionInfo]:
    """Every ``section.key`` this recipe has on this dataset, with its description (the one place that says)."""
    schemas = schemas_for(registry, components_of(registry, model), dataset)
    return {f"{section}.{info.name}": info for section, schema in schemas.items() for info in opt.describe(schema)}


def applicable(registry: Registry, model: str, dataset: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The overrides whose option this recipe has on this dataset (soft application; others are skipped)."""
    known = known_options(registry, model, dataset)
    return {key: value for key, value in overrides.items() if key in known}


def profile_of(registry: Registry, dataset: str, profile: str | None) -> str:
    """The size profile a run uses: the one asked for, else the dataset's."""
    profile = profile or registry.get("dataset", dataset).extra.get("profile", "paper")
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile '{profile}'{did_you_mean(profile, PROFILES)}; known: "
                          + ", ".join(PROFILES))
    return profile


def layers(registry: Registry, model: str, dataset: str, profile: str, *, suite: Mapping[str, Any] | None = None,
           file: Mapping[str, Any] | None = None, flags: Mapping[str, Any] | None = None
           ) -> list[tuple[str, Mapping[str, Any], bool]]:
    """The override layers of a run, lowest first: (origin, values, strict)."""
    recipe = registry.get("model", model)
    dataset_entry = registry.get("dataset", dataset)
    recipe_profiles = recipe.extra.get("profiles") or {}
    return [
        ("recipe", recipe.extra.get("overrides") or {}, True),
        ("dataset", dataset_entry.extra.get("defaults") or {}, False),
        ("profile", PROFILES[profile], False),
        ("profile", recipe_profiles.get(profile, {}), False),
        ("suite", suite or {}, False),
        ("file", file or {}, True),
        ("flag", flags or {}, True),
    ]


def resolve_config(
    registry: Registry,
    model: str,
    dataset: str,
    overrides: Mapping[str, Any] | None = None,
    profile: str | None = None,
    seed: int = 0,
    *,
    suite_overrides: Mapping[str, Any] | None = None,
    file_overrides: Mapping[str, Any] | None = None,
) -> RunConfig:
    """Build the :class:`RunConfig` of ``model`` on ``dataset`` (see the module docstring).

    ``overrides`` are the command-line flags (``--set``), the strongest layer.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ConfigError(f"seed must be an integer from 0 to {2**32 - 1}, got {seed!r}")
    components = components_of(registry, model)
    schemas = schemas_for(registry, components, dataset)
    profile = profile_of(registry, dataset, profile)
    raw: dict[str, dict[str, Any]] = {name: {} for name in schemas}
    sources: dict[str, str] = {}
    kept: dict[str, dict[str, Any]] = {}
    for origin, values, strict in layers(registry, model, dataset, profile, suite=suite_overrides,
                                         file=file_overrides, flags=overrides):
        label = {"recipe": f"recipe '{model}'", "profile": f"profile '{profile}'", "flag": "--set"}.get(origin, origin)
        applied = _apply(raw, schemas, values, strict=strict, origin=label)
        for key in applied:
            sources[key] = origin
        if origin == "suite":
            kept["suite"] = applied  # soft: only the suite-wide values this recipe has
    sections = {name: opt.validate(schema, raw[name], _where(name, components, dataset))
                for name, schema in schemas.items()}
    kept["file"], kept["flag"] = dict(file_overrides or {}), dict(overrides or {})
    config = RunConfig(model=model, dataset=dataset, profile=profile, seed=seed, components=components,
                       sections=sections, overrides={k: v for k, v in kept.items() if v}, sources=sources)
    check_memory(config)  # sizes each allowed but together absurd (rrgbench.sizes)
    return config


def _where(section: str, components: Mapping[str, str], dataset: str) -> str:
    if section in components:
        return f"{section} '{components[section]}'"
    if section == "dataset":
        return f"dataset '{dataset}'"
    return section


def _apply(raw: dict[str, dict[str, Any]], schemas: Mapping[str, type], values: Mapping[str, Any],
           *, strict: bool, origin: str) -> dict[str, Any]:
    """Write ``values`` into ``raw``; returns the ones applied (strict layers refuse unknown keys)."""
    applied = {}
    for dotted, value in values.items():
        section, _, key = str(dotted).partition(".")
        if section not in schemas or not key:
            if strict:
                raise ConfigError(f"{origin}: '{dotted}' is not section.key{did_you_mean(section, schemas)}; "
                                  f"sections: {', '.join(schemas)}")
            continue
        known = [f.name for f in dataclasses.fields(schemas[section])]
        if key not in known:
            if strict:
                raise opt.unknown_option(origin, key, known, shown=dotted)
            continue
        raw[section][key] = value
        applied[dotted] = value
    return applied
