"""Data augmentation of image inputs, drawn afresh for every sample in every epoch, and its
NumPy reference (the Numba version is `fastnn.kernels.augment`; the two give the same bits).

Each row of X is an image (height, width), row-major. A transformed image is read from the
original at source coordinates (sx, sy) for each output pixel (x, y), by bilinear
interpolation, zero outside the image, then rounded to the nearest integer for uint8 pixels:

- "shift": (sx, sy) = (x + dx, y + dy), whole dx, dy from -shift to shift (an exact copy);
- "affine": (sx, sy) = c + A (x - cx, y - cy) + (tx, ty), c the centre, A = R S / s: a
  rotation R (up to `rotation` degrees), a shear S = [[1, k], [0, 1]] (|k| up to `shear`),
  a scale s (1 +- `scale`) and a translation (up to `shift` pixels each way);
- "elastic" (Simard et al. 2003): (sx, sy) = (x, y) + alpha * G(u), u a field of uniform
  numbers in (-1, 1) per pixel and direction, G a Gaussian blur of width sigma, along y then
  along x (taps up to 3 sigma, zero beyond the image).

The random numbers come from the counter-based hash of fastnn.core.dropout, keyed by the seed, the
epoch and the row of X, so the draws of a sample do not depend on batches or threads and a
resumed run draws what the uninterrupted run would have:

    epoch key  k = mix(mix(mix(seed ^ SALT) ^ epoch))       sample key  s = mix(k ^ row)
    word q     w_q = mix(s + (q + 1) * GOLDEN)              draw j: 16 bits b_j of w_(j // 4)
    uniform    v_j = (2 b_j + 1) / 65536 - 1                (in (-1, 1), exact in float32)

All arithmetic is in float32 (float64 for float64 X), each operation in the order written
here and in the kernels, with no transcendental function per sample (the rotation comes from
t = tan(angle / 2): cos = (1 - t^2) / (1 + t^2), sin = 2t / (1 + t^2)), so NumPy and Numba
round alike.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from fastnn.core.dropout import GOLDEN, mix, mix_array

SALT = 0xBB67AE8584CAA73B  # keeps augmentation's draws apart from dropout's of the same seed
KINDS = ("shift", "affine", "elastic")
# Each kind's strengths and their defaults: Simard et al. 2003's elastic field (alpha 34,
# sigma 4 on MNIST), and affine distortions of the size used with it.
STRENGTHS: dict[str, dict[str, float]] = {
    "shift": {"shift": 2},
    "affine": {"rotation": 15.0, "scale": 0.15, "shear": 0.2, "shift": 2.0},
    "elastic": {"alpha": 34.0, "sigma": 4.0},
}
LIMITS = {  # the largest strength that still leaves a recognisable image
    "rotation": 90.0,
    "scale": 0.9,
    "shear": 1.0,
    "alpha": 1000.0,
}
MNIST_SHAPE = (28, 28)
ROWS_AT_ONCE = 2048  # rows the reference transforms together, bounding its memory


class Augmentation(NamedTuple):
    """One kind of augmentation with its strengths, for one epoch."""

    kind: str  # one of KINDS
    strengths: tuple[tuple[str, float], ...]  # (name, value) of every strength of the kind
    image_shape: tuple[int, int]  # (height, width), height * width == n_features
    seed: int  # 0 <= seed < 2**64
    epoch: int = 0  # counted from 1 over the model's life

    def strength(self, name: str) -> float:
        return dict(self.strengths)[name]

    def at(self, epoch: int) -> Augmentation:
        return self._replace(epoch=epoch)

    def key(self) -> np.uint64:
        """The epoch key k."""
        return np.uint64(mix(mix(mix(self.seed ^ SALT) ^ self.epoch)))

    def numbers(self, dtype: np.dtype) -> np.ndarray:
        """The kind's strengths as the transform uses them, rounded to the working dtype:
        shift: (shift,); affine: (tan(rotation / 2), scale, shear, shift); elastic: (alpha,)."""
        s = dict(self.strengths)
        if self.kind == "affine":
            half_turn = math.tan(math.radians(s["rotation"]) / 2)
            values = [half_turn, s["scale"], s["shear"], s["shift"]]
        else:
            values = [s["shift"] if self.kind == "shift" else s["alpha"]]
        return np.array(values, np.float64).astype(dtype)

    def gauss(self, dtype: np.dtype) -> np.ndarray:
        """The elastic field's blur, (2 r + 1,) weights summing to 1, r = ceil(3 sigma); empty
        for the other kinds."""
        if self.kind != "elastic":
            return np.zeros(0, dtype)
        sigma = self.strength("sigma")
        t = np.arange(-math.ceil(3 * sigma), math.ceil(3 * sigma) + 1)
        weights = np.exp(-(t**2) / (2 * sigma**2))
        return (weights / weights.sum()).astype(dtype)


def working_dtype(X: np.ndarray) -> np.dtype:
    """The dtype the transform computes in: float64 for float64 X, else float32."""
    return np.dtype(np.float64 if X.dtype == np.float64 else np.float32)


def check_augment(
    augment: str | Mapping[str, Any] | None,
    n_features: int,
    image_shape: tuple[int, int] | None,
    seed: int,
) -> Augmentation | None:
    """The augmentation a user asked for: None, a kind, or a mapping with "kind" and any of
    the kind's strengths; ValueError saying what to pass otherwise."""
    if augment is None:
        return None
    spec = {"kind": augment} if isinstance(augment, str) else dict(augment)
    kind = spec.pop("kind", None)
    if kind not in KINDS:
        raise ValueError(
            f"augment must be None, one of {', '.join(KINDS)}, or a dict with 'kind' and "
            f"strengths, e.g. {{'kind': 'elastic', 'alpha': 8}}; got {augment!r}"
        )
    unknown = sorted(set(spec) - set(STRENGTHS[kind]))
    if unknown:
        raise ValueError(
            f"augment {kind!r} has no strength {', '.join(map(repr, unknown))}; its "
            f"strengths are {', '.join(STRENGTHS[kind])}"
        )
    strengths = {**STRENGTHS[kind], **spec}
    for name, value in strengths.items():
        _check_strength(kind, name, value, image_shape or MNIST_SHAPE)
    shape = _image_shape(n_features, image_shape)
    values = tuple((name, float(value)) for name, value in strengths.items())
    return Augmentation(kind, values, shape, seed)


