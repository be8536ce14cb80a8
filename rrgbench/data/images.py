"""Image files: decode any chest X-ray file to 8-bit RGB, check a file, keep paths inside the image root.

This module owns every open of an image file in rrgbench:

- ``load_image`` decodes fully (so a truncated file fails here, not in a data-loader worker) and returns
  8-bit RGB. Grayscale, palette, RGB(A), CMYK and JPEG images are converted by Pillow; alpha is composited
  on black (the background of a radiograph). 16-bit grayscale PNGs (Pillow modes ``I;16*`` and ``I``) are
  rescaled by their bit depth, ``round(v * 255 / 65535)``, never clipped at 255, so a 16-bit radiograph keeps
  its contrast. Mode ``I`` is treated as 16-bit too, because older Pillow versions decode a 16-bit PNG
  to it; values outside 0..65535 are clipped first.
  With ``keep_gray`` a grayscale image (8- or 16-bit) comes back as 8-bit ``L`` instead, holding the value
  every channel of its RGB conversion would hold: the data loader resizes and crops that one band and
  converts the small result to RGB (``rrgbench.data.loader.ToRGB``), the same pixels for a third of the
  resizing (MIMIC-CXR's JPEGs are grayscale).
- ``check_image`` is the same decode returning a one-line problem instead of raising (used by validation).
  A PNG cut after its pixel data (no IEND chunk) counts as truncated too, although Pillow decodes it.
- ``resolve_inside`` turns an annotation's relative image path into a path under the image root, or refuses
  it (absolute paths, ``..`` escapes, symlinks pointing out) without opening anything.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError

from rrgbench.errors import DataError

NOT_FOUND = "file not found"  # the problem ``check_image`` gives for a missing file
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_PNG_TAIL_BYTES = 1024
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
# Everything Pillow's decoders are known to raise on a damaged file (PNG CRC errors are SyntaxError).
_DECODE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    struct.error,
    zlib.error,
    Image.DecompressionBombError,
)


def _decode(path: Path, convert: bool, keep_gray: bool = False) -> tuple[Image.Image | None, str | None]:
    """Fully decode ``path``: ``(8-bit image if convert else None, None)``, or ``(None, problem)``."""
    try:
        with path.open("rb") as handle, Image.open(handle) as img:
            img.load()
            if img.format == "PNG" and not _png_has_end(handle):
                return None, "truncated PNG (the IEND chunk that ends every PNG file is missing)"
            return (_to_8bit(img, keep_gray) if convert else None), None
    except FileNotFoundError:
        return None, NOT_FOUND
    except IsADirectoryError:
        return None, "is a directory, not an image file"
    except UnidentifiedImageError:
        return None, "not an image file Pillow can read (unknown or corrupt format)"
    except PermissionError:
        return None, "permission denied"
    except _DECODE_ERRORS as exc:
        return None, f"corrupt or truncated image ({_one_line(exc)})"


def _png_has_end(handle: BinaryIO) -> bool:
    """True if the IEND chunk is near the end of the file (Pillow does not notice a cut after the pixels)."""
    size = handle.seek(0, os.SEEK_END)
    handle.seek(max(0, size - _PNG_TAIL_BYTES))
    return b"IEND" in handle.read()


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _to_8bit(img: Image.Image, keep_gray: bool) -> Image.Image:
    """Convert a decoded image of any supported mode to 8-bit RGB (8-bit ``L`` for grayscale with ``keep_gray``)."""
    if img.mode in _SIXTEEN_BIT_MODES:
        gray = _sixteen_bit_to_gray(img)
        return gray if keep_gray else gray.convert("RGB")
    if keep_gray and img.mode == "L":
        return img.copy()
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in _ALPHA_MODES:
        return _composite_on_black(img)
    if img.mode == "RGB":
        return img.copy()
    return img.convert("RGB")


_SIXTEEN_TO_EIGHT = ((np.arange(65536) + 128) // 257).astype(np.uint8)  # == round(v * 255 / 65535)


def _sixteen_bit_to_gray(img: Image.Image) -> Image.Image:
    values = np.asarray(img)
    if values.dtype.kind != "u" or values.dtype.itemsize != 2:  # mode I: 32-bit signed
        values = np.clip(values, 0, 65535)
    return Image.fromarray(_SIXTEEN_TO_EIGHT[values])


def _composite_on_black(img: Image.Image) -> Image.Image:
    rgba = img.convert("RGBA")
    background = Image.new("RGB", rgba.size, (0, 0, 0))
    background.paste(rgba.convert("RGB"), mask=rgba.getchannel("A"))
    return background


def load_image(path: Path, keep_gray: bool = False) -> Image.Image:
    """Decode ``path`` fully and return it as 8-bit RGB (or ``L``, see the module docstring); raise ``DataError``
    naming the file otherwise."""
    img, problem = _decode(Path(path), convert=True, keep_gray=keep_gray)
    if img is None:
        raise DataError(f"image {path}: {problem}")
    return img


def check_image(path: Path) -> str | None:
    """Return a one-line problem with the image at ``path`` (not found, unreadable, truncated), or None.

    The file is decoded completely, so truncation anywhere in the pixel data is caught.
    """
    return _decode(Path(path), convert=False)[1]


def resolve_inside(root: Path, relative: str) -> Path | None:
    """Return ``root / relative`` resolved (symlinks followed) if it stays inside ``root``, else None.

    Refused, and never opened: empty or absolute paths, paths whose ``..`` parts climb out of the root,
    and symlinks whose target lies outside the root. Only path metadata is read (no file is opened).
    """
    if not relative or "\x00" in relative or os.path.isabs(relative):
        return None
    try:
        real_root = os.path.realpath(root)
        candidate = os.path.realpath(os.path.join(real_root, relative))
    except (OSError, ValueError):
        return None
    if not candidate.startswith(real_root.rstrip(os.sep) + os.sep):
        return None
    return Path(candidate)
