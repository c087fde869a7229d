"""Search helpers for the sentinel-secret tests (tests/flows/test_secrets.py, test_deployments.py)."""
from __future__ import annotations

from pathlib import Path


def files_containing(root: Path, needles: list[bytes]) -> list[str]:
    """``"path: needle"`` for every file under ``root`` that holds any of ``needles`` (links not followed)."""
    hits = []
    for path in Path(root).rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            hits += [f"{path}: {n.decode()}" for n in needles if n in data]
    return hits
