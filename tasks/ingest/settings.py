"""The ingest stage's settings (``ingest`` and ``flickr`` sections): one home for every default.

The ingest defaults are the keyword defaults of ``tasks.ingest.run.ingest``, the Flickr crawl's are the keyword defaults of ``tasks.ingest.sources.flickr.discover`` (its
signature is their one home); this section reads them.
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import Field, SecretStr

from core.settings import Section, keyword_defaults
from tasks.ingest.run import ingest
from tasks.ingest.sources.flickr import discover as flickr_discover

FLICKR_REST_URL_DEFAULT = "https://api.flickr.com/services/rest/"
_FLICKR = keyword_defaults(flickr_discover)
_INGEST = keyword_defaults(ingest)


class IngestConfig(Section):
    """Ingestion: sources, limits on what counts as a usable image, deduplication."""

    max_pixels: int = Field(_INGEST["max_pixels"], gt=0, description="decompression-bomb cap on width*height")
    min_side: int = Field(_INGEST["min_side"], gt=0, description="smaller images are rejected as too_small (per view)")
    max_file_bytes: int = Field(_INGEST["max_file_bytes"], gt=0)
    download_timeout_s: float = Field(_INGEST["timeout_s"], gt=0)
    download_retries: int = Field(_INGEST["retries"], ge=0)
    near_duplicate_max_distance: int = Field(
        _INGEST["near_duplicate_max_distance"], ge=0, le=64, description="Hamming distance of 64-bit perceptual hashes below which two images are near-duplicates"
    )
    stereo_min_similarity: float = Field(
        _INGEST["min_similarity"], ge=-1, le=1,
        description="view_similarity two regions need to count as two views (stereo samples >= 0.41, mono halves <= 0.31)",
    )
    samples_max_view_side: int | None = Field(
        _INGEST["samples_max_view_side"], gt=0, description="build the embedded samples with views at most this many px (None: 741x500 source)"
    )
    batch_size: int = Field(16, ge=1, description="items per Prefect task in the ingest flow")
    anaglyph_min_score: float = Field(_INGEST["anaglyph_threshold"], ge=-2, le=2, description="anaglyph_score above which a mono-looking image is an anaglyph")
    anaglyphs: str = Field("reject", pattern="^(reject|split)$",
                           description="reject (reason anaglyph) or split into two grey views: red = left, (green+blue)/2 = right")
    extensions: tuple[str, ...] = tuple(_INGEST["extensions"])

    def ingest_kwargs(self) -> dict[str, Any]:
        """This section as keyword arguments of ``tasks.ingest.run.ingest`` (the one mapping of its names
        onto the stage's: the flow's steps, the audit and the benchmarks take theirs from here)."""
        return dict(extensions=list(self.extensions), max_pixels=self.max_pixels, min_side=self.min_side,
                    max_file_bytes=self.max_file_bytes, timeout_s=self.download_timeout_s,
                    retries=self.download_retries, min_similarity=self.stereo_min_similarity,
                    anaglyph_threshold=self.anaglyph_min_score, split_anaglyph=self.anaglyphs == "split",
                    near_duplicate_max_distance=self.near_duplicate_max_distance,
                    samples_max_view_side=self.samples_max_view_side)


class FlickrConfig(Section):
    """Flickr crawl. Credentials and endpoint come from the environment (see README)."""

    rest_url: str = FLICKR_REST_URL_DEFAULT
    api_key: SecretStr = SecretStr("")
    api_secret: SecretStr = SecretStr("")
    tags: tuple[str, ...] = ("stereoscopic", "stereo", "3d", "sidebyside", "parallel", "crossview", "mpo")
    text: str = _FLICKR["text"]
    tag_mode: str = Field(_FLICKR["tag_mode"], pattern="^(any|all)$")
    # None = every license whose name says derivatives are allowed, read from flickr.photos.licenses.getInfo
    licenses: tuple[str, ...] | None = _FLICKR["licenses"]
    per_page: int = Field(_FLICKR["per_page"], ge=1, le=500)
    max_results_per_query: int = Field(_FLICKR["max_results_per_query"], ge=1, description="Flickr returns at most this many results per query")
    max_calls_per_hour: int = Field(_FLICKR["max_calls_per_hour"], ge=1, description="never more API calls than this in any hour (token "
                                    "bucket kept in the catalog, so restarts keep counting; one crawler per key)")
    max_retries: int = Field(_FLICKR["max_retries"], ge=0, description="retries of an API call on 429/5xx/timeouts/'service unavailable'")
    backoff_base_s: float = Field(_FLICKR["backoff_base_s"], ge=0, description="first retry waits about this long, doubling each time")
    backoff_max_s: float = Field(_FLICKR["backoff_max_s"], ge=0, description="cap on one backoff wait (also on a honoured Retry-After)")
    timeout_s: float = Field(_FLICKR["timeout_s"], gt=0)
    # unix seconds or a date/datetime (UTC; YAML and --set parse 2020-01-01 as a date); None = now,
    # fixed in the catalog when a crawl starts
    min_upload_date: int | datetime | date | str = _FLICKR["min_upload_date"]
    max_upload_date: int | datetime | date | str | None = _FLICKR["max_upload_date"]
