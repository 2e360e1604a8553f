"""Architectures. Each returns `(logits, features)` and keeps its linear head in `self.head`.

Every network ends in global average pooling and ONE linear layer, so Grad-CAM is exact from the
last convolutional activations and the head weights (models/MANIFEST.md, [gradcam]).
"""

from __future__ import annotations

import torch
from torch import nn


class GapHead(nn.Module):
    """Global average pooling over all spatial axes, then one linear layer."""

    def __init__(self, channels: int, classes: int):
        super().__init__()
        self.linear = nn.Linear(channels, classes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(features.flatten(2).mean(dim=2))


class Squeeze(nn.Module):
    """Squeeze-excitation channel attention, for 2D or 3D activations."""

    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        hidden = max(channels // reduction, 4)
        self.fc = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(), nn.Linear(hidden, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = torch.sigmoid(self.fc(x.flatten(2).mean(dim=2)))
        return x * gate.view(*gate.shape, *([1] * (x.dim() - 2)))


class SpatialAttention(nn.Module):
    """CBAM-style spatial attention: a gate from channel mean and max, by one convolution."""

    def __init__(self, conv):
        super().__init__()
        self.conv = conv(2, 1, kernel_size=5, padding=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.conv(pooled))


def _block(conv, norm, c_in: int, c_out: int, stride) -> nn.Sequential:
    """Two 3x3 convolutions with batch norm and ReLU, the first one strided (the 3D net)."""
    return nn.Sequential(
        conv(c_in, c_out, 3, stride=stride, padding=1, bias=False), norm(c_out), nn.ReLU(),
        conv(c_out, c_out, 3, padding=1, bias=False), norm(c_out), nn.ReLU(),
    )


def _centred_block(c_in: int, c_out: int, downsample: bool) -> nn.Sequential:
    """A 2D stage: an optional centred 2x downsampling, then two 3x3 convolutions.

    The downsampling is a 4x4 convolution with stride 2 and padding 1: output cell i sees inputs
    2i-1 .. 2i+2, centred on 2i+0.5, which is where bilinear upsampling (align_corners=False)
    puts that cell. A 3x3 stride-2 convolution with padding 1 is centred on 2i instead, half an
    input pixel up and left, and over two stages the feature grid ends 1.5 input pixels off.
    """
    first = (nn.Conv2d(c_in, c_out, 4, stride=2, padding=1, bias=False) if downsample
             else nn.Conv2d(c_in, c_out, 3, padding=1, bias=False))
    return nn.Sequential(
        first, nn.BatchNorm2d(c_out), nn.ReLU(),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(),
    )


class CompactCNN(nn.Module):
    """Small 2D CNN whose Grad-CAM lands on the finding: 128x128 in, 32x32 features.

    Two centred stride-2 stages, then two more at the feature resolution, then channel
    (squeeze-excitation) attention, which rescales whole channels and so moves nothing. The
    32x32 grid matters: bilinear upsampling peaks on a cell centre, and on a 256-pixel source a
    16x16 grid puts those centres 16 pixels apart, farther than a small lesion is wide. There is
    no spatial attention: its gate, a convolution over the grid, spreads evidence to
    neighbouring cells, and the class map is read from the gated features.
    """

    def __init__(self, classes: int, width: int = 8, channels: int = 1):
        super().__init__()
        widths = [width, width * 2, width * 3, width * 4]
        stages, c_in = [], channels
        for i, c_out in enumerate(widths):
            stages.append(_centred_block(c_in, c_out, downsample=i < 2))
            c_in = c_out
        self.body = nn.Sequential(*stages)
        self.attention = Squeeze(c_in)
        self.head = GapHead(c_in, classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.attention(self.body(x))
        return self.head(features), features


class CompactCNN3d(nn.Module):
    """Small 3D CNN with squeeze-excitation and spatial attention on its last block.

    The first stage keeps depth (stride 1,2,2), so 16x64x64 in gives 2x4x4 features.
    """

    def __init__(self, classes: int, width: int = 8, channels: int = 1):
        super().__init__()
        conv, norm = nn.Conv3d, nn.BatchNorm3d
        widths = [width, width * 2, width * 4, width * 8]
        stages, c_in = [], channels
        for i, c_out in enumerate(widths):
            stages.append(_block(conv, norm, c_in, c_out, (1, 2, 2) if i == 0 else 2))
            c_in = c_out
        self.body = nn.Sequential(*stages)
        self.attention = nn.Sequential(Squeeze(c_in), SpatialAttention(conv))
        self.head = GapHead(c_in, classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.attention(self.body(x))
        return self.head(features), features


class TorchvisionNet(nn.Module):
    """ResNet50 or DenseNet121 from torchvision, random init, with a GAP + linear head."""

    def __init__(self, arch: str, classes: int, channels: int = 1):
        super().__init__()
        import torchvision

        if arch == "resnet50":
            net = torchvision.models.resnet50(weights=None)
            if channels != 3:
                net.conv1 = nn.Conv2d(channels, 64, 7, stride=2, padding=3, bias=False)
            self.body = nn.Sequential(*list(net.children())[:-2])
            k = net.fc.in_features
        elif arch == "densenet121":
            net = torchvision.models.densenet121(weights=None)
            if channels != 3:
                net.features.conv0 = nn.Conv2d(channels, 64, 7, stride=2, padding=3, bias=False)
            # torchvision applies a ReLU after the dense blocks' final norm; it belongs to features.
            self.body = nn.Sequential(net.features, nn.ReLU())
            k = net.classifier.in_features
        else:
            raise ValueError(f"unknown torchvision architecture {arch!r}")
        self.head = GapHead(k, classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.body(x)
        return self.head(features), features


ARCHITECTURES = ("compact", "compact3d", "resnet50", "densenet121")


def build(arch: str, classes: int, channels: int = 1, width: int = 8) -> nn.Module:
    """An architecture by name (`ARCHITECTURES`)."""
    if arch == "compact":
        return CompactCNN(classes, width, channels)
    if arch == "compact3d":
        return CompactCNN3d(classes, width, channels)
    return TorchvisionNet(arch, classes, channels)


def head_weights(model: nn.Module) -> torch.Tensor:
    """The (classes, K) weights of the linear head."""
    return model.head.linear.weight
