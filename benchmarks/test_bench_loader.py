"""Data loading at MIMIC-CXR scale: what one loader worker process delivers, and how many workers run.

MIMIC-CXR-JPG's radiographs are grayscale JPEGs of about 2,000-3,000 px a side; IU X-Ray's are small
PNGs. A session writes synthetic radiograph-like images of ``HEIGHT`` x ``WIDTH`` px (smooth anatomy-like
shading plus film-grain noise) to a temporary folder as an 8-bit grayscale JPEG (quality 95), an 8-bit
PNG and a 16-bit PNG, and times, in this one process (a loader worker is one such process; workers scale
with the cores they get):

* ``decode/FMT``: :func:`rrgbench.data.images.load_image` as the loader calls it (grayscale kept as one band);
* ``train-item/FMT``: decode + the training transform at the paper's settings (resize 256, random crop 224,
  flip, RGB, tensor, normalise) = one training image; ``eval-item/FMT`` the same with the evaluation
  transform (resize to 224 x 224). ``images/s per worker`` is 1 / the median;
* ``train-item/FMT`` is an A/B against converting to RGB before the transform (what the loader did before
  keeping grayscale as one band): ``rgb-first / A`` is that change's speed-up; the tensors are identical
  (``tests/test_loader.py``);
* ``loader``: a ``DataLoader`` over 2-view studies of JPEGs with the trainer's default worker count on this
  machine (:func:`rrgbench.data.loader.loader_workers`), studies/s, batch 16.

The figures also list the default worker count for N cores (``default workers, N cores``). Run:
``python -m pytest benchmarks/test_bench_loader.py --benchmark-only --benchmark-json FILE``.
"""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from benchutil import figure, per_second, ratio, record_median, record_seconds
from PIL import Image
from test_bench_ab import Timed

from rrgbench.config import DataOptions
from rrgbench.data.images import load_image
from rrgbench.data.loader import StudyDataset, image_transform, loader_workers, make_loader
from rrgbench.data.studies import Study
from rrgbench.data.tokenizer import Tokenizer

HEIGHT, WIDTH = 2500, 2000
FILES = 6  # per format; rounds cycle through them
FORMATS = {"jpeg": ".jpg", "png8": ".png", "png16": ".png"}
PAPER = DataOptions()  # 224 px, resize 256 for training, flips


