"""tasks.ingest.imageio: every kind of bad file gets its reason; every pixel format becomes RGB uint8."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from tasks.ingest.imageio import ImageError, decode_image, is_jps
from tasks.ingest.samples import decompression_bomb_png


def _rgb(h: int = 80, w: int = 120, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (h // 8, w // 8, 3), dtype=np.uint8)
    return np.kron(base, np.ones((8, 8, 1), dtype=np.uint8))  # blocky: survives JPEG well


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _reason(data, **kw) -> str:
    with pytest.raises(ImageError) as info:
        decode_image(data, **kw)
    return info.value.reason


def test_bad_inputs_have_reasons(tmp_path):
    jpeg = _encode(Image.fromarray(_rgb()), "JPEG", quality=90)
    assert _reason(b"") == "empty_file"
    assert _reason(b"<html>404</html>" * 10) == "not_image"
    assert _reason(jpeg[: len(jpeg) // 2]) == "truncated"
    assert _reason(decompression_bomb_png()) == "too_large"  # Pillow's own cap, before any decoding
    assert _reason(decompression_bomb_png(3000, 2000), max_pixels=5_000_000) == "too_large"  # our cap
    assert _reason(jpeg, min_side=100) == "too_small"  # 80 px high
    assert _reason(jpeg, max_file_bytes=100) == "file_too_big"
    assert _reason(tmp_path / "missing.jpg") == "source_missing"
    (tmp_path / "empty.png").write_bytes(b"")
    assert _reason(tmp_path / "empty.png") == "empty_file"


def test_corrupt_png_is_not_silently_accepted():
    from tasks.ingest.samples import _corrupt_png

    # PNG's getexif() loads pixels itself: the decode error must still surface as "corrupt"
    assert _reason(_corrupt_png(_rgb())) == "corrupt"


def test_pixel_formats_become_rgb_uint8():
    rgb = _rgb()
    cmyk = decode_image(_encode(Image.fromarray(rgb).convert("CMYK"), "JPEG", quality=95))
    assert cmyk.mode == "CMYK" and cmyk.rgb.dtype == np.uint8 and cmyk.rgb.shape == rgb.shape
    assert np.abs(cmyk.rgb.astype(int) - rgb).mean() < 8

    import cv2

    sixteen = (rgb.astype(np.uint32) * 256 + 100).astype(np.uint16)  # the low byte must barely matter
    ok, enc = cv2.imencode(".png", np.ascontiguousarray(sixteen[..., ::-1]))
    assert ok
    out = decode_image(enc.tobytes()).rgb
    assert np.abs(out.astype(int) - rgb).max() <= 1

    grey16 = (rgb[..., 0].astype(np.uint16) * 257)
    ok, enc = cv2.imencode(".png", grey16)
    out = decode_image(enc.tobytes())
    assert out.mode.startswith("I")
    assert np.array_equal(out.rgb[..., 0], rgb[..., 0]) and np.array_equal(out.rgb[..., 1], out.rgb[..., 2])

    pal = Image.fromarray(rgb).quantize(colors=16)
    out = decode_image(_encode(pal, "PNG"))
    assert out.mode == "P" and np.array_equal(out.rgb, np.asarray(pal.convert("RGB")))

    grey = decode_image(_encode(Image.fromarray(rgb[..., 1]), "PNG"))
    assert grey.mode == "L" and np.array_equal(grey.rgb, np.repeat(rgb[..., 1:2], 3, axis=2))

    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    rgba[:10, :10, 3] = 0  # transparent corner -> white
    out = decode_image(_encode(Image.fromarray(rgba), "PNG")).rgb
    assert (out[:10, :10] == 255).all() and np.array_equal(out[20:, 20:], rgb[20:, 20:])

    la = Image.fromarray(np.dstack([rgb[..., 0], np.full(rgb.shape[:2], 255, np.uint8)]), mode="LA")
    out = decode_image(_encode(la, "PNG")).rgb
    assert np.array_equal(out[..., 2], rgb[..., 0])


def test_exif_orientation_is_applied():
    upright = _rgb(80, 160)
    exif = Image.Exif()
    exif[0x0112] = 6  # display = stored rotated 90 degrees clockwise
    stored = np.ascontiguousarray(np.rot90(upright, 1))  # stored turned counter-clockwise
    out = decode_image(_encode(Image.fromarray(stored), "PNG", exif=exif.tobytes()))
    assert out.orientation == 6
    assert out.rgb.shape == upright.shape and np.array_equal(out.rgb, upright)


def test_mpo_keeps_every_frame_and_jps_marker():
    a, b = _rgb(seed=1), _rgb(seed=2)
    data = _encode(Image.fromarray(a), "MPO", save_all=True, append_images=[Image.fromarray(b)], quality=95)
    out = decode_image(data)
    assert out.format == "MPO" and len(out.frames) == 2
    err = lambda x, y: np.abs(x.astype(int) - y).mean()  # noqa: E731
    assert err(out.frames[0], a) < 12 and err(out.frames[1], b) < 12 and err(out.frames[1], a) > 40
    assert len(decode_image(data, all_frames=False).frames) == 1

    from tasks.ingest.samples import _with_jps_segment

    jpeg = _encode(Image.fromarray(a), "JPEG")
    assert not is_jps(jpeg) and is_jps(_with_jps_segment(jpeg))
    assert decode_image(_with_jps_segment(jpeg)).format == "JPEG"  # the segment doesn't break decoding
