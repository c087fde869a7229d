"""tasks.ingest.dedup: hashes by hand, near-duplicate search, and duplicates across sources and runs."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from tasks.catalog.catalog import State, item_id_for
from tasks.ingest.dedup import find_near_duplicate, hamming, nearest, phash64, phash_hex, sha256_bytes, sha256_file
from tasks.ingest.samples import _CROPS, crop_pair


def test_sha256_and_hamming_by_hand(tmp_path):
    abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"  # FIPS 180-2 test vector
    assert sha256_bytes(b"abc") == abc
    (tmp_path / "f").write_bytes(b"abc")
    assert sha256_file(tmp_path / "f", chunk=1) == abc
    assert hamming(0b1011, 0b0001) == 2 and hamming(0, 2**64 - 1) == 64
    assert phash_hex(0xABC) == "0000000000000abc"


def test_phash_of_a_known_pattern():
    # left half dark, right half bright: the only strong low frequency is the first horizontal cosine
    img = np.zeros((64, 64), np.uint8)
    img[:, 32:] = 255
    value = phash64(img)
    bits = [(value >> (63 - k)) & 1 for k in range(64)]
    # coefficient (0, 0) is the DC (large positive: bit set); (0, 1) is strongly negative (dark->bright)
    assert bits[0] == 1 and bits[1] == 0
    assert phash64(img) == phash64(np.dstack([img, img, img]))  # colour or grey: same hash


def test_phash_tolerates_reencoding_not_other_crops():
    left = crop_pair(_CROPS["pair_05"], 200)[0]
    buf = io.BytesIO()
    Image.fromarray(left).resize((150, int(150 * left.shape[0] / left.shape[1]))).save(buf, "JPEG", quality=60)
    reencoded = np.asarray(Image.open(buf).convert("RGB"))
    assert hamming(phash64(left), phash64(reencoded)) <= 6
    other = crop_pair(_CROPS["pair_06"], 200)[0]
    assert hamming(phash64(left), phash64(other)) > 16
    mirrored = np.ascontiguousarray(left[:, ::-1])
    assert hamming(phash64(left), phash64(mirrored)) > 6


def test_nearest_matches_brute_force():
    rng = np.random.default_rng(3)
    hashes = {f"i{k}": int(rng.integers(0, 2**63)) * 2 + int(rng.integers(0, 2)) for k in range(500)}
    for query in [int(rng.integers(0, 2**63)) for _ in range(20)] + [hashes["i7"] ^ 0b101]:
        best_id, best = nearest(query, hashes)
        assert best == min(hamming(query, h) for h in hashes.values())
        assert hamming(query, hashes[best_id]) == best
    assert find_near_duplicate(hashes["i7"] ^ 0b101, hashes, max_distance=2) == ("i7", 2)
    assert find_near_duplicate(hashes["i7"] ^ 0b10101, hashes, max_distance=2) is None
    assert nearest(1, {}) is None


@pytest.fixture(scope="module")
def sample_dir(tmp_path_factory):
    from tasks.ingest.samples import build_samples

    return build_samples(tmp_path_factory.getbasetemp() / "samples-128" / "samples", max_view_side=128)


def test_duplicates_across_sources_and_runs(catalog, tmp_path, sample_dir):
    """Samples first, then the same files as local:DIR: every decodable file is an exact duplicate of
    its sample, whatever its content (duplicates are caught before the stereo check); the copy of
    the re-encoded file is a near-duplicate, because its byte-twin is not an original."""
    import shutil

    from tasks.ingest.run import ingest
    from tasks.ingest.samples import load_manifest

    root = tmp_path / "data"
    shutil.copytree(sample_dir, root / "samples")
    ingest(catalog, "samples", data_root=root, samples_max_view_side=128)
    manifest = {e["file"]: e for e in load_manifest(root / "samples")}
    near = catalog.get(item_id_for("samples", "sbs_parallel_reencoded.jpg"))
    assert (near.state, near.reason) == (State.REJECTED.value, "near_duplicate")
    assert near.duplicate_of == item_id_for("samples", "sbs_parallel.jpg")
    exact = catalog.get(item_id_for("samples", "sbs_parallel_copy.jpg"))
    assert (exact.reason, exact.duplicate_of) == ("duplicate", item_id_for("samples", "sbs_parallel.jpg"))

    folder = tmp_path / "copy"
    shutil.copytree(sample_dir, folder)
    result = ingest(catalog, f"local:{folder}", data_root=root)
    n_bad = sum(e["expected_state"] == "failed" for e in manifest.values())
    assert result == {"rejected": len(manifest) - n_bad, "failed": n_bad}
    for name, entry in manifest.items():
        item = catalog.get(item_id_for("local", name))
        if entry["expected_state"] == "failed":
            assert item.reason == entry["expected_reason"]
            continue
        if entry["expected_reason"] == "near_duplicate":
            # its byte-twin is itself a duplicate (find_by_sha256 skips those): caught by pHash instead
            assert (item.reason, item.duplicate_of) == ("near_duplicate", item_id_for("samples", entry["duplicate_of"]))
            continue
        assert item.reason == "duplicate"
        original = entry["duplicate_of"] if entry["expected_reason"] == "duplicate" else name
        assert item.duplicate_of == item_id_for("samples", original)


def test_ordered_index_only_looks_back_and_skips_removed():
    from tasks.ingest.dedup import OrderedHashIndex

    hashes = {"a": 0b1111, "b": 0b1110, "c": 0b0000_1111_0000, "d": 0b1100}
    index = OrderedHashIndex(hashes, {"a": 0, "b": 1, "c": 2, "d": 3})
    assert index.nearest_before(0, hashes["a"]) is None  # nothing earlier than the first
    assert index.nearest_before(1, hashes["b"]) == ("a", 1)
    assert index.nearest_before(3, hashes["d"]) == ("b", 1)  # b (1 bit) beats a (2 bits)
    index.remove("b")
    assert index.nearest_before(3, hashes["d"]) == ("a", 2)
