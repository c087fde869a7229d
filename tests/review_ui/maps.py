"""Small processed items for review and export tests (the process stage's outputs, made by hand).

``make_processed`` walks items through discovered -> downloaded -> split -> processed -> a review
state with ``Catalog.transition``, writing maps/<id>/{image.jpg, depth.png, mask.png, sky.png,
preview.jpg} as INTERFACES.md describes: depth uint16 larger = farther with sky = 65535, mask and
sky uint8 255/0. Each item gets a distinct colour and score so tests can tell them apart.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from tasks.catalog.catalog import PIPELINE_VERSION, Catalog, State


def write_maps(data_root: Path, item_id: str, *, width: int, height: int, seed: int) -> dict[str, str]:
    rng = np.random.default_rng(seed)
    d = data_root / "maps" / item_id
    d.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:height, 0:width]
    colour = rng.integers(40, 220, size=3)
    image = np.clip(colour[None, None, :] + (xx[..., None] * 60 // max(width, 1)) - 30, 0, 255).astype(np.uint8)
    cv2.rectangle(image, (width // 4, height // 2), (width // 2, height - 4), (255, 255, 255), -1)
    sky_rows = height // 4
    depth = (1000 + 40 * yy[::-1] + 3 * xx).astype(np.uint16)  # nearer at the bottom
    depth[:sky_rows] = 65535
    sky = np.zeros((height, width), np.uint8)
    sky[:sky_rows] = 255
    mask = np.full((height, width), 255, np.uint8)
    mask[:, : width // 8] = 0  # unreliable left border strip (not sky)
    cv2.imwrite(str(d / "image.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 92])
    cv2.imwrite(str(d / "depth.png"), depth)
    cv2.imwrite(str(d / "mask.png"), mask)
    cv2.imwrite(str(d / "sky.png"), sky)
    cv2.imwrite(str(d / "preview.jpg"), cv2.applyColorMap((depth >> 8).astype(np.uint8), cv2.COLORMAP_TURBO))
    return {k: f"maps/{item_id}/{n}" for k, n in (("image_path", "image.jpg"), ("depth_path", "depth.png"),
                                                   ("mask_path", "mask.png"), ("sky_path", "sky.png"),
                                                   ("preview_path", "preview.jpg"))}


def make_processed(catalog: Catalog, data_root: Path, n: int, *, state: str = "pending_review",
                   source: str = "local", batch: str = "batch1", width: int = 96, height: int = 64,
                   start: int = 0) -> list[str]:
    """Create ``n`` items in ``state`` (a state reachable from ``processed``); returns their ids in order."""
    ids = []
    for i in range(start, start + n):
        item, _ = catalog.discover(
            source=source, source_id=f"stereo/img_{i:04d}.jpg", url=f"https://example.org/img_{i:04d}.jpg",
            page_url=f"https://example.org/p/{i}", owner=f"owner{i % 3}", license="CC BY 2.0",
            license_url="https://creativecommons.org/licenses/by/2.0/", title=f"photo {i}", batch=batch)
        catalog.transition(item.id, State.DOWNLOADED, raw_path=f"raw/{item.id}.jpg")
        catalog.transition(item.id, State.SPLIT, stereo_format="side_by_side", swapped=bool(i % 2),
                           view_order="cross_eyed" if i % 2 else "parallel",
                           left_path=f"pairs/{item.id}/left.png", right_path=f"pairs/{item.id}/right.png",
                           view_width=width + 20, view_height=height + 10,
                           info={"views": {"left": [0, 0, width + 20, height + 10],
                                           "right": [width + 20, 0, 2 * width + 40, height + 10]}})
        paths = write_maps(data_root, item.id, width=width, height=height, seed=i)
        score = round(0.05 + 0.9 * ((i * 37) % 100) / 100, 4)
        catalog.transition(item.id, State.PROCESSED, crop_x0=5, crop_y0=4, crop_x1=5 + width, crop_y1=4 + height,
                           quality={"valid_fraction": 0.875, "sky_fraction": 0.25, "lr_consistency": round(score, 3)},
                           score=score, pipeline_version=PIPELINE_VERSION, **paths)
        reason = "low_score" if state == State.AUTO_REJECTED.value else None
        if state != State.PROCESSED.value:
            catalog.transition(item.id, state, reason=reason)
        ids.append(item.id)
    return ids