def radiograph(seed: int, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """A radiograph-like 8-bit image: smooth shading (body, lungs, spine) plus film-grain noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    y, x = y / height - 0.5, x / width - 0.5
    body = np.exp(-(x / 0.42) ** 8 - (y / 0.55) ** 8)
    lungs = sum(np.exp(-((x - side * 0.17) / 0.12) ** 2 - ((y + 0.05) / 0.25) ** 2) for side in (-1, 1))
    spine = np.exp(-(x / 0.035) ** 2)
    image = 40 + 170 * body - 90 * lungs + 60 * spine + rng.normal(0, 6, (height, width))
    return np.clip(image, 0, 255).astype(np.uint8)


def write_image(pixels: np.ndarray, path: Path, fmt: str) -> None:
    if fmt == "png16":
        Image.fromarray(pixels.astype(np.uint16) * 257).save(path, compress_level=6)
    elif fmt == "png8":
        Image.fromarray(pixels).save(path, compress_level=6)
    else:
        Image.fromarray(pixels).save(path, quality=95)


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="rrgbench-loader-") as tmp:
        root = Path(tmp)
        for i in range(FILES):
            pixels = radiograph(i)
            for fmt, suffix in FORMATS.items():
                write_image(pixels, root / f"{fmt}-{i}{suffix}", fmt)
        yield root


def files(folder: Path, fmt: str) -> Iterator[Path]:
    return itertools.cycle(sorted(folder.glob(f"{fmt}-*{FORMATS[fmt]}")))


def rgb_first(transform, path: Path) -> torch.Tensor:
    """The former path: convert to RGB at full size, then transform."""
    return transform(load_image(path))


# ---------------------------------------------------------------------------------- benchmarks


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_decode(benchmark, folder, fmt):
    paths = files(folder, fmt)
    image = benchmark.pedantic(lambda: load_image(next(paths), keep_gray=True), rounds=FILES * 2, warmup_rounds=1)
    assert image.size == (WIDTH, HEIGHT) and image.mode == "L"
    key = f"decode/{fmt}"
    record_median(key, benchmark)
    per_second(f"{key}: images/s per worker", key, 1)
    benchmark.extra_info.update({"format": fmt, "pixels": [HEIGHT, WIDTH]})


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_train_item(benchmark, folder, fmt):
    transform, paths, other_paths = image_transform(PAPER, True), files(folder, fmt), files(folder, fmt)
    other = Timed(lambda: rgb_first(transform, next(other_paths)))
    tensor = benchmark.pedantic(lambda: transform(load_image(next(paths), keep_gray=True)), setup=other,
                                rounds=FILES * 2, warmup_rounds=1)
    assert tensor.shape == (3, PAPER.image_size, PAPER.image_size)
    key = f"train-item/{fmt}"
    record_median(key, benchmark)
    record_seconds(f"{key}/rgb-first", other.seconds[1:])
    per_second(f"{key}: images/s per worker", key, 1)
    ratio(f"{key}: rgb-first / A (medians)", f"{key}/rgb-first", key)
    benchmark.extra_info.update({"format": fmt, "pixels": [HEIGHT, WIDTH], "transform": "train"})


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_eval_item(benchmark, folder, fmt):
    transform, paths = image_transform(PAPER, False), files(folder, fmt)
    tensor = benchmark.pedantic(lambda: transform(load_image(next(paths), keep_gray=True)), rounds=FILES * 2,
                                warmup_rounds=1)
    assert tensor.shape == (3, PAPER.image_size, PAPER.image_size)
    key = f"eval-item/{fmt}"
    record_median(key, benchmark)
    per_second(f"{key}: images/s per worker", key, 1)
    benchmark.extra_info.update({"format": fmt, "pixels": [HEIGHT, WIDTH], "transform": "eval"})


def test_loader_with_default_workers(benchmark, folder):
    jpegs = sorted(folder.glob("jpeg-*.jpg"))
    studies = [Study(f"s{i}", "the lungs are clear .", (jpegs[i % FILES].name, jpegs[(i + 1) % FILES].name), "train")
               for i in range(32)]
    tokenizer = Tokenizer.build([s.report for s in studies], 1, "iu-xray")
    workers = loader_workers(PAPER)
    dataset = StudyDataset(studies, folder, tokenizer, PAPER, train=True)

    def epoch() -> int:
        return sum(batch.images.shape[0] for batch in make_loader(dataset, 16, True, workers, seed=0))

    assert benchmark.pedantic(epoch, rounds=2, warmup_rounds=0) == len(studies)
    record_median("loader", benchmark)
    per_second(f"loader: studies/s (2 views, {workers} workers)", "loader", len(studies))
    benchmark.extra_info.update({"workers": workers, "studies": len(studies), "views": 2, "format": "jpeg"})
    for cores in (2, 4, 8, 16, 32, 64):
        figure(f"default workers, {cores} cores, 1 training process", loader_workers(PAPER, cores=cores, processes=1))
    figure("default workers, 64 cores, 8 training processes", loader_workers(PAPER, cores=64, processes=8))


# ---------------------------------------------------------------------------------- test mode


def test_synthetic_radiographs_round_trip(tmp_path):
    """The benchmark's files decode to the written pixels (JPEG: close), one band, at full size."""
    pixels = radiograph(0, 120, 96)
    for fmt, suffix in FORMATS.items():
        path = tmp_path / f"x{suffix}"
        write_image(pixels, path, fmt)
        image = np.asarray(load_image(path, keep_gray=True)).astype(int)
        assert image.shape == (120, 96)
        assert np.abs(image - pixels).max() <= (0 if fmt != "jpeg" else 12)
    assert 20 < pixels.std() < 100  # shading and noise, not a flat image
