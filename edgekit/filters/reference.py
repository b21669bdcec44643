"""The hand-made edge filters a network's first layer is compared with, and the convolution of
the course notes.

The kernels are those the notes behind edgekit cite (Andrew Ng's "Convolutional Neural
Networks" course, week 1, "Edge detection" and "More edge detection"): the vertical-edge
filter [[1, 0, -1]] x 3, its horizontal twin (the transpose), Sobel [[1, 0, -1], [2, 0, -2],
[1, 0, -1]] (Sobel and Feldman 1968) and Scharr [[3, 0, -3], [10, 0, -10], [3, 0, -3]]
(Scharr 2000), each "x" filter responding to vertical edges and its "y" transpose to
horizontal ones, plus all six turned by 45 degrees (the outer ring of the 3x3 kernel moved on
by one place), which respond to diagonal edges. Signs follow the notes (bright on the left
gives a positive response); matching uses the absolute cosine, so the opposite polarity
matches as well.

"Convolution" is meant as in deep learning: cross-correlation without flipping the kernel,
no padding ("valid"), as Keras, TFLite and ONNX compute it.
"""

from __future__ import annotations

import numpy as np

_EDGE = np.array([[1, 0, -1], [1, 0, -1], [1, 0, -1]], np.float32)
_SOBEL = np.array([[1, 0, -1], [2, 0, -2], [1, 0, -1]], np.float32)
_SCHARR = np.array([[3, 0, -3], [10, 0, -10], [3, 0, -3]], np.float32)
# The outer ring of a 3x3 kernel, clockwise from the top-left corner.
_RING = ((0, 0), (0, 1), (0, 2), (1, 2), (2, 2), (2, 1), (2, 0), (1, 0))


def rotate45(kernel: np.ndarray) -> np.ndarray:
    """A 3x3 kernel turned by 45 degrees clockwise: each outer value moves one place on."""
    kernel = np.asarray(kernel)
    if kernel.shape != (3, 3):
        raise ValueError(f"rotate45 got a kernel of shape {kernel.shape}; expected (3, 3)")
    out = kernel.copy()
    for k, (i, j) in enumerate(_RING):
        out[_RING[(k + 1) % len(_RING)]] = kernel[i, j]
    return out


def _bank() -> dict[str, np.ndarray]:
    base = {"vertical": _EDGE, "horizontal": _EDGE.T.copy(), "sobel_x": _SOBEL, "sobel_y": _SOBEL.T.copy(),
            "scharr_x": _SCHARR, "scharr_y": _SCHARR.T.copy()}
    turned = {f"{name}_45": rotate45(kernel) for name, kernel in base.items()}
    return {**base, **turned}


REFERENCES: dict[str, np.ndarray] = _bank()  # name -> 3x3 float32 kernel, in display order


def reference_filters(size: tuple[int, int] = (3, 3)) -> dict[str, np.ndarray]:
    """The reference kernels at ``size`` (kh, kw): as published at 3x3, else resampled
    (:func:`resize_kernel`) so that a 5x5 or 7x7 first layer can be compared with them."""
    return {name: resize_kernel(kernel, size) for name, kernel in REFERENCES.items()}


def _interpolation(n_out: int, n_in: int) -> np.ndarray:
    """(n_out, n_in) matrix of linear interpolation between the centres of the first and last
    taps (align-corners), so that a kernel keeps its centre and its ends."""
    if n_out == n_in:
        return np.eye(n_in, dtype=np.float32)
    if n_out == 1:
        return np.full((1, n_in), 1.0 / n_in, np.float32)
    position = np.linspace(0, n_in - 1, n_out)
    low = np.minimum(np.floor(position).astype(int), n_in - 2)
    frac = position - low
    matrix = np.zeros((n_out, n_in), np.float32)
    matrix[np.arange(n_out), low] = 1 - frac
    matrix[np.arange(n_out), low + 1] = frac
    return matrix


def resize_kernel(kernel: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``kernel`` (kh, kw) resampled to ``size`` by separable linear interpolation."""
    kernel = np.asarray(kernel, np.float32)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"resize_kernel size got {size!r}; expected (height, width) >= 1")
    rows, cols = _interpolation(size[0], kernel.shape[0]), _interpolation(size[1], kernel.shape[1])
    return (rows @ kernel @ cols.T).astype(np.float32)


def correlate2d(image: np.ndarray, kernel: np.ndarray, stride: int = 1) -> np.ndarray:
    """Deep learning's "convolution" of ``image`` with ``kernel``: cross-correlation, valid,
    at ``stride``. image (H, W) with kernel (kh, kw), or image (H, W, C) with kernel
    (kh, kw, C) (summed over channels); returns float32 (H', W'),
    H' = floor((H - kh) / stride) + 1."""
    image = np.asarray(image, np.float32)
    kernel = np.asarray(kernel, np.float32)
    if image.ndim != kernel.ndim or image.ndim not in (2, 3) or image.shape[2:] != kernel.shape[2:]:
        raise ValueError(f"correlate2d got image {image.shape} and kernel {kernel.shape}; expected (H, W) with "
                         "(kh, kw), or (H, W, C) with (kh, kw, C)")
    if image.shape[0] < kernel.shape[0] or image.shape[1] < kernel.shape[1]:
        raise ValueError(f"correlate2d got image {image.shape[:2]} smaller than kernel {kernel.shape[:2]}")
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise ValueError(f"correlate2d stride got {stride!r}; expected an integer >= 1")
    windows = np.lib.stride_tricks.sliding_window_view(image, kernel.shape[:2], axis=(0, 1))
    windows = windows[::stride, ::stride]
    if image.ndim == 2:
        return np.einsum("ijab,ab->ij", windows, kernel, optimize=True).astype(np.float32)
    return np.einsum("ijcab,abc->ij", windows, kernel, optimize=True).astype(np.float32)


def notes_example() -> tuple[np.ndarray, np.ndarray]:
    """The notes' 6x6 image (left three columns 10, right three 0) and the vertical-edge
    filter; ``correlate2d`` of the two is the 4x4 map with the bright band in the middle."""
    image = np.zeros((6, 6), np.float32)
    image[:, :3] = 10
    return image, REFERENCES["vertical"].copy()
