"""The CNNs behind the image encoders, as PyTorch modules that give one pooled vector per image.

EfficientNet-Lite0 comes from `efficientnet-lite-pytorch`. MobileNetV2 is written out here in
torchvision's layout (module names `features.N.conv.M`, `classifier.1`) so that the weights
torchvision published load with `strict=True` without installing torchvision.

Imported only when a model is built (PyTorch is heavy); ONNX inference does not need it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

# torchvision's MobileNetV2 settings: expansion t, output channels c, repeats n, first stride s.
_MOBILENET_V2_BLOCKS = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def _conv_bn_relu6(inp: int, out: int, kernel: int = 3, stride: int = 1, groups: int = 1):
    """torchvision's Conv2dNormActivation: conv (no bias), BatchNorm, ReLU6."""
    return nn.Sequential(
        nn.Conv2d(inp, out, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out),
        nn.ReLU6(inplace=True),
    )


class _InvertedResidual(nn.Module):
    def __init__(self, inp: int, out: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = inp * expand
        self.use_res_connect = stride == 1 and inp == out
        layers: list[nn.Module] = [] if expand == 1 else [_conv_bn_relu6(inp, hidden, kernel=1)]
        layers += [
            _conv_bn_relu6(hidden, hidden, stride=stride, groups=hidden),  # depthwise
            nn.Conv2d(hidden, out, 1, 1, 0, bias=False),  # linear bottleneck
            nn.BatchNorm2d(out),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNetV2 (width 1.0) with torchvision's parameter names; 1280-d features."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        channels = 32
        layers: list[nn.Module] = [_conv_bn_relu6(3, channels, stride=2)]
        for expand, out, repeats, stride in _MOBILENET_V2_BLOCKS:
            for i in range(repeats):
                layers.append(_InvertedResidual(channels, out, stride if i == 0 else 1, expand))
                channels = out
        layers.append(_conv_bn_relu6(channels, 1280, kernel=1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, num_classes))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The global-average-pooled last feature map: what the classifier reads."""
        return self.features(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))


class Pooled(nn.Module):
    """A network's pooled features: pixels (n, 3, H, W) in, (n, 1280) out."""

    network: Any  # MobileNetV2 or the package's EfficientNet (extract_features)

    def __init__(self, network: nn.Module, architecture: str) -> None:
        super().__init__()
        self.network = network
        self.architecture = architecture

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        if self.architecture == "mobilenet-v2":
            return self.network.embed(pixels)
        return self.network.extract_features(pixels).mean(dim=(2, 3))


def feature_network(architecture: str, weights: Path) -> Pooled:
    """The network with its bundled ImageNet weights (strict: every tensor must match), in
    eval mode."""
    state = torch.load(str(weights), map_location="cpu", weights_only=True)
    network: nn.Module
    if architecture == "mobilenet-v2":
        network = MobileNetV2()
    elif architecture == "efficientnet-lite0":
        from efficientnet_lite_pytorch import EfficientNet

        # from_name, not from_pretrained: the latter prints and loads non-strictly. Do not call
        # set_swish(): the Lite models use ReLU6, and set_swish would replace it with swish
        # (the ImageNet top-1 of a cat photo went from "tiger cat" 0.38 to nonsense).
        network = EfficientNet.from_name(architecture)
    else:
        raise ValueError(f"unknown image architecture {architecture!r}")
    network.load_state_dict(state, strict=True)
    return Pooled(network, architecture).eval()
