"""Prediction on images of any size: padding to the stride, batching, outputs."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from model import predict as P


class StrideCheckingRed(nn.Module):
    """Returns the (normalized) red channel; fails unless H and W are multiples of the stride.
    Records the input shapes it saw, so tests can check batching and padding."""

    def __init__(self, stride: int = 32) -> None:
        super().__init__()
        self.stride = stride
        self.seen: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(tuple(x.shape))
        assert x.shape[-2] % self.stride == 0 and x.shape[-1] % self.stride == 0
        return x[:, :1]


def _image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def test_predict_batch_pads_and_unpads_exactly():
    net = StrideCheckingRed()
    im = _image(37, 53)
    out = P.predict_batch(net, [im])
    assert out.shape == (1, 37, 53)
    assert net.seen == [(1, 3, 64, 64)]
    expected = (im[..., 0] / 255.0 - P.IMAGENET_MEAN[0]) / P.IMAGENET_STD[0]
    assert np.allclose(out[0], expected, atol=1e-5)
    with pytest.raises(ValueError):
        P.predict_batch(net, [im, _image(10, 10)])


def test_predict_image_max_side_resizes_back():
    net = StrideCheckingRed()
    out = P.predict_image(net, _image(100, 50), max_side=40)
    assert out.shape == (100, 50)
    assert net.seen == [(1, 3, 64, 32)]  # 40 x 20 padded to the stride


def test_input_spec_from_checkpoint_meta():
    spec = P.InputSpec.from_meta({"normalization": {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}})
    assert spec.mean == (0.5, 0.5, 0.5) and spec.std == (0.25, 0.25, 0.25) and spec.stride == 32
    assert P.InputSpec.from_meta(None) == P.InputSpec()


def test_depth_to_uint16_and_colorize():
    assert P.depth_to_uint16(np.array([[0.0, 1.0, 2.0]])).tolist() == [[0, 32768, 65535]]
    assert P.depth_to_uint16(np.ones((2, 2))).max() == 0
    rgb = P.colorize(np.array([[0.0, 1.0], [2.0, 3.0]]), mask=np.array([[True, True], [True, False]]))
    assert rgb.shape == (2, 2, 3) and rgb.dtype == np.uint8
    assert rgb[0, 0].sum() < rgb[1, 0].sum()  # dark = close, bright = far
    assert rgb[1, 1].tolist() == [128, 128, 128]  # no ground truth: grey


def test_predict_files_batches_equal_sizes_and_writes_outputs(tmp_path: Path):
    folder = tmp_path / "in"
    folder.mkdir()
    sizes = {"a": (40, 30), "b": (40, 30), "c": (25, 61), "d": (40, 30)}
    for stem, (h, w) in sizes.items():
        cv2.imwrite(str(folder / f"{stem}.png"), _image(h, w, seed=len(stem) + h))
    net = StrideCheckingRed()
    written = P.predict_files(net, P.list_images([folder]), tmp_path / "out", batch_size=2, save_npy=True,
                              progress=False)
    assert [p.name for p in written] == ["a.png", "b.png", "c.png", "d.png"]
    # three 40x30 images -> batches of 2 and 1; the odd size alone
    assert sorted(net.seen) == sorted([(2, 3, 64, 32), (1, 3, 64, 32), (1, 3, 32, 64)])
    for stem, (h, w) in sizes.items():
        depth = cv2.imread(str(tmp_path / "out" / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
        assert depth.dtype == np.uint16 and depth.shape == (h, w) and depth.max() == 65535
        assert cv2.imread(str(tmp_path / "out" / "preview" / f"{stem}.jpg")).shape == (h, w, 3)
        raw = np.load(tmp_path / "out" / f"{stem}.npy")
        # the 16-bit map keeps the float map's order
        assert np.argmax(raw) == np.argmax(depth) or raw.ravel()[np.argmax(depth)] == raw.max()


def test_predict_files_refuses_duplicate_stems(tmp_path: Path):
    for sub in ("x", "y"):
        (tmp_path / sub).mkdir()
        cv2.imwrite(str(tmp_path / sub / "same.png"), _image(8, 8))
    with pytest.raises(ValueError, match="same file stem"):
        P.predict_files(StrideCheckingRed(), [tmp_path / "x" / "same.png", tmp_path / "y" / "same.png"],
                        tmp_path / "out", progress=False)