def _check_strength(kind: str, name: str, value: Any, shape: tuple[int, int]) -> None:
    number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, bool
    )
    if kind == "shift":
        ok, wanted = (
            number and float(value).is_integer() and 0 <= value < min(shape),
            (f"a whole number of pixels from 0 to {min(shape) - 1}"),
        )
    elif name == "shift":
        ok, wanted = number and 0 <= value < min(shape), f"from 0 to less than {min(shape)}"
    elif name == "sigma":
        ok, wanted = number and 0 < value <= max(shape), f"above 0, at most {max(shape)}"
    else:
        ok, wanted = number and 0 <= value <= LIMITS[name], f"from 0 to {LIMITS[name]:g}"
    if not ok:
        raise ValueError(f"augment {kind!r}: {name} must be {wanted}; got {value!r}")


def _image_shape(n_features: int, image_shape: tuple[int, int] | None) -> tuple[int, int]:
    if image_shape is None:
        if n_features != MNIST_SHAPE[0] * MNIST_SHAPE[1]:
            raise ValueError(
                f"augment works on images: 784 features are taken as 28x28, but X has "
                f"{n_features}; give image_shape=(height, width) with height * width = "
                f"{n_features}, or augment=None"
            )
        return MNIST_SHAPE
    shape = tuple(image_shape)
    if not (len(shape) == 2 and all(isinstance(s, (int, np.integer)) and s > 0 for s in shape)):
        raise ValueError(f"image_shape must be (height, width), two positive whole numbers; "
                         f"got {image_shape!r}")  # fmt: skip
    if shape[0] * shape[1] != n_features:
        raise ValueError(
            f"image_shape {shape} holds {shape[0] * shape[1]} pixels but X has {n_features} "
            "features; they must be equal"
        )
    return (int(shape[0]), int(shape[1]))


# -- the NumPy reference --------------------------------------------------------------------


def transform(X: np.ndarray, aug: Augmentation, out: np.ndarray | None = None) -> np.ndarray:
    """Every row of X (n, height * width) transformed as drawn for its row number in aug's
    epoch, into out (a new array of X's shape and dtype if None)."""
    out = np.empty_like(X) if out is None else out
    for start in range(0, len(X), ROWS_AT_ONCE):
        rows = np.arange(start, min(start + ROWS_AT_ONCE, len(X)))
        images = X[rows].reshape(len(rows), *aug.image_shape)
        out[rows] = _transform_images(images, rows, aug).reshape(len(rows), -1)
    return out


