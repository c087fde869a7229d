"""The ReDWeb network: a ResNet encoder with progressive multi-scale feature fusion.

Xian et al., CVPR 2018, Sec. 4.1 / Fig. 3. The ResNet's four stages give features at 1/4, 1/8,
1/16 and 1/32 of the input. From the coarsest level down, each *feature fusion module* applies

    transitional 3x3 conv (-> 256 ch) -> residual conv block
    -> + (upsampled fused features of the coarser level)     (not at the coarsest level)
    -> residual conv block -> x2 bilinear upsampling

and the *adaptive output module* maps the finest fused features (1/2 of the input) to depth:
3x3 conv (-> 128 ch) -> ReLU -> 3x3 conv (-> 1 ch) -> bilinear upsampling to the input size.

Ablations of the paper (Table 2, architectures), as constructor arguments of the same class:
``fusion=False`` ("direct upsampling": the last stage's features go straight to the output
module) and ``dilated=True`` (ResNet with dilated last two stages, output stride 8). Table 2's
``UpProj`` comparison (Laina et al., "Deeper Depth Prediction with Fully Convolutional Residual
Networks", 3DV 2016) is ``decoder="upproj"``: see :class:`UpProjDecoder`.

Transfer tasks (Sec. 4.3) reuse the same class with ``out_channels``: 1 for metric depth (metres),
21 for VOC segmentation (class logits). The last module, ``output``, is the task *head*; fine-tuning
from a relative-depth checkpoint keeps every other weight and initialises ``output`` afresh.

Input: B3HW float, ImageNet-normalised (see :data:`IMAGENET_MEAN`). Output: B1HW float relative
depth, **larger = farther**; only orderings are meaningful.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from types import MappingProxyType
from typing import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from core.rules import IMAGENET_MEAN, IMAGENET_STD  # noqa: F401  (re-exported)

log = logging.getLogger(__name__)


# Output channels of layer1..layer4 for each torchvision ResNet depth.
_STAGE_CHANNELS = {
    "resnet18": (64, 128, 256, 512),
    "resnet34": (64, 128, 256, 512),
    "resnet50": (256, 512, 1024, 2048),
    "resnet101": (256, 512, 1024, 2048),
}


class ResidualConvBlock(nn.Module):
    """ReLU-conv3x3-ReLU-conv3x3 plus identity (the RefineNet residual conv unit the paper uses)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Not in-place: the input is also the skip path.
        y = self.conv1(F.relu(x))
        y = self.conv2(F.relu(y))
        return x + y


class FeatureFusionModule(nn.Module):
    """One level of the progressive fusion (B,C_in,h,w) [+ (B,256,h,w)] -> (B,256,out_size)."""

    def __init__(self, in_channels: int, channels: int = 256) -> None:
        super().__init__()
        self.transition = nn.Conv2d(in_channels, channels, 3, padding=1, bias=True)
        self.rcu_in = ResidualConvBlock(channels)
        self.rcu_out = ResidualConvBlock(channels)

    def forward(
        self, features: torch.Tensor, coarser: torch.Tensor | None, out_size: tuple[int, int]
    ) -> torch.Tensor:
        x = self.rcu_in(self.transition(features))
        if coarser is not None:
            x = x + coarser
        x = self.rcu_out(x)
        # "x2 upsampling", written as resizing to the next finer level's size so that inputs whose
        # sides are not multiples of 32 still line up.
        return F.interpolate(x, size=out_size, mode="bilinear", align_corners=False)


class AdaptiveOutput(nn.Module):
    """3x3 conv -> 128, ReLU, 3x3 conv -> out_channels (1 = depth), bilinear upsampling to the input size."""

    def __init__(self, in_channels: int = 256, mid_channels: int = 128, out_channels: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, mid_channels, 3, padding=1, bias=True)
        self.conv2 = nn.Conv2d(mid_channels, out_channels, 3, padding=1, bias=True)

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        x = self.conv2(F.relu(self.conv1(x)))
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def unpool2x(x: torch.Tensor) -> torch.Tensor:
    """Laina et al.'s 2x2 unpooling: each value goes to the top-left of a 2x2 block, zeros elsewhere.
    (B,C,h,w) -> (B,C,2h,2w)."""
    b, c, h, w = x.shape
    out = x.new_zeros(b, c, 2 * h, 2 * w)
    out[:, :, ::2, ::2] = x
    return out


