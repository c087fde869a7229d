"""Duplicate detection: exact (SHA-256 of the file bytes) and near (64-bit DCT perceptual hash).

The perceptual hash is the classic pHash: grey, resize to 32x32 (area averaging), 2-D DCT, keep
the 8x8 lowest frequencies, one bit per coefficient = above the median of those 64 (the DC term is
left out of the median because it only says how bright the image is). Re-encoding, resizing and
mild colour changes move few bits; a different crop or scene moves about half of them. Two hashes
within ``max_distance`` bits (Hamming) are near-duplicates.

For stereo items the hash is taken of the left view, so an SBS file and the same pair re-packed as
over-under or MPO are caught too.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path, *, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks (web originals can be tens of MB)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def phash64(image: np.ndarray) -> int:
    """64-bit DCT perceptual hash of an HxW or HxWx3 uint8 image (bit 63 = lowest frequency)."""
    import cv2

    img = image
    if img.ndim == 3:
        img = cv2.cvtColor(np.ascontiguousarray(img[..., :3]), cv2.COLOR_RGB2GRAY)
    small = cv2.resize(img.astype(np.float32), (32, 32), interpolation=cv2.INTER_AREA)
    coeffs = cv2.dct(small)[:8, :8].flatten()
    median = np.median(coeffs[1:])  # DC excluded: it carries brightness, not structure
    bits = coeffs > median
    value = 0
    for bit in bits:
        value = (value << 1) | int(bit)
    return value


def phash_hex(value: int) -> str:
    """16-character hex form stored in ``Item.phash``."""
    return f"{value:016x}"


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def hamming_distances(query: int, values: np.ndarray) -> np.ndarray:
    """Bit distances from ``query`` to each uint64 of ``values`` (vectorised popcount of the XOR)."""
    x = np.bitwise_xor(values.astype(np.uint64, copy=False), np.uint64(query))
    if hasattr(np, "bitwise_count"):  # numpy >= 2.0
        return np.bitwise_count(x).astype(np.int64)
    return np.unpackbits(x.view(np.uint8).reshape(-1, 8), axis=1).sum(axis=1)


def nearest(query: int, hashes: dict[str, int]) -> tuple[str, int] | None:
    """(id, distance) of the hash in ``hashes`` closest to ``query``; None if ``hashes`` is empty."""
    if not hashes:
        return None
    ids = list(hashes)
    dist = hamming_distances(query, np.fromiter((hashes[i] for i in ids), dtype=np.uint64, count=len(ids)))
    k = int(np.argmin(dist))
    return ids[k], int(dist[k])


class OrderedHashIndex:
    """Perceptual hashes in catalog order, for "is there an *earlier* near-duplicate?" queries.

    ``ranks``: the items' positions in catalog order. ``nearest_before(rank, query)`` scans only the
    items ranked before ``rank`` that are still live (``remove`` takes an item out once it has been
    found to be a duplicate itself). One vectorised pass per query: 40K items take ~0.2 ms.
    """

    def __init__(self, hashes: dict[str, int], ranks: dict[str, int]) -> None:
        self.ids = sorted(hashes, key=lambda i: ranks[i])
        self.ranks = np.array([ranks[i] for i in self.ids], dtype=np.int64)
        self.values = np.array([hashes[i] for i in self.ids], dtype=np.uint64)
        self.live = np.ones(len(self.ids), dtype=bool)
        self.position = {item_id: k for k, item_id in enumerate(self.ids)}

    def remove(self, item_id: str) -> None:
        if item_id in self.position:
            self.live[self.position[item_id]] = False

    def nearest_before(self, rank: int, query: int) -> tuple[str, int] | None:
        n = int(np.searchsorted(self.ranks, rank, side="left"))
        if n == 0:
            return None
        dist = hamming_distances(query, self.values[:n])
        dist[~self.live[:n]] = 65  # more than any real distance
        k = int(np.argmin(dist))
        return (self.ids[k], int(dist[k])) if dist[k] <= 64 else None


def find_near_duplicate(query: int, hashes: dict[str, int], *, max_distance: int) -> tuple[str, int] | None:
    """The closest known item within ``max_distance`` bits, or None."""
    hit = nearest(query, hashes)
    if hit is None or hit[1] > max_distance:
        return None
    return hit
