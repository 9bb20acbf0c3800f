"""Augmentation: the draws against their written formula, the reference against plain
per-pixel loops, the Numba kernels against the reference (every pixel), the same bits on 1
and 2 threads, zero strength as the identity, and the estimator and command using it."""

from __future__ import annotations

import json
import math

import numba
import numpy as np
import pytest
from cli_helpers import run_main

import fastnn
from fastnn.backends import get_backend
from fastnn.backends.tolerance import TRAINED
from fastnn.core import augment
from fastnn.core.augment import Augmentation, check_augment, shift_draw, uniforms
from fastnn.train import options

numpy_backend = get_backend("numpy")
numba_backend = get_backend("numba")

M64 = 2**64 - 1
ZERO = {
    "shift": {"shift": 0},
    "affine": {"rotation": 0, "scale": 0, "shear": 0, "shift": 0},
    "elastic": {"alpha": 0},
}


def splitmix_finaliser(z: int) -> int:
    """Written out from splitmix64's published finaliser, independently of fastnn."""
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def digits(n: int, shape=(28, 28), seed=0) -> np.ndarray:
    """n uint8 images with strokes on a zero background, like MNIST's."""
    rng = np.random.default_rng(seed)
    h, w = shape
    images = np.zeros((n, h, w), np.uint8)
    for image in images:
        for _ in range(3):
            y, x = rng.integers(2, h - 2), rng.integers(2, w - 2)
            dy, dx = rng.integers(-1, 2, 2)
            for step in range(rng.integers(3, max(h, w))):
                yy, xx = y + step * dy, x + step * dx
                if 0 <= yy < h and 0 <= xx < w:
                    image[yy, xx] = rng.integers(60, 256)
    return images.reshape(n, h * w)


def made(kind, shape=(28, 28), seed=5, epoch=3, **strengths) -> Augmentation:
    spec = {"kind": kind, **strengths}
    return check_augment(spec, shape[0] * shape[1], shape, seed).at(epoch)