class UpProjection(nn.Module):
    """Laina et al.'s up-projection block (their Fig. 2 c), (B,C_in,h,w) -> (B,C_out,2h,2w).

    unpool 2x -> main branch: 5x5 conv, BN, ReLU, 3x3 conv, BN; projection branch: 5x5 conv, BN;
    sum, ReLU. (Their "fast up-projection" computes the same thing with four small convolutions on
    the un-pooled input; correctness first, so this is the plain form.)
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 5, padding=2, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.project = nn.Conv2d(in_channels, out_channels, 5, padding=2, bias=False)
        self.bn_project = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = unpool2x(x)
        main = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(main + self.bn_project(self.project(x)))


class UpProjDecoder(nn.Module):
    """Laina et al.'s decoder on a ResNet's last stage (1/32): 1x1 conv + BN to ``channels`` (1024
    in the paper), four up-projections halving the width (-> 512, 256, 128, 64 at 1/2 of the input).
    The head (``RelativeDepthNet.output``) is their final 3x3 conv plus bilinear upsampling."""

    def __init__(self, in_channels: int = 2048, channels: int = 1024) -> None:
        super().__init__()
        if channels < 32:
            # four halvings: 32 leaves 2 channels before the head; 1 channel after a ReLU dies easily
            raise ValueError("upproj decoder needs channels >= 32 (it halves them four times)")
        self.reduce = nn.Sequential(nn.Conv2d(in_channels, channels, 1, bias=False), nn.BatchNorm2d(channels))
        widths = [channels // 2**k for k in range(5)]
        self.blocks = nn.Sequential(*(UpProjection(a, b) for a, b in zip(widths[:-1], widths[1:])))
        self.out_channels = widths[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.reduce(x))


class UpProjOutput(nn.Module):
    """Laina et al.'s last layer: 3x3 conv -> out_channels, then bilinear upsampling to the input size."""

    def __init__(self, in_channels: int, out_channels: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=True)

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        return F.interpolate(self.conv(x), size=size, mode="bilinear", align_corners=False)


def _torchvision_resnet(depth: str, *, dilated: bool) -> nn.Module:
    import torchvision

    builder = getattr(torchvision.models, depth)
    # weights=None always: torchvision must never download; ImageNet weights are loaded from a local
    # file by load_backbone_weights.
    kwargs: dict = {"weights": None}
    if dilated:
        if depth in ("resnet18", "resnet34"):
            raise ValueError(f"{depth} (BasicBlock) does not support dilation in torchvision")
        kwargs["replace_stride_with_dilation"] = [False, True, True]
    return builder(**kwargs)


def find_cached_imagenet_weights(depth: str) -> Path | None:
    """torchvision's ImageNet checkpoint for ``depth`` in the local torch hub cache, if present.

    Looks in ``$TORCH_HOME/hub/checkpoints`` (``torch.hub.get_dir()``) for the file name torchvision
    would download (IMAGENET1K_V1, then V2); never downloads.
    """
    import torchvision

    weights_enum = torchvision.models.get_model_weights(depth)
    cache = Path(torch.hub.get_dir()) / "checkpoints"
    for member in ("IMAGENET1K_V1", "IMAGENET1K_V2"):
        weights = getattr(weights_enum, member, None)
        if weights is None:
            continue
        candidate = cache / os.path.basename(weights.url)
        if candidate.is_file():
            return candidate
    return None


def load_backbone_weights(backbone: nn.Module, depth: str, weights_path: str | os.PathLike | None) -> bool:
    """Load ImageNet weights into ``backbone`` from ``weights_path`` or torchvision's local cache.

    Returns True when weights were loaded. Logs a clear warning and returns False when none are
    found (the network then trains from scratch). ``fc.*`` entries are ignored (the head is unused).
    """
    path = Path(weights_path) if weights_path else find_cached_imagenet_weights(depth)
    if path is None or not path.is_file():
        where = str(weights_path) if weights_path else f"{Path(torch.hub.get_dir()) / 'checkpoints'}"
        log.warning(
            "No ImageNet weights for %s found (looked in %s); the backbone TRAINS FROM SCRATCH. "
            "Pass weights_path=... or put torchvision's checkpoint in $TORCH_HOME/hub/checkpoints.",
            depth,
            where,
        )
        return False
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    state = {k.removeprefix("module."): v for k, v in state.items() if not k.removeprefix("module.").startswith("fc.")}
    missing, unexpected = backbone.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("fc.")]
    if missing or unexpected:
        raise ValueError(f"{path} does not match {depth}: missing {missing[:5]}, unexpected {unexpected[:5]}")
    log.info("Loaded ImageNet weights for %s from %s", depth, path)
    return True


