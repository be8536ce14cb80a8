"""The study dataset: decoded-image caching (``data.cache_images``) changes nothing but how often files are read."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from rrgbench.config import DataOptions
from rrgbench.data import synthetic as syn
from rrgbench.data.loader import StudyDataset
from rrgbench.data.studies import Study
from rrgbench.data.tokenizer import Tokenizer

DATA = DataOptions(image_size=32, train_resize=36, flip=False, max_len=40)


def _studies(folder: Path) -> list[Study]:
    entries = json.loads((folder / "annotation.json").read_text())["train"]
    return [Study(e["id"], e["report"], tuple(e["image_path"]), "train") for e in entries]


def test_cached_images_equal_fresh_decodes_and_are_read_once(tmp_path: Path) -> None:
    folder = syn.build(syn.SyntheticSpec(n_train=3, n_val=0, n_test=0, image_size=48), tmp_path)
    studies = _studies(folder)
    tokenizer = Tokenizer.build([s.report for s in studies], 1, "iu-xray")
    fresh = StudyDataset(studies, folder, tokenizer, DATA, train=False)
    cache: dict = {}
    cached = StudyDataset(studies, folder, tokenizer, DATA, train=False, decoded=cache)
    expected = [fresh[i][1] for i in range(3)]
    assert all(torch.equal(cached[i][1], expected[i]) for i in range(3))
    assert sorted(cache) == sorted(s.image_paths[0] for s in studies)
    for image in (folder / "images").iterdir():
        image.unlink()  # a second epoch must not touch the files again
    again = StudyDataset(studies, folder, tokenizer, DATA, train=False, decoded=cache)
    assert all(torch.equal(again[i][1], expected[i]) for i in range(3))


def test_gray_files_give_the_tensors_of_their_rgb_conversion(tmp_path: Path) -> None:
    """Resizing, cropping and flipping one band and converting last (``ToRGB``) equals converting first."""
    from PIL import Image

    from rrgbench.data.images import load_image
    from rrgbench.data.loader import image_transform

    generator = torch.Generator().manual_seed(0)
    for index, (height, width) in enumerate([(97, 131), (400, 300), (37, 37)]):
        pixels = torch.randint(0, 256, (height, width), generator=generator, dtype=torch.uint8).numpy()
        path = tmp_path / f"{index}.png"
        Image.fromarray(pixels).save(path)
        for data in (DATA, DataOptions(), DataOptions(image_size=64, train_resize=70)):
            for train in (True, False):
                transform = image_transform(data, train)
                torch.manual_seed(index)
                gray = transform(load_image(path, keep_gray=True))
                torch.manual_seed(index)
                assert torch.equal(gray, transform(load_image(path))), (index, data, train)


def test_default_worker_count_follows_the_cores_and_the_image_cache(monkeypatch) -> None:
    from rrgbench.data.loader import loader_workers

    auto = DataOptions()
    assert auto.num_workers == -1
    assert [loader_workers(auto, cores=n, processes=1) for n in (1, 2, 4, 16)] == [0, 1, 3, 15]
    assert loader_workers(auto, cores=16, processes=8) == 1  # eight training processes share the cores
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert loader_workers(auto, cores=16) == 3
    assert loader_workers(DataOptions(cache_images=True), cores=16) == 0  # workers could not share the cache
    assert loader_workers(DataOptions(num_workers=5, cache_images=True), cores=2) == 5  # an explicit count wins