def test_draws_follow_the_formula_of_the_docstring():
    aug = made("elastic", seed=2**63 + 99, epoch=7)
    rows = np.array([0, 4, 2**40 + 1])
    v = uniforms(aug, rows, 9, np.dtype(np.float64))
    key = splitmix_finaliser(splitmix_finaliser(aug.seed ^ 0xBB67AE8584CAA73B) ^ 7)
    key = splitmix_finaliser(key)
    for n, row in enumerate(rows.tolist()):
        sample = splitmix_finaliser(key ^ row)
        for j in range(9):
            word = splitmix_finaliser((sample + (j // 4 + 1) * 0x9E3779B97F4A7C15) & M64)
            bits = (word >> (16 * (j % 4))) & 0xFFFF
            assert v[n, j] == (2 * bits + 1) / 65536 - 1, (row, j)
    many = uniforms(aug, np.arange(20000), 4, np.dtype(np.float32))
    assert -1 < many.min() and many.max() < 1 and abs(float(many.mean())) < 0.01


def test_shifts_are_whole_and_every_one_equally_likely():
    counts = [shift_draw(bits, 2) for bits in range(65536)]
    assert sorted(set(counts)) == [-2, -1, 0, 1, 2]
    assert (
        max(counts.count(d) for d in range(-2, 3)) - min(counts.count(d) for d in range(-2, 3)) <= 1
    )
    # A single lit pixel lands within 2 pixels of where it was, the rest of the image 0.
    X = np.zeros((400, 15 * 15), np.uint8)
    X[:, 7 * 15 + 7] = 200
    moved = augment.transform(X, made("shift", (15, 15)))
    ys, xs = np.divmod(moved.argmax(axis=1), 15)
    assert (moved.max(axis=1) == 200).all() and (np.count_nonzero(moved, axis=1) == 1).all()
    landed = set(zip(ys.tolist(), xs.tolist(), strict=True))
    assert landed == {(y, x) for y in range(5, 10) for x in range(5, 10)}


def naive_blur(u: np.ndarray, gauss: np.ndarray) -> np.ndarray:
    """The blur of one field (h, w) by per-pixel loops: along y, then along x."""
    h, w = u.shape
    r = len(gauss) // 2
    along_y = np.zeros_like(u)
    for y in range(h):
        for x in range(w):
            for t in range(len(gauss)):
                if 0 <= y + t - r < h:
                    along_y[y, x] += gauss[t] * u[y + t - r, x]
    out = np.zeros_like(u)
    for y in range(h):
        for x in range(w):
            for t in range(len(gauss)):
                if 0 <= x + t - r < w:
                    out[y, x] += gauss[t] * along_y[y, x + t - r]
    return out


def test_the_elastic_field_is_the_gaussian_blur_of_uniform_noise():
    aug = made("elastic", (9, 13), sigma=1.5)
    gauss = aug.gauss(np.dtype(np.float64))
    assert len(gauss) == 2 * math.ceil(4.5) + 1 and math.isclose(gauss.sum(), 1.0)
    t = np.arange(len(gauss)) - len(gauss) // 2
    np.testing.assert_allclose(gauss, np.exp(-(t**2) / 4.5) / np.exp(-(t**2) / 4.5).sum())
    u = np.random.default_rng(0).uniform(-1, 1, (2, 2, 9, 13))
    blurred = augment._blur(u, gauss)
    for n in range(2):
        for c in range(2):
            np.testing.assert_allclose(blurred[n, c], naive_blur(u[n, c], gauss), atol=1e-12)


def naive_bilinear(image: np.ndarray, sx: float, sy: float) -> float:
    h, w = image.shape
    x0, y0 = math.floor(sx), math.floor(sy)
    fx, fy = sx - x0, sy - y0

    def pixel(y, x):
        return float(image[y, x]) if 0 <= y < h and 0 <= x < w else 0.0

    top = pixel(y0, x0) * (1 - fx) + pixel(y0, x0 + 1) * fx
    bottom = pixel(y0 + 1, x0) * (1 - fx) + pixel(y0 + 1, x0 + 1) * fx
    return top * (1 - fy) + bottom * fy


def test_bilinear_reads_between_pixels_and_zero_outside():
    image = np.random.default_rng(1).uniform(0, 255, (5, 7))
    points = [(0.0, 0.0), (2.25, 1.5), (6.5, 4.75), (-0.5, 2.0), (7.2, 1.0), (-9.0, 30.0)]
    for sx, sy in points:
        got = augment._bilinear(image[None], np.array([[[sx]]]), np.array([[[sy]]]))[0, 0, 0]
        assert math.isclose(got, naive_bilinear(image, sx, sy), abs_tol=1e-9), (sx, sy)


@pytest.mark.parametrize("kind", augment.KINDS)
# float64 X differs from float32 X in the working dtype only; its compile is left out to keep
# the suite short (tested by hand: equal too).
@pytest.mark.parametrize("dtype", ["uint8", "float32"])
def test_numba_equals_the_reference_pixel_for_pixel(kind, dtype):
    for shape, n in (((28, 28), 150), ((9, 13), 37)):
        X = digits(n, shape, seed=n)
        X = X if dtype == "uint8" else (X / 255).astype(dtype)
        aug = made(kind, shape)
        want = numpy_backend.augment(X, aug)
        got = numba_backend.augment(X, aug)
        assert got.dtype == X.dtype and got.shape == X.shape
        bad = np.argwhere(got != want)
        assert len(bad) == 0, f"{len(bad)} pixels differ, first at (row, pixel) {bad[0]}"
        assert not np.array_equal(got, X), "the transform changed nothing"


@pytest.mark.parametrize("kind", augment.KINDS)
def test_zero_strength_is_the_identity(kind):
    for X in (digits(40), digits(40) / np.float32(255)):
        aug = made(kind, **ZERO[kind])
        for backend in (numpy_backend, numba_backend):
            np.testing.assert_array_equal(backend.augment(X, aug), X)


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs at least 2 Numba threads")
@pytest.mark.parametrize("kind", augment.KINDS)
def test_same_bits_with_one_and_two_threads(kind):
    X = digits(300)
    results = []
    for threads in (1, 2, 2):
        with numba_backend.threads(threads):
            results.append(numba_backend.augment(X, made(kind)).tobytes())
    assert results[0] == results[1] == results[2]


def test_a_rows_draw_depends_on_seed_epoch_and_row_only():
    X = digits(60)
    aug = made("elastic")
    base = augment.transform(X, aug)
    other_rows = X.copy()
    other_rows[1::2] = digits(30, seed=9)  # the even rows' own pixels are unchanged
    np.testing.assert_array_equal(augment.transform(other_rows, aug)[0::2], base[0::2])
    for changed in (aug._replace(seed=6), aug.at(4)):
        assert (augment.transform(X, changed) != base).any(axis=1).mean() > 0.9
    # The same image at another row is drawn differently.
    assert not np.array_equal(augment.transform(X[[0, 0]], aug)[1], base[0])


def test_affine_keeps_the_ink_near_the_centre():
    X = np.zeros((200, 28 * 28), np.uint8)
    X.reshape(200, 28, 28)[:, 12:16, 12:16] = 255
    moved = augment.transform(X, made("affine")).reshape(200, 28, 28).astype(float)
    ys, xs = np.mgrid[0:28, 0:28]
    mass = moved.sum(axis=(1, 2))
    cy, cx = (moved * ys).sum(axis=(1, 2)) / mass, (moved * xs).sum(axis=(1, 2)) / mass
    offset = np.hypot(cy - 13.5, cx - 13.5)
    assert offset.max() <= 2 * math.sqrt(2) + 0.5  # the translation, up to 2 each way
    assert offset.std() > 0.3  # and it does move
    assert (0.5 < mass / (16 * 255)).all() and (mass / (16 * 255) < 1.6).all()  # scale 1 +- 0.15


def test_bad_augmentations_are_refused_clearly():
    with pytest.raises(ValueError, match="augment must be None, one of shift, affine, elastic"):
        check_augment("blur", 784, None, 0)
    with pytest.raises(ValueError, match="no strength 'sigma'; its strengths are shift"):
        check_augment({"kind": "shift", "sigma": 2}, 784, None, 0)
    for bad in ({"kind": "shift", "shift": 1.5}, {"kind": "elastic", "sigma": 0},
                {"kind": "affine", "rotation": 120}, {"kind": "elastic", "alpha": -1}):  # fmt: skip
        with pytest.raises(ValueError, match="must be"):
            check_augment(bad, 784, None, 0)
    with pytest.raises(ValueError, match="784 features are taken as 28x28, but X has 100"):
        check_augment("shift", 100, None, 0)
    with pytest.raises(ValueError, match="image_shape \\(10, 11\\) holds 110 pixels"):
        check_augment("shift", 100, (10, 11), 0)
    assert check_augment("shift", 100, (10, 10), 0).image_shape == (10, 10)
    X, y = digits(50, (10, 10)), np.arange(50) % 2
    model = fastnn.MLPClassifier(hidden_layer_sizes=5, augment="elastic")
    with pytest.raises(ValueError, match="give image_shape"):
        model.fit(X, y)
    assert not hasattr(model, "coefs_")  # refused before anything changed
    model.set_params(image_shape=(10, 10), max_iter=1).fit(X, y)
    parse = options.build_parser().parse_args
    with pytest.raises(ValueError, match="NAME=VALUE"):
        options.resolve(parse(["--augment", "elastic", "alpha"]))
    with pytest.raises(ValueError, match="must be a number"):
        options.resolve(parse(["--augment", "elastic", "alpha=big"]))
    assert options.resolve(parse(["--augment", "elastic", "alpha=8"])).augment == {
        "kind": "elastic",
        "alpha": 8.0,
    }


@pytest.mark.parametrize("kind", augment.KINDS)
def test_the_estimator_trains_on_augmented_images_alike_on_both_backends(kind):
    X, y = digits(240), np.arange(240) % 3
    settings = dict(
        hidden_layer_sizes=(16,), augment=kind, max_iter=3, batch_size=32, dtype="float64",
        solver="sgd", learning_rate="constant", learning_rate_init=0.05, random_state=2,
    )  # fmt: skip
    fitted = {b: fastnn.MLPClassifier(backend=b, **settings).fit(X, y) for b in ("numpy", "numba")}
    np.testing.assert_allclose(
        fitted["numba"].loss_curve_, fitted["numpy"].loss_curve_, rtol=TRAINED["float64"]
    )
    np.testing.assert_array_equal(fitted["numba"].predict(X), fitted["numpy"].predict(X))
    np.testing.assert_allclose(
        fitted["numba"].predict_proba(X), fitted["numpy"].predict_proba(X), rtol=TRAINED["float64"]
    )
    plain = fastnn.MLPClassifier(backend="numba", **{**settings, "augment": None}).fit(X, y)
    assert plain.loss_curve_ != fitted["numba"].loss_curve_  # the images did change
    # 1 epoch and then 2 more (warm start, plain SGD: no optimizer state) are the bits of 3.
    first = fastnn.MLPClassifier(backend="numba", **{**settings, "max_iter": 1}).fit(X, y)
    first.set_params(warm_start=True, max_iter=2).fit(X, y)
    for a, b in zip(first.coefs_, fitted["numba"].coefs_, strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_saved_model_keeps_its_augmentation(tmp_path):
    X, y = digits(60), np.arange(60) % 2
    spec = {"kind": "elastic", "alpha": 8.0, "sigma": 3.0}
    model = fastnn.MLPClassifier(hidden_layer_sizes=4, augment=spec, max_iter=1).fit(X, y)
    model.save(tmp_path / "m.npz")
    loaded = fastnn.load(tmp_path / "m.npz")
    assert loaded.augment == spec
    loaded.partial_fit(X, y)  # trains on with it


def test_the_command_augments_and_draws_what_the_network_sees(real_data_dir, tmp_path, capsys):
    code, out, err = run_main(
        ["--data", str(real_data_dir / "mnist"), "--hidden", "16", "--epochs", "1",
         "--dev-size", "500", "--augment", "elastic", "alpha=8", "--plots", str(tmp_path),
         "--metrics", str(tmp_path / "m.json")],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    assert "augment {'kind': 'elastic', 'alpha': 8.0}" in out and "augment.png" in out
    assert (tmp_path / "augment.png").stat().st_size > 5000
    config = json.loads((tmp_path / "m.json").read_text())["config"]
    assert config["augment"] == {"kind": "elastic", "alpha": 8.0}
    code, _, err = run_main(["--augment", "blur", "--epochs", "1"], capsys)
    assert code == 1 and "augment must be None, one of shift, affine, elastic" in err
