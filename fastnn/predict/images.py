"""Turn a photo or drawing of a digit into an MNIST-style row.

MNIST digits were made by fitting the (binary) NIST digit into a 20x20 box with
anti-aliasing, keeping the aspect ratio, and then shifting it inside a 28x28
field so that its centre of mass sits at the centre.  ``to_mnist`` repeats
those steps for an arbitrary grey image:

1. work out the background level from the image border and the ink polarity,
   so that ink becomes bright on a dark (zero) background, as in MNIST;
2. subtract the background, remove the border's noise level, crop to the ink
   and measure the digit's extent to sub-pixel precision;
3. resample that extent into a 20x20 box keeping the aspect ratio (exact area
   averaging when shrinking, which is the anti-aliasing MNIST has);
4. paste into 28x28 so that the intensity centroid lands on pixel (14, 14),
   shifting by whole pixels;
5. stretch so the brightest ink pixel is 255 and return 784 uint8 values.

Coordinates: pixel ``(r, c)`` has its centre at ``(r, c)``.  With that
convention every MNIST digit has its centroid within half a pixel of (14, 14)
(measured on the test set: 13.5 .. 14.5 on both axes), so we target (14, 14).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

__all__ = [
    "ImageError",
    "ImageTooLarge",
    "decode_grey",
    "declared_size",
    "digit_from_bytes",
    "load_digit",
    "read_grey",
    "to_mnist",
]

SIDE = 28  # MNIST field size
BOX = 20  # the digit is fitted into a BOX x BOX square ...
CENTRE = 14.0  # ... and its centroid is moved to (CENTRE, CENTRE)
MIN_CONTRAST = 0.1  # ink must differ from the background by 10% of full range
CROP_LEVEL = 0.05  # ink below 5% of its (noise-free) peak is treated as background
EDGE_LEVEL = 0.4  # the digit's edge: where its ink profile reaches 40% of the peak
_LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601, what PIL's "L" mode uses
# The largest image read: a 12-megapixel phone photo is a quarter of it. Decoding takes up to
# 24 bytes a pixel (matplotlib's float32 RGBA, then a float64 grey copy), so a file, however
# small, that declares more pixels could take gigabytes; its size is checked before decoding.
MAX_PIXELS = 50_000_000


class ImageError(ValueError):
    """A file is not a usable digit image (unreadable, not an image, or blank)."""


class ImageTooLarge(ImageError):
    """An image declaring more pixels than allowed: refused from its header, before decoding."""


def read_grey(path: str | os.PathLike) -> np.ndarray:
    """Read a PNG/JPEG (or anything Pillow reads) as a float64 (h, w) grey image in [0, 1].

    Colour is reduced to luminance; an alpha channel is composited onto a background
    chosen so that transparent pixels look like paper (see ``_flatten_alpha``).
    """
    path = Path(path)
    if not path.is_file():
        what = "is a directory, not an image file" if path.is_dir() else "does not exist"
        raise ImageError(f"{path}: {what}")
    return _decode_grey(path, str(path), MAX_PIXELS)


def decode_grey(data: bytes, name: str = "the image", max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """``read_grey`` for an image file's bytes (e.g. an upload); `name` labels its errors.

    An image declaring more than `max_pixels` is refused before decoding (ImageTooLarge).
    """
    return _decode_grey(data, name, max_pixels)


def declared_size(
    data: bytes, name: str = "the image", max_pixels: int = MAX_PIXELS
) -> tuple[int, int]:
    """(width, height) that an image file's bytes declare, read from its header alone.

    Raises ImageTooLarge over `max_pixels` pixels, ImageError if the bytes are not an image.
    """
    return _declared_size(_Bytes(data), name, max_pixels)


def _declared_size(source: Path | io.BytesIO, name: str, max_pixels: int) -> tuple[int, int]:
    from PIL import Image  # matplotlib's image reader

    try:
        # Pillow parses only the header here.
        with Image.open(source) as image:
            width, height = image.size
    except Image.DecompressionBombError:  # Pillow's own bound, far above any of fastnn's
        raise ImageTooLarge(
            f"{name}: the image declares more pixels than Pillow opens; {_within(max_pixels)}"
        ) from None
    except Exception as err:
        raise _unreadable(name, err) from err
    if width * height > max_pixels:
        raise ImageTooLarge(
            f"{name}: the image is {width} x {height} pixels ({width * height / 1e6:.0f} "
            f"megapixels); {_within(max_pixels)}"
        )
    return width, height


def _within(max_pixels: int) -> str:
    return f"fastnn reads images of up to {max_pixels / 1e6:.3g} megapixels. Scale it down first."


def _unreadable(name: str, err: Exception) -> ImageError:
    # Pillow raises many types (OSError, SyntaxError, ValueError, ...) for what it cannot read.
    return ImageError(f"{name}: cannot read as an image ({type(err).__name__}: {err})")


def _decode_grey(source: Path | bytes, name: str, max_pixels: int) -> np.ndarray:
    """The one decoder behind ``read_grey`` and ``decode_grey``: a file or its bytes."""
    # Imported lazily: importing fastnn should not pay for matplotlib.
    import matplotlib.image as mpimg

    def opened() -> Path | io.BytesIO:
        # A fresh stream each time: Pillow leaves a stream's position after the header.
        return _Bytes(source) if isinstance(source, bytes) else source

    _declared_size(opened(), name, max_pixels)
    try:
        # A non-"png" format makes matplotlib let Pillow sniff the real format from
        # the file's bytes; with the default it would trust a ".png" suffix and fail
        # on, say, a JPEG saved under that name.  PNGs still come back as floats.
        data = mpimg.imread(opened(), format="auto")
    except Exception as err:
        raise _unreadable(name, err) from err

    arr = np.asarray(data)
    # Integer data (JPEG, 16-bit PNG, ...) -> [0, 1]; PNGs already come as floats.
    full = float(np.iinfo(arr.dtype).max) if np.issubdtype(arr.dtype, np.integer) else 1.0
    if arr.ndim == 2:
        grey = np.divide(arr, full, dtype=np.float64)
    elif arr.ndim == 3 and arr.shape[2] in (3, 4):
        # Channel by channel: a (h, w, 3) float64 copy of a photo would be huge.
        grey = arr[..., 0] * (_LUMA[0] / full)
        grey += arr[..., 1] * (_LUMA[1] / full)
        grey += arr[..., 2] * (_LUMA[2] / full)
        if arr.shape[2] == 4:
            grey = _flatten_alpha(np.clip(grey, 0.0, 1.0), np.clip(arr[..., 3] / full, 0.0, 1.0))
    else:
        raise ImageError(f"{name}: unsupported image layout {arr.shape}")
    if grey.size == 0:
        raise ImageError(f"{name}: image has no pixels")
    # In place (`grey` is a new array either way): a photo's copy would be 8 bytes a pixel more.
    return np.clip(grey, 0.0, 1.0, out=grey)


class _Bytes(io.BytesIO):
    """An in-memory file that Pillow's messages name by its size, not its memory address."""

    def __repr__(self) -> str:
        return f"<{len(self.getbuffer())} bytes>"