def draw_bits(aug: Augmentation, rows: np.ndarray, count: int) -> np.ndarray:
    """(len(rows), count) the 16 bits b_j of each row's draws j, as int64."""
    samples = mix_array(aug.key() ^ rows.astype(np.uint64))  # (n,)
    words = np.arange((count + 3) // 4, dtype=np.uint64) + np.uint64(1)
    w = mix_array(samples[:, None] + words * np.uint64(GOLDEN))  # (n, n_words)
    lanes = np.arange(4, dtype=np.uint64) * np.uint64(16)
    bits = (w[:, :, None] >> lanes) & np.uint64(0xFFFF)  # (n, n_words, 4)
    return bits.reshape(len(rows), -1)[:, :count].astype(np.int64)


def uniforms(aug: Augmentation, rows: np.ndarray, count: int, dtype: np.dtype) -> np.ndarray:
    """(len(rows), count) draws v_j in (-1, 1) of each row's sample key."""
    b = draw_bits(aug, rows, count)
    return (2 * b + 1 - 65536).astype(dtype) * dtype.type(1 / 65536)


def _transform_images(images: np.ndarray, rows: np.ndarray, aug: Augmentation) -> np.ndarray:
    n, h, w = images.shape
    dtype = working_dtype(images)
    if aug.kind == "shift":
        return _shift(images, rows, aug)
    numbers = aug.numbers(dtype)
    x = np.arange(w, dtype=dtype)[None, None, :]  # (1, 1, w)
    y = np.arange(h, dtype=dtype)[None, :, None]  # (1, h, 1)
    if aug.kind == "affine":
        half_turn, scale, shear, shift = numbers
        v = uniforms(aug, rows, 5, dtype)[:, :, None, None]  # (n, 5, 1, 1)
        one, two = dtype.type(1), dtype.type(2)
        t = half_turn * v[:, 0]
        tt = t * t
        cos, sin = (one - tt) / (one + tt), (two * t) / (one + tt)
        inverse_scale = one / (one + scale * v[:, 1])
        skew = shear * v[:, 2]
        a00, a01 = cos * inverse_scale, (cos * skew - sin) * inverse_scale
        a10, a11 = sin * inverse_scale, (sin * skew + cos) * inverse_scale
        cx, cy = dtype.type((w - 1) / 2), dtype.type((h - 1) / 2)
        ox, oy = cx + shift * v[:, 3], cy + shift * v[:, 4]
        gx, gy = x - cx, y - cy
        sx, sy = a00 * gx + a01 * gy + ox, a10 * gx + a11 * gy + oy
    else:
        (alpha,) = numbers
        field = _blur(uniforms(aug, rows, 2 * h * w, dtype).reshape(n, 2, h, w), aug.gauss(dtype))
        sx, sy = x + alpha * field[:, 0], y + alpha * field[:, 1]
    return _to_pixels(_bilinear(images.astype(dtype), sx, sy), images.dtype)


def _shift(images: np.ndarray, rows: np.ndarray, aug: Augmentation) -> np.ndarray:
    """Whole-pixel translations: out[y, x] = image[y + dy, x + dx], 0 outside."""
    k = int(aug.strength("shift"))
    bits = draw_bits(aug, rows, 2)  # (n, 2): dx's, dy's
    out = np.zeros_like(images)
    n, h, w = images.shape
    for i in range(n):  # per image: a slice copy
        dx, dy = shift_draw(int(bits[i, 0]), k), shift_draw(int(bits[i, 1]), k)
        out[i, max(0, -dy) : h - max(0, dy), max(0, -dx) : w - max(0, dx)] = images[
            i, max(0, dy) : h + min(0, dy), max(0, dx) : w + min(0, dx)
        ]
    return out


def shift_draw(bits: int, k: int) -> int:
    """A whole number from -k to k, each equally likely, from 16 uniform bits: the integer part
    of (v + 1) / 2 * (2k + 1), computed exactly."""
    return ((2 * bits + 1) * (2 * k + 1)) // 131072 - k


def _blur(u: np.ndarray, gauss: np.ndarray) -> np.ndarray:
    """u (n, 2, h, w) blurred along y, then along x, by the weights `gauss`, zero outside."""
    n, _, h, w = u.shape
    r = len(gauss) // 2
    padded = np.zeros((n, 2, h + 2 * r, w), u.dtype)
    padded[:, :, r : r + h] = u
    along_y = np.zeros_like(u)
    for t, g in enumerate(gauss):
        along_y = along_y + g * padded[:, :, t : t + h]
    padded = np.zeros((n, 2, h, w + 2 * r), u.dtype)
    padded[:, :, :, r : r + w] = along_y
    blurred = np.zeros_like(u)
    for t, g in enumerate(gauss):
        blurred = blurred + g * padded[:, :, :, t : t + w]
    return blurred


def _bilinear(images: np.ndarray, sx: np.ndarray, sy: np.ndarray) -> np.ndarray:
    """images (n, h, w) read at (sx, sy) (n, h, w) by bilinear interpolation, 0 outside.
    Coordinates are first clipped to [-1, w] x [-1, h], which changes no value (beyond
    those bounds every neighbour is outside too), so indices stay in a padded copy."""
    n, h, w = images.shape
    padded = np.zeros((n, h + 3, w + 3), images.dtype)  # one zero before, two after
    padded[:, 1 : h + 1, 1 : w + 1] = images
    sx, sy = np.clip(sx, -1, w), np.clip(sy, -1, h)
    x0, y0 = np.floor(sx), np.floor(sy)
    fx, fy = sx - x0, sy - y0
    i, j = x0.astype(np.intp) + 1, y0.astype(np.intp) + 1
    k = np.arange(n)[:, None, None]
    top = padded[k, j, i] * (1 - fx) + padded[k, j, i + 1] * fx
    bottom = padded[k, j + 1, i] * (1 - fx) + padded[k, j + 1, i + 1] * fx
    return top * (1 - fy) + bottom * fy


def _to_pixels(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Interpolated values in X's dtype: uint8 rounded to the nearest (halves up)."""
    if dtype == np.uint8:
        return np.clip(np.floor(values + values.dtype.type(0.5)), 0, 255).astype(np.uint8)
    return values.astype(dtype)
