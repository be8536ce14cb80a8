"""Tests for rrgbench.data.images: decoding every supported mode to 8-bit RGB, errors, path confinement."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rrgbench.data.images import check_image, load_image, resolve_inside
from rrgbench.errors import DataError

REAL_IMAGES = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "iu_xray_images"
REAL_FRONTAL = REAL_IMAGES / "CXR7_IM-2263-1001.png"
SIZE = (40, 30)


def _gradient() -> np.ndarray:
    """A 30x40 ramp 0..255 as uint8, so conversions can be checked pixel by pixel."""
    return np.tile(np.linspace(0, 255, SIZE[0]).round().astype(np.uint8), (SIZE[1], 1))


def _save(image: Image.Image, path: Path, **options: object) -> Path:
    image.save(path, **options)
    return path


def _truncate(source: Path, target: Path, keep: float = 0.5) -> Path:
    data = source.read_bytes()
    target.write_bytes(data[: int(len(data) * keep)])
    return target


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "P", "LA", "1", "CMYK"], ids=lambda m: f"mode-{m}")
def test_every_8bit_mode_loads_as_rgb_of_same_size(tmp_path: Path, mode: str) -> None:
    source = Image.fromarray(_gradient()).convert(mode)
    suffix = ".jpg" if mode == "CMYK" else ".png"
    path = _save(source, tmp_path / f"image{suffix}")
    image = load_image(path)
    assert image.mode == "RGB"
    assert image.size == SIZE


def test_gray_png_keeps_its_values(tmp_path: Path) -> None:
    path = _save(Image.fromarray(_gradient()), tmp_path / "gray.png")
    pixels = np.asarray(load_image(path))
    assert (pixels == _gradient()[..., None]).all()


def test_rgba_alpha_is_composited_on_black(tmp_path: Path) -> None:
    rgba = np.zeros((*SIZE[::-1], 4), dtype=np.uint8)
    rgba[..., :3] = 200
    rgba[:, :20, 3] = 255  # left half opaque, right half fully transparent
    path = _save(Image.fromarray(rgba), tmp_path / "rgba.png")
    pixels = np.asarray(load_image(path))
    assert (pixels[:, :20] == 200).all()
    assert (pixels[:, 20:] == 0).all()


def test_sixteen_bit_png_is_rescaled_by_bit_depth_not_clipped(tmp_path: Path) -> None:
    values = np.array([[0, 257, 1000, 32768, 65535]], dtype=np.uint16)
    path = _save(Image.fromarray(values), tmp_path / "sixteen.png")
    with Image.open(path) as raw:
        assert raw.mode.startswith("I")  # really a 16-bit file
    pixels = np.asarray(load_image(path))
    assert pixels.dtype == np.uint8
    assert pixels[0, :, 0].tolist() == [0, 1, 4, 128, 255]  # round(v * 255 / 65535); clipping gives 255s
    assert (pixels[..., 0] == pixels[..., 2]).all()


def test_jpeg_loads_as_rgb(tmp_path: Path) -> None:
    path = _save(Image.fromarray(_gradient()), tmp_path / "gray.jpg", quality=95)
    image = load_image(path)
    assert (image.mode, image.size) == ("RGB", SIZE)


def test_real_iu_png_loads_byte_identical_pixels() -> None:
    image = load_image(REAL_FRONTAL)
    with Image.open(REAL_FRONTAL) as raw:
        expected = np.asarray(raw.convert("RGB"))
    assert (image.mode, image.size) == ("RGB", (512, 512))
    assert (np.asarray(image) == expected).all()
    assert check_image(REAL_FRONTAL) is None


def test_truncated_real_png_raises_data_error_naming_the_file(tmp_path: Path) -> None:
    path = _truncate(REAL_FRONTAL, tmp_path / "cut.png")
    with pytest.raises(DataError, match=r"cut\.png.*truncated"):
        load_image(path)
    assert "truncated" in (check_image(path) or "")


def test_png_cut_after_its_pixel_data_is_truncated(tmp_path: Path) -> None:
    data = REAL_FRONTAL.read_bytes()
    path = tmp_path / "no_end.png"
    path.write_bytes(data[:-12])  # drop the IEND chunk only; Pillow itself decodes this silently
    assert "IEND" in (check_image(path) or "")


def test_truncated_jpeg_raises_data_error(tmp_path: Path) -> None:
    noise = Image.effect_noise((128, 128), 60).convert("RGB")
    full = _save(noise, tmp_path / "full.jpg", quality=90)
    path = _truncate(full, tmp_path / "cut.jpg")
    with pytest.raises(DataError, match=r"cut\.jpg"):
        load_image(path)


@pytest.mark.parametrize(
    ("content", "expected"),
    [(None, "not found"), (b"", "not an image"), (b"hello, not a picture", "not an image")],
    ids=["missing", "empty", "text"],
)
def test_unreadable_files_give_one_line_problems(
    tmp_path: Path, content: bytes | None, expected: str
) -> None:
    path = tmp_path / "x.png"
    if content is not None:
        path.write_bytes(content)
    problem = check_image(path)
    assert problem is not None
    assert expected in problem
    assert "\n" not in problem
    with pytest.raises(DataError, match=r"x\.png"):
        load_image(path)


def test_corrupt_png_data_is_reported(tmp_path: Path) -> None:
    data = bytearray(REAL_FRONTAL.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path = tmp_path / "flipped.png"
    path.write_bytes(bytes(data))
    problem = check_image(path)
    assert (problem is not None and "flipped.png" not in problem.split(":")[0]) or problem  # a reason, one line
    assert "\n" not in problem and any(word in problem.lower() for word in ("corrupt", "crc", "decode", "truncated",
                                                                             "broken", "cannot"))


def test_directory_is_not_an_image(tmp_path: Path) -> None:
    assert "directory" in (check_image(tmp_path) or "")


def test_resolve_inside_accepts_nested_relative_paths(tmp_path: Path) -> None:
    (tmp_path / "CXR7_IM-2263").mkdir()
    target = tmp_path / "CXR7_IM-2263" / "0.png"
    shutil.copyfile(REAL_FRONTAL, target)
    assert resolve_inside(tmp_path, "CXR7_IM-2263/0.png") == target.resolve()
    assert resolve_inside(tmp_path, "CXR7_IM-2263/../CXR7_IM-2263/0.png") == target.resolve()
    assert resolve_inside(tmp_path, "not/yet/there.png") == (tmp_path / "not/yet/there.png").resolve()


@pytest.mark.parametrize("relative", ["../outside.png", "a/../../outside.png", "", ".", "a/.."])
def test_resolve_inside_refuses_escapes(tmp_path: Path, relative: str) -> None:
    root = tmp_path / "root"
    root.mkdir()
    assert resolve_inside(root, relative) is None


def test_resolve_inside_refuses_absolute_paths_even_inside_the_root(tmp_path: Path) -> None:
    inside = tmp_path / "a.png"
    inside.write_bytes(b"")
    assert resolve_inside(tmp_path, str(inside)) is None
    assert resolve_inside(tmp_path, "/etc/passwd") is None


def test_resolve_inside_refuses_symlinks_pointing_out(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    outside = tmp_path / "secret.png"
    shutil.copyfile(REAL_FRONTAL, outside)
    (root / "link.png").symlink_to(outside)
    (root / "dir_link").symlink_to(tmp_path)
    (root / "inner.png").symlink_to(root / "missing.png")
    assert resolve_inside(root, "link.png") is None
    assert resolve_inside(root, "dir_link/secret.png") is None
    assert resolve_inside(root, "inner.png") == (root / "missing.png").resolve()


@pytest.mark.parametrize("kind", ["L", "sixteen-bit", "jpeg", "RGB", "P"])
def test_keep_gray_gives_one_band_of_the_rgb_conversion(tmp_path: Path, kind: str) -> None:
    """``keep_gray``: a grayscale file as 8-bit L holding each channel of its RGB load; colour stays RGB."""
    if kind == "sixteen-bit":
        source = Image.fromarray(_gradient().astype(np.uint16) * 257 + 100)
    else:
        source = Image.fromarray(_gradient()).convert("L" if kind == "jpeg" else kind)
    path = _save(source, tmp_path / ("image.jpg" if kind == "jpeg" else "image.png"))
    rgb, kept = load_image(path), load_image(path, keep_gray=True)
    if kind in ("RGB", "P"):
        assert kept.mode == "RGB" and np.array_equal(np.asarray(kept), np.asarray(rgb))
    else:
        assert kept.mode == "L" and np.array_equal(np.asarray(kept.convert("RGB")), np.asarray(rgb))
