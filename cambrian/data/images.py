"""Image loading with the checks every reader shares: path escape, missing file, undecodable, decompression bomb."""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

from PIL import Image

from cambrian.data.records import Location, RecordError

DEFAULT_MAX_PIXELS = 64_000_000  # ~8000 x 8000; PIL's own bomb limit is 89.5M (warning) / 179M (error)


def resolve_image_path(image_root: str | Path | None, relative: str, location: Location) -> Path:
    """`relative` against `image_root`, refusing absolute paths and `..` or symlinks that leave the root."""
    if image_root is None:
        raise RecordError("missing_image", f"image {relative!r} but no image root was given", location)
    root = Path(image_root).resolve()
    candidate = Path(relative)
    if candidate.is_absolute():
        raise RecordError("path_escape", f"absolute image path {relative!r}", location)
    path = (root / candidate).resolve()
    if path != root and root not in path.parents:
        raise RecordError("path_escape", f"image path {relative!r} resolves outside {root}", location)
    return path


def open_image(
    image: str | bytes,
    image_root: str | Path | None,
    location: Location,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Image.Image:
    """Open, size-check and fully decode one image (a path under `image_root`, or encoded bytes) as RGB."""
    if isinstance(image, bytes):
        source, name = io.BytesIO(image), "<embedded bytes>"
    else:
        path = resolve_image_path(image_root, image, location)
        if not path.is_file():
            raise RecordError("missing_image", f"{image!r} not found under {image_root}", location)
        source, name = os.fspath(path), image
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            pil = Image.open(source)
            width, height = pil.size  # read from the header, before any pixel is decoded
            if width * height > max_pixels:
                raise RecordError(
                    "image_too_large", f"{name} is {width}x{height} = {width * height} pixels > {max_pixels}", location
                )
            pil.load()
    except RecordError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise RecordError("image_too_large", f"{name}: {error}", location) from None
    except Exception as error:  # PIL raises many types for corrupt data (OSError, SyntaxError, ValueError...)
        raise RecordError("undecodable_image", f"{name}: {type(error).__name__}: {error}", location) from None
    return pil.convert("RGB")