def _border(img: np.ndarray) -> np.ndarray:
    """Pixels of a frame around the image, ~2% of the short side wide (at least 1 px)."""
    h, w = img.shape
    k = max(1, round(0.02 * min(h, w)))
    mask = np.zeros((h, w), dtype=bool)
    mask[:k, :] = mask[-k:, :] = mask[:, :k] = mask[:, -k:] = True
    return img[mask]


def _flatten_alpha(grey: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Composite grey+alpha onto a background so that 'transparent' reads as paper."""
    if alpha.min() >= 1.0:
        return grey
    a_border = _border(alpha)
    if np.median(a_border) >= 0.5:
        # Opaque paper with some transparent holes: fill the holes with the paper.
        backdrop = float(np.median(_border(grey)[a_border >= 0.5]))
    else:
        # Ink on a transparent sheet (typical of drawing apps): the backdrop must
        # contrast with the ink, whatever colour the ink (and the hidden RGB of the
        # transparent pixels) has.  Judge the ink by its alpha-weighted mean.
        ink = float(np.sum(grey * alpha) / max(float(np.sum(alpha)), 1e-12))
        backdrop = 1.0 if ink < 0.5 else 0.0
    return alpha * grey + (1.0 - alpha) * backdrop


def _ink(grey: np.ndarray) -> np.ndarray:
    """Background-free ink map: 0 = background, 1 = strongest ink (any input polarity).

    Raises ImageError if nothing stands out from the background.
    """
    border = _border(grey)
    background = float(np.median(border))
    # Polarity: ink is whichever side of the background reaches further.  This is
    # "invert if the paper is light" for the usual cases, and still right for a
    # mid-grey or tinted paper where a fixed 0.5 cut would be a coin toss.
    dark_ink = background - grey.min() >= grey.max() - background
    sign = -1.0 if dark_ink else 1.0
    # In-place arithmetic: photos can be tens of megapixels.
    ink = np.subtract(grey, background)
    ink *= sign
    np.maximum(ink, 0.0, out=ink)
    peak = float(ink.max())
    if peak < MIN_CONTRAST:
        raise ImageError(
            f"no digit found: the image is blank (nothing differs from the background "
            f"by more than {peak:.3f}; at least {MIN_CONTRAST} is needed)"
        )
    # The border's spread (JPEG noise, uneven lighting) says how much of the "ink"
    # is really paper; remove that floor so it does not grey the MNIST background.
    # Capped so that a digit touching the border cannot erase itself.
    noise = np.maximum(sign * (border - background), 0.0)
    floor = min(float(np.percentile(noise, 95)), 0.5 * peak)
    ink -= floor
    ink /= peak - floor
    return np.clip(ink, 0.0, 1.0, out=ink)


def _resample_matrix(n_src: int, n_out: int, scale: float, offset: float) -> np.ndarray:
    """(n_out, n_src) matrix mapping a 1-D signal onto n_out output pixels.

    Source pixel j covers [offset + j*scale, offset + (j+1)*scale) in output units.
    Shrinking (scale <= 1): each output pixel is the exact area average of what
    it covers (uncovered parts count as background 0) - this is the anti-aliasing.
    Enlarging: linear interpolation between source pixel centres (area averaging
    would just make blocks), flat up to the source's edges and 0 beyond them.
    """
    out = np.arange(n_out, dtype=np.float64)
    src = np.arange(n_src, dtype=np.float64)
    if scale <= 1.0:
        lo = offset + src * scale
        hi = np.minimum(out[:, None] + 1.0, lo[None, :] + scale)
        return np.clip(hi - np.maximum(out[:, None], lo[None, :]), 0.0, None)
    x = (out + 0.5 - offset) / scale  # output pixel centres in source units
    rows = np.nonzero((x >= 0.0) & (x <= n_src))[0]
    u = np.clip(x[rows] - 0.5, 0.0, n_src - 1.0)  # ... relative to source centres
    j0 = np.floor(u).astype(int)
    j1 = np.minimum(j0 + 1, n_src - 1)
    m = np.zeros((n_out, n_src))
    np.add.at(m, (rows, j0), 1.0 - (u - j0))
    np.add.at(m, (rows, j1), u - j0)
    return m


def _extent(profile: np.ndarray) -> tuple[float, float]:
    """Sub-pixel [start, end) of where a 1-D ink profile is at least EDGE_LEVEL.

    Pixel i spans [i, i+1).  The edge is placed where the profile, linearly
    interpolated between pixel centres, crosses EDGE_LEVEL.  On a big, soft drawing
    that is where a binariser would put the edge - and binary NIST digits are what
    MNIST fitted into its 20x20 box.  The level is a little under half because the
    profile (a max across the other axis) falls off early at round ends: on scaled-up
    MNIST digits 0.4 gave sizes without bias (0.5: ~1.5% too big), and it works at
    any resolution, unlike a plain pixel bounding box of blurry ink.
    """
    above = np.nonzero(profile >= EDGE_LEVEL)[0]
    first, last = int(above[0]), int(above[-1])
    padded = np.concatenate([[0.0], profile, [0.0]])  # zero beyond the image

    def crossing(inside: float, outside: float) -> float:
        # fraction of the way from the inner pixel centre to the outer one
        return (inside - EDGE_LEVEL) / (inside - outside) if inside > outside else 0.0

    start = first + 0.5 - crossing(padded[first + 1], padded[first])
    end = last + 0.5 + crossing(padded[last + 1], padded[last + 2])
    return start, end


def to_mnist(grey: np.ndarray) -> np.ndarray:
    """Float (h, w) grey image in [0, 1], either polarity -> MNIST-like uint8 row (784,).

    Integer images are accepted too and scaled by their dtype's maximum.
    Raises ImageError if the image is blank (no digit found).
    """
    img = np.asarray(grey)
    if img.ndim != 2 or img.size == 0:
        raise ImageError(f"expected a non-empty 2-D grey image, got shape {img.shape}")
    if np.issubdtype(img.dtype, np.integer):
        img = img / np.iinfo(img.dtype).max
    img = img.astype(np.float64, copy=False)  # never written to: the caller's array is safe
    if not np.all(np.isfinite(img)):
        raise ImageError("grey image contains NaN or infinite values")

    if img.min() < 0.0 or img.max() > 1.0:
        img = np.clip(img, 0.0, 1.0)
    ink = _ink(img)

    # Crop to the ink (for speed; faint leftovers far away get dropped below anyway).
    mask = ink > CROP_LEVEL
    rows = np.nonzero(mask.any(axis=1))[0]
    cols = np.nonzero(mask.any(axis=0))[0]
    ink = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]

    # The digit's extent is fitted into the BOX x BOX square keeping the aspect
    # ratio; the short side is centred in the square, as MNIST did (it shows as a
    # preference for even widths).  The faint rim outside that extent is still
    # drawn, into the margin around the box.
    if max(ink.shape) <= BOX:
        # Pixels already as coarse as MNIST's (e.g. an MNIST digit itself): each
        # value is an anti-aliased coverage, so the pixel bounding box is the extent.
        y0, y1, x0, x1 = 0.0, float(ink.shape[0]), 0.0, float(ink.shape[1])
    else:
        y0, y1 = _extent(ink.max(axis=1))
        x0, x1 = _extent(ink.max(axis=0))
    scale = BOX / max(y1 - y0, x1 - x0)
    margin = (SIDE - BOX) / 2.0  # the box sits in the middle of a SIDE x SIDE buffer
    oy = margin + (BOX - (y1 - y0) * scale) / 2.0 - y0 * scale
    ox = margin + (BOX - (x1 - x0) * scale) / 2.0 - x0 * scale
    ry = _resample_matrix(ink.shape[0], SIDE, scale, oy)
    rx = _resample_matrix(ink.shape[1], SIDE, scale, ox)
    # einsum, not @: these products are small, and BLAS's thread start-up made them
    # 10-50x slower when the cores were busy (e.g. with training running alongside).
    buf = np.einsum("ij,kj->ik", np.einsum("ij,jk->ik", ry, ink), rx)

    # Centre of mass to (CENTRE, CENTRE) with a whole-pixel shift (MNIST did not
    # resample again to centre); floor(x + 0.5) rounds halves the same way always.
    idx = np.arange(SIDE, dtype=np.float64)
    mass = buf.sum()
    dy = int(np.floor(CENTRE - float(buf.sum(axis=1) @ idx) / mass + 0.5))
    dx = int(np.floor(CENTRE - float(buf.sum(axis=0) @ idx) / mass + 0.5))
    # Shift with clipping: a very lopsided digit may lose a sliver at the edge.
    field = np.zeros((SIDE, SIDE))
    field[max(dy, 0) : SIDE + min(dy, 0), max(dx, 0) : SIDE + min(dx, 0)] = buf[
        max(-dy, 0) : SIDE + min(-dy, 0), max(-dx, 0) : SIDE + min(-dx, 0)
    ]

    peak = field.max()
    if peak <= 0.0:  # unreachable for a real digit; guards the division
        raise ImageError("no digit found: nothing left after centring")
    return np.rint(field * (255.0 / peak)).astype(np.uint8).reshape(-1)


def load_digit(path: str | os.PathLike) -> np.ndarray:
    """Read an image file and convert it to an MNIST-like uint8 row (784,)."""
    return _digit(read_grey(path), str(path))


def digit_from_bytes(
    data: bytes, name: str = "the image", max_pixels: int = MAX_PIXELS
) -> np.ndarray:
    """``load_digit`` for an image file's bytes (an upload): the same decoding and conversion.

    `name` labels the errors, as the path does for ``load_digit``; an image declaring more
    than `max_pixels` is refused before decoding.
    """
    return _digit(decode_grey(data, name, max_pixels), name)


def _digit(grey: np.ndarray, name: str) -> np.ndarray:
    try:
        return to_mnist(grey)
    except ImageError as err:
        raise ImageError(f"{name}: {err}") from err
