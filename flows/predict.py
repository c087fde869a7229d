"""Prediction flow: run a checkpoint over images, write 16-bit depth PNGs and colour previews."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from prefect import flow

from flows.options import checkpoint_or_newest, flow_config, predict_options, run_dir_for
from flows.policy import redweb_task
from flows.config import Overrides


def _predict(checkpoint: str, paths: list[str], out_dir: str, *, device: str, batch_size: int,
             max_side: int | None, previews: bool, save_npy: bool, progress: bool) -> list[str]:
    from model.predict import load_checkpoint_model, predict_files

    model, spec, _meta = load_checkpoint_model(checkpoint, device)
    written = predict_files(model, paths, out_dir, spec=spec, device=device, batch_size=batch_size,
                            max_side=max_side, previews=previews, save_npy=save_npy, progress=progress)
    return [str(p) for p in written]


@flow(name="predict", log_prints=True)
def predict_flow(
    config_file: str | None = None,
    data_root: str | None = None,
    overrides: Overrides = None,
    images: Sequence[str] = (),
    checkpoint: str | None = None,
    out_dir: str | None = None,
    previews: bool = True,
    save_npy: bool = False,
    progress: bool = True,
) -> list[str]:
    """Predict depth for image files and folders (non-recursive); returns the written 16-bit PNGs.

    ``checkpoint`` defaults to the promoted model (else the newest trained one), ``out_dir`` to
    ``<data_root>/runs/predict-<time>``; device, batch size and max side come from the ``evaluate`` section.
    """
    from model.predict import list_images

    config = flow_config(config_file, data_root, overrides)
    opts = predict_options(config)
    checkpoint = checkpoint_or_newest(config, checkpoint)
    paths = [str(p) for p in list_images(images)]
    if not paths:
        raise ValueError("no images found in " + (", ".join(map(str, images)) or "(no inputs given)"))
    out_dir = out_dir or str(run_dir_for(config, "predict"))
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    task = redweb_task(_predict, kind="gpu" if opts["device"].startswith("cuda") else "cpu")
    return task(checkpoint, paths, out_dir, previews=previews, save_npy=save_npy, progress=progress, **opts)
