"""resnet50_upproj: Laina et al.'s up-projection decoder on ResNet-50 trains and predicts."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from model.networks import UpProjection, unpool2x
from model.registry import build_model, list_models

from .paper_data import one_torch_thread  # noqa: F401  (autouse)


def test_unpooling_puts_values_top_left_of_each_2x2_block():
    x = torch.arange(4.0).view(1, 1, 2, 2)
    y = unpool2x(x)
    assert y.shape == (1, 1, 4, 4)
    assert y[0, 0].tolist() == [[0, 0, 1, 0], [0, 0, 0, 0], [2, 0, 3, 0], [0, 0, 0, 0]]


def test_up_projection_doubles_resolution_and_has_both_branches():
    block = UpProjection(8, 4).eval()
    assert block(torch.randn(2, 8, 3, 5)).shape == (2, 4, 6, 10)
    assert block.conv1.kernel_size == (5, 5) and block.conv2.kernel_size == (3, 3) and block.project.kernel_size == (5, 5)


def test_upproj_structure_and_output_shape():
    assert "resnet50_upproj" in list_models()
    net = build_model("resnet50_upproj").eval()
    assert net.decoder == "upproj" and net.fuse is None
    widths = [b.conv1.out_channels for b in net.upproj.blocks]
    assert widths == [512, 256, 128, 64]  # Laina et al.: 1024 -> 512 -> 256 -> 128 -> 64
    assert net.upproj.reduce[0].in_channels == 2048 and net.upproj.reduce[0].out_channels == 1024
    n_params = sum(p.numel() for p in net.parameters())
    assert n_params == 63_563_009  # the README's figure
    with torch.no_grad():
        assert net(torch.randn(1, 3, 64, 96)).shape == (1, 1, 64, 96)


def test_upproj_trains_and_predicts(tmp_path):
    from model.checkpoint import load_model
    from model.data import make_synthetic_export
    from model.predict import InputSpec, predict_image
    from model.config import TrainConfig
    from model.train import train

    data = make_synthetic_export(tmp_path / "export", n=4, size=40, seed=2)
    config = TrainConfig(arch="resnet50_upproj", arch_kwargs={"channels": 64}, pretrained=False,
                         input_size=32, batch_size=2, iterations=3, n_pairs=100, num_workers=0,
                         tensorboard=False, val_every=3, lr=0.01, optimizer="adam")
    result = train(data=data, run_dir=tmp_path / "run", config=config, progress=False)
    assert result.step == 3 and np.isfinite(result.metrics["val_loss"])
    model, meta = load_model(result.checkpoint)
    assert meta["arch"] == "resnet50_upproj" and meta["arch_kwargs"] == {"channels": 64}
    torch.manual_seed(0)  # train() seeds the same way before building: these are the initial weights
    before = build_model("resnet50_upproj", channels=64).state_dict()
    changed = [k for k, v in model.state_dict().items() if k.endswith("weight") and not torch.equal(before[k], v)]
    assert any(k.startswith("upproj.") for k in changed) and any(k.startswith("output.") for k in changed)
    depth = predict_image(model, np.random.default_rng(0).integers(0, 255, (45, 61, 3), dtype=np.uint8),
                          InputSpec.from_meta(meta), "cpu", None)
    assert depth.shape == (45, 61) and np.isfinite(depth).all()


def test_upproj_rejects_too_narrow_decoder():
    with pytest.raises(ValueError, match="channels >= 32"):
        build_model("resnet50_upproj", channels=16)
