"""What the built-in ``synthetic`` dataset generates: its option schema, which is also the generator's cache key.

Torch- and numpy-free, so the dataset's options can be listed without loading the generator
(:mod:`rrgbench.data.synthetic`). Every field is part of :meth:`SyntheticSpec.fingerprint`, the name of the
cached build.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from rrgbench.data.studies import SPLITS
from rrgbench.errors import ConfigError
from rrgbench.extension.options import check_fields, option

GENERATOR_VERSION = 2  # bump when the generated studies change (it names the cached builds)


@dataclass(frozen=True)
class SyntheticSpec:
    """Options of the ``synthetic`` dataset (``--set dataset.KEY=VALUE``) and the generator's specification."""

    n_train: int = option(1000, "training studies to generate", min=0, max=1_000_000)
    n_val: int = option(150, "validation studies", min=0, max=1_000_000)
    n_test: int = option(300, "test studies", min=0, max=1_000_000)
    image_size: int = option(128, "generated image side in pixels", min=32, max=1024)
    difficulty: float = option(0.5, "0 easy .. 1 hard: finding size/contrast, noise, subtle cases", min=0.0, max=1.0)
    seed: int = option(0, "generator seed (independent of the training seed)", min=0)

    def __post_init__(self) -> None:
        check_fields(self, "synthetic")  # the bounds declared above, also when built directly

    def fingerprint(self) -> str:
        """A short stable hash of the fields and the generator version, used as the folder name."""
        fields = {k: (float(v) if k == "difficulty" else int(v)) for k, v in asdict(self).items()}
        payload = json.dumps({"version": GENERATOR_VERSION, **fields}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]

    def size_of(self, split: str) -> int:
        """Number of studies in ``split``."""
        if split not in SPLITS:
            raise ConfigError(f"synthetic: unknown split '{split}' (expected one of {', '.join(SPLITS)})")
        return int(getattr(self, f"n_{split}"))