class RelativeDepthNet(nn.Module):
    """ResNet encoder + progressive multi-scale fusion decoder (or an ablation of it).

    Args:
        backbone: ``"resnet18" | "resnet34" | "resnet50" | "resnet101"``.
        fusion: True for the paper's fusion decoder; False for the direct-upsampling baseline.
        decoder: ``"fusion"`` (default; what ``fusion`` says) or ``"upproj"`` (Laina et al.'s
            up-projection decoder on the last stage, :class:`UpProjDecoder`).
        dilated: dilate the last two ResNet stages (output stride 8); Bottleneck ResNets only.
        channels: width of the fusion decoder (256 in the paper); for ``upproj`` the width after
            the 1x1 reduction (1024 in Laina et al.; default when None).
        out_channels: channels of the head: 1 (relative or metric depth), or a number of classes.
        pretrained: load ImageNet weights (see :func:`load_backbone_weights`).
        weights_path: a local ``.pth`` state dict for the backbone; default: torchvision's cache.

    Attributes:
        backbone_pretrained: whether ImageNet weights were actually loaded (training uses it to
            give the backbone a 10x smaller learning rate).
    """

    def __init__(
        self,
        *,
        backbone: str = "resnet50",
        fusion: bool = True,
        dilated: bool = False,
        decoder: str = "fusion",
        channels: int | None = None,
        out_channels: int = 1,
        pretrained: bool = False,
        weights_path: str | os.PathLike | None = None,
    ) -> None:
        super().__init__()
        if decoder not in ("fusion", "upproj"):
            raise ValueError(f"decoder must be 'fusion' or 'upproj', got {decoder!r}")
        if out_channels < 1:
            raise ValueError("out_channels must be >= 1")
        if backbone not in _STAGE_CHANNELS:
            raise ValueError(f"unknown backbone {backbone!r}; known: {sorted(_STAGE_CHANNELS)}")
        resnet = _torchvision_resnet(backbone, dilated=dilated)
        self.backbone_pretrained = bool(pretrained or weights_path) and load_backbone_weights(
            resnet, backbone, weights_path
        )
        if not (pretrained or weights_path):
            log.info("%s backbone initialised randomly (pretrained=False): training from scratch", backbone)
        # Keep the stem and the four stages; drop avgpool and fc.
        self.stem = nn.Sequential(resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool)
        self.layer1, self.layer2, self.layer3, self.layer4 = resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4
        self.fusion = fusion and decoder == "fusion"
        self.decoder = decoder
        self.out_channels = out_channels
        stage_channels = _STAGE_CHANNELS[backbone]
        self.upproj: UpProjDecoder | None = None
        self.fuse = None
        if decoder == "upproj":
            self.upproj = UpProjDecoder(stage_channels[-1], channels or 1024)
            self.output: nn.Module = UpProjOutput(self.upproj.out_channels, out_channels)
        elif fusion:
            channels = channels or 256
            # fuse[0] works on layer4 (coarsest), fuse[3] on layer1 (finest).
            self.fuse = nn.ModuleList(FeatureFusionModule(c, channels) for c in reversed(stage_channels))
            self.output = AdaptiveOutput(channels, 128, out_channels)
        else:
            self.output = AdaptiveOutput(stage_channels[-1], 128, out_channels)

    def backbone_parameters(self) -> list[nn.Parameter]:
        return [p for m in (self.stem, self.layer1, self.layer2, self.layer3, self.layer4) for p in m.parameters()]

    def head_parameters(self) -> list[nn.Parameter]:
        backbone_ids = {id(p) for p in self.backbone_parameters()}
        return [p for p in self.parameters() if id(p) not in backbone_ids]

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """(B,3,H,W) normalised image -> (B,out_channels,H,W): relative depth (larger = farther),
        metric depth or class logits, as the head was built."""
        size = (image.shape[-2], image.shape[-1])
        x = self.stem(image)
        f1 = self.layer1(x)
        f2 = self.layer2(f1)
        f3 = self.layer3(f2)
        f4 = self.layer4(f3)
        if self.upproj is not None:
            return self.output(self.upproj(f4), size)
        if self.fuse is None:
            return self.output(f4, size)
        features = (f4, f3, f2, f1)
        # Target size of each module's upsampling: the next finer level, and 2x f1 for the last.
        out_sizes = [tuple(f.shape[-2:]) for f in (f3, f2, f1)] + [(2 * f1.shape[-2], 2 * f1.shape[-1])]
        fused = None
        for module, feat, out_size in zip(self.fuse, features, out_sizes):
            fused = module(feat, fused, out_size)
        return self.output(fused, size)


def _builder(
    backbone: str, *, fusion: bool = True, dilated: bool = False, decoder: str = "fusion"
) -> Callable[..., RelativeDepthNet]:
    def build(
        *,
        pretrained: bool = False,
        weights_path: str | os.PathLike | None = None,
        channels: int | None = None,
        out_channels: int = 1,
    ) -> RelativeDepthNet:
        return RelativeDepthNet(
            backbone=backbone,
            fusion=fusion,
            dilated=dilated,
            decoder=decoder,
            channels=channels,
            out_channels=out_channels,
            pretrained=pretrained,
            weights_path=weights_path,
        )

    build.__doc__ = f"{backbone}, fusion={fusion}, dilated={dilated}, decoder={decoder} (see RelativeDepthNet)."
    return build


# The built-in architectures. Variants are arguments of one class, listed here by name.
ARCHITECTURES: Mapping[str, Callable[..., RelativeDepthNet]] = MappingProxyType(
    {
        "resnet50_fusion": _builder("resnet50"),  # the paper's network
        "resnet18_fusion": _builder("resnet18"),
        "resnet34_fusion": _builder("resnet34"),
        "resnet101_fusion": _builder("resnet101"),
        # Ablations of Table 2: direct upsampling of the last stage; dilated ResNet (stride 8).
        "resnet50_direct_upsample": _builder("resnet50", fusion=False),
        "resnet50_dilated": _builder("resnet50", fusion=False, dilated=True),
        # Table 2's UpProj: Laina et al.'s up-projection decoder on ResNet-50.
        "resnet50_upproj": _builder("resnet50", fusion=False, decoder="upproj"),
    }
)
