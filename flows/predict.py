"""Prediction flow: run a checkpoint over images, write 16-bit depth PNGs and colour previews."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from prefect import flow

from flows.policy import redweb_task


def _predict(checkpoint: str, paths: list[str], out_dir: str, *, device: str, batch_size: int,
             max_side: int | None, previews: bool, save_npy: bool, progress: bool) -> list[str]:
    from model.predict import load_checkpoint_model, predict_files

    model, spec, _meta = load_checkpoint_model(checkpoint, device)
    written = predict_files(model, paths, out_dir, spec=spec, device=device, batch_size=batch_size,
                            max_side=max_side, previews=previews, save_npy=save_npy, progress=progress)
    return [str(p) for p in written]


@flow(name="predict", log_prints=True)
def predict_flow(
    images: Sequence[str],
    checkpoint: str,
    out_dir: str,
    *,
    device: str = "auto",
    batch_size: int = 4,
    max_side: int | None = 1024,
    previews: bool = True,
    save_npy: bool = False,
    progress: bool = True,
) -> list[str]:
    """Predict depth for image files and folders (non-recursive); returns the written 16-bit PNGs."""
    from model.predict import list_images, resolve_device

    device = resolve_device(device)
    paths = [str(p) for p in list_images(images)]
    if not paths:
        raise ValueError("no images found in " + ", ".join(map(str, images)))
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    task = redweb_task(_predict, kind="gpu" if str(device).startswith("cuda") else "cpu")
    return task(checkpoint, paths, out_dir, device=device, batch_size=batch_size, max_side=max_side,
                previews=previews, save_npy=save_npy, progress=progress)
