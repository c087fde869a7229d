"""Byte-for-byte backups of one item's map folder, so a reviewer's view-order flip can be undone.

A backup is ``maps/<id>/.preflip/<token>/`` (a copy of the folder's files, times kept); its path
relative to the data root is what the flip's decision row stores.
"""
from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

from core.layout import DataRoot, run_stamp
from tasks.catalog.catalog import utcnow
from tasks.review.errors import ReviewError

_BACKUPS = ".preflip"


def backup_maps(data_root: Path, item_id: str) -> str:
    """Copy the files of maps/<id>/ (byte for byte, times kept) to maps/<id>/.preflip/<token>/."""
    src = DataRoot(data_root).maps(item_id)
    token = f"{run_stamp(utcnow())}-{secrets.token_hex(4)}"
    dst = src / _BACKUPS / token
    dst.mkdir(parents=True)
    if src.is_dir():
        for f in src.iterdir():
            if f.is_file() and not f.is_symlink():
                shutil.copy2(f, dst / f.name)
    return dst.relative_to(data_root).as_posix()


def restore_maps(data_root: Path, item_id: str, backup: str) -> None:
    """Make maps/<id>/ hold exactly the backed-up files again (files made since are removed)."""
    src = (data_root / backup).resolve()
    folder = DataRoot(data_root).maps(item_id)
    if not src.is_relative_to((folder / _BACKUPS).resolve()) or not src.is_dir():
        raise ReviewError(f"{item_id}: the saved maps ({backup}) are gone")
    saved = {f.name for f in src.iterdir() if f.is_file()}
    for f in folder.iterdir():
        if f.is_file() and f.name not in saved:
            f.unlink()
    for name in saved:
        tmp = folder / f".{name}.restore"
        shutil.copy2(src / name, tmp)
        os.replace(tmp, folder / name)


def drop_backup(data_root: Path, backup: str | None) -> None:
    """Delete a backup once it is of no use (never anything outside a ``.preflip`` folder)."""
    if backup:
        path = (data_root / backup).resolve()
        if _BACKUPS in path.parts and path.is_relative_to(data_root.resolve()):
            shutil.rmtree(path, ignore_errors=True)
