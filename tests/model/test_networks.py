"""Registry and network shape/behaviour tests (tiny inputs, CPU)."""
from __future__ import annotations

import logging

import pytest
import torch

from model.networks import RelativeDepthNet
from model.registry import Registry, build_model, list_models, register_model


def test_registry_lists_paper_and_variants():
    names = list_models()
    for name in ("resnet50_fusion", "resnet18_fusion", "resnet34_fusion", "resnet101_fusion",
                 "resnet50_direct_upsample", "resnet50_dilated"):
        assert name in names
    assert names == sorted(names)


def test_registry_refuses_duplicates_and_unknown_names():
    reg: Registry = Registry("thing")
    reg.register("a", lambda: 1)
    with pytest.raises(ValueError, match="already registered"):
        reg.register("a", lambda: 2)
    with pytest.raises(KeyError, match="unknown thing 'b'"):
        reg.build("b")
    with pytest.raises(ValueError, match="already registered"):
        register_model("resnet18_fusion", lambda **kw: None)


def test_builders_are_keyword_only():
    with pytest.raises(TypeError):
        build_model("resnet18_fusion", True)  # type: ignore[misc]


@pytest.mark.parametrize("size", [(64, 64), (70, 90)])
def test_fusion_output_is_b1hw_at_input_size(size):
    torch.manual_seed(0)
    net = build_model("resnet18_fusion").eval()
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        y = net(x)
    assert y.shape == (2, 1, *size)
    assert torch.isfinite(y).all()


@pytest.mark.slow
@pytest.mark.parametrize("name", list_models())
def test_every_registered_model_runs(name):
    net = build_model(name).eval()
    with torch.no_grad():
        y = net(torch.randn(1, 3, 64, 96))
    assert y.shape == (1, 1, 64, 96)


def test_fusion_structure_matches_paper():
    net = build_model("resnet18_fusion")
    assert isinstance(net, RelativeDepthNet)
    assert len(net.fuse) == 4
    # Transitional convs: 3x3 to 256 channels, from layer4 (512 ch for resnet18) down to layer1 (64).
    assert [m.transition.in_channels for m in net.fuse] == [512, 256, 128, 64]
    assert all(m.transition.out_channels == 256 and m.transition.kernel_size == (3, 3) for m in net.fuse)
    assert net.output.conv1.out_channels == 128 and net.output.conv2.out_channels == 1
    # Backbone/head split covers every parameter exactly once.
    n_all = sum(p.numel() for p in net.parameters())
    assert n_all == sum(p.numel() for p in net.backbone_parameters()) + sum(p.numel() for p in net.head_parameters())
    assert not hasattr(net, "fc") and not hasattr(net, "avgpool")


def test_pretrained_from_local_path_loads_weights(tmp_path):
    import torchvision

    torch.manual_seed(1)
    reference = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18-imagenet.pth"
    torch.save(reference.state_dict(), path)
    net = build_model("resnet18_fusion", weights_path=str(path))
    assert net.backbone_pretrained
    assert torch.equal(net.layer3[0].conv1.weight, reference.layer3[0].conv1.weight)
    assert torch.equal(net.stem[0].weight, reference.conv1.weight)


def test_pretrained_without_weights_says_from_scratch(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # empty cache: nothing to find, nothing downloaded
    with caplog.at_level(logging.WARNING, logger="model.networks"):
        net = build_model("resnet18_fusion", pretrained=True)
    assert not net.backbone_pretrained
    assert "TRAINS FROM SCRATCH" in caplog.text
    assert not any(tmp_path.rglob("*.pth"))


def test_pretrained_from_torch_home_cache(tmp_path, monkeypatch):
    import torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    reference = torchvision.models.resnet18(weights=None)
    name = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url.rsplit("/", 1)[-1]
    torch.save(reference.state_dict(), cache / name)
    net = build_model("resnet18_fusion", pretrained=True)
    assert net.backbone_pretrained
    assert torch.equal(net.layer1[0].conv1.weight, reference.layer1[0].conv1.weight)


def test_dilated_requires_bottleneck():
    with pytest.raises(ValueError, match="dilation"):
        RelativeDepthNet(backbone="resnet18", dilated=True)
