"""Inception-v3 in plain PyTorch, for Fréchet distances with user-supplied Inception weights.

The module and parameter names follow torchvision's ``Inception3``, so a torchvision state dict
(``inception_v3_google-*.pth``, 1000 classes, with or without ``AuxLogits``) loads unchanged. With
``fid=True`` the blocks take the changes of the TensorFlow FID network as ported by pytorch-fid
(``pt_inception-2015-12-05-*.pth``, 1008 classes): average pools that exclude the padding, and a
max pool in the branch pool of the last block. Only the architecture lives here; weights always
come from a file the user gives (nothing is downloaded).

Input: (B, 3, 299, 299) scaled to [-1, 1] (the scaling both weight sets were trained with).
:meth:`InceptionV3.features` returns the 2048-d global-average-pooled activations of the last
block ("pool3", the FID features).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["InceptionV3", "inception_from_state_dict"]

#: classes of the two supported weight sets
TORCHVISION_CLASSES = 1000
FID_CLASSES = 1008


class BasicConv2d(nn.Module):
    """Conv (no bias) -> BatchNorm (eps 1e-3) -> ReLU."""

    def __init__(self, c_in: int, c_out: int, **conv: object):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, bias=False, **conv)
        self.bn = nn.BatchNorm2d(c_out, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


def _avg3(x: torch.Tensor, fid: bool) -> torch.Tensor:
    """3 x 3 stride-1 average pool; the FID network leaves the zero padding out of the mean."""
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=not fid)


class InceptionA(nn.Module):
    """35 x 35 block: 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | pool-1x1."""

    def __init__(self, c_in: int, pool_features: int, fid: bool = False):
        super().__init__()
        self.fid = fid
        self.branch1x1 = BasicConv2d(c_in, 64, kernel_size=1)
        self.branch5x5_1 = BasicConv2d(c_in, 48, kernel_size=1)
        self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(c_in, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
        self.branch_pool = BasicConv2d(c_in, pool_features, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat(
            [
                self.branch1x1(x),
                self.branch5x5_2(self.branch5x5_1(x)),
                b3,
                self.branch_pool(_avg3(x, self.fid)),
            ],
            1,
        )


class InceptionB(nn.Module):
    """35 -> 17 grid reduction: 3x3/2 | 1x1-3x3-3x3/2 | maxpool/2."""

    def __init__(self, c_in: int):
        super().__init__()
        self.branch3x3 = BasicConv2d(c_in, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(c_in, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), b3, F.max_pool2d(x, 3, stride=2)], 1)


def _conv_1x7(c_in: int, c_out: int) -> BasicConv2d:
    return BasicConv2d(c_in, c_out, kernel_size=(1, 7), padding=(0, 3))


def _conv_7x1(c_in: int, c_out: int) -> BasicConv2d:
    return BasicConv2d(c_in, c_out, kernel_size=(7, 1), padding=(3, 0))


class InceptionC(nn.Module):
    """17 x 17 block with factorised 7 x 7 convolutions."""

    def __init__(self, c_in: int, channels_7x7: int, fid: bool = False):
        super().__init__()
        c7 = channels_7x7
        self.fid = fid
        self.branch1x1 = BasicConv2d(c_in, 192, kernel_size=1)
        self.branch7x7_1 = BasicConv2d(c_in, c7, kernel_size=1)
        self.branch7x7_2 = _conv_1x7(c7, c7)
        self.branch7x7_3 = _conv_7x1(c7, 192)
        self.branch7x7dbl_1 = BasicConv2d(c_in, c7, kernel_size=1)
        self.branch7x7dbl_2 = _conv_7x1(c7, c7)
        self.branch7x7dbl_3 = _conv_1x7(c7, c7)
        self.branch7x7dbl_4 = _conv_7x1(c7, c7)
        self.branch7x7dbl_5 = _conv_1x7(c7, 192)
        self.branch_pool = BasicConv2d(c_in, 192, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = x
        for layer in (
            self.branch7x7dbl_1,
            self.branch7x7dbl_2,
            self.branch7x7dbl_3,
            self.branch7x7dbl_4,
            self.branch7x7dbl_5,
        ):
            d = layer(d)
        return torch.cat([self.branch1x1(x), b7, d, self.branch_pool(_avg3(x, self.fid))], 1)


class InceptionD(nn.Module):
    """17 -> 8 grid reduction."""

    def __init__(self, c_in: int):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(c_in, 192, kernel_size=1)
        self.branch3x3_2 = BasicConv2d(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(c_in, 192, kernel_size=1)
        self.branch7x7x3_2 = _conv_1x7(192, 192)
        self.branch7x7x3_3 = _conv_7x1(192, 192)
        self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([b3, b7, F.max_pool2d(x, 3, stride=2)], 1)


class InceptionE(nn.Module):
    """8 x 8 block with expanded 1x3 / 3x1 outputs. ``pool``: "avg" (torchvision), "avg_fid"
    (padding excluded) or "max" (the FID network's last block)."""

    def __init__(self, c_in: int, pool: str = "avg"):
        super().__init__()
        if pool not in ("avg", "avg_fid", "max"):
            raise ValueError(f"pool must be 'avg', 'avg_fid' or 'max', got {pool!r}")
        self.pool = pool
        self.branch1x1 = BasicConv2d(c_in, 320, kernel_size=1)
        self.branch3x3_1 = BasicConv2d(c_in, 384, kernel_size=1)
        self.branch3x3_2a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(c_in, 448, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(c_in, 192, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        d = torch.cat([self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d)], 1)
        if self.pool == "max":
            p = F.max_pool2d(x, 3, stride=1, padding=1)
        else:
            p = _avg3(x, self.pool == "avg_fid")
        return torch.cat([self.branch1x1(x), b3, d, self.branch_pool(p)], 1)


class InceptionAux(nn.Module):
    """Auxiliary classifier on the 17 x 17 grid (present in torchvision's weights; unused for
    features)."""

    def __init__(self, c_in: int, num_classes: int):
        super().__init__()
        self.conv0 = BasicConv2d(c_in, 128, kernel_size=1)
        self.conv1 = BasicConv2d(128, 768, kernel_size=5)
        self.fc = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(self.conv0(F.avg_pool2d(x, 5, stride=3)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class InceptionV3(nn.Module):
    """Inception-v3 with torchvision's parameter names.

    Args:
        num_classes: classifier outputs (1000 torchvision, 1008 the FID network).
        aux_logits: build the auxiliary classifier (torchvision's weights include it).
        fid: the TensorFlow FID variant of the blocks (see the module docstring).

    ``channels_last`` (default True): on the CPU the images enter in channels-last memory format,
    where oneDNN's convolutions are faster (``benchmarks/bench_channels_last.py``); the same
    features up to float rounding. Other devices keep the default format (not measured there).
    """

    channels_last: bool = True

    def __init__(self, num_classes: int = TORCHVISION_CLASSES, aux_logits: bool = False,
                 fid: bool = False):  # fmt: skip
        super().__init__()
        self.fid = fid
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.Mixed_5b = InceptionA(192, 32, fid)
        self.Mixed_5c = InceptionA(256, 64, fid)
        self.Mixed_5d = InceptionA(288, 64, fid)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, 128, fid)
        self.Mixed_6c = InceptionC(768, 160, fid)
        self.Mixed_6d = InceptionC(768, 160, fid)
        self.Mixed_6e = InceptionC(768, 192, fid)
        self.AuxLogits = InceptionAux(768, num_classes) if aux_logits else None
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, "avg_fid" if fid else "avg")
        self.Mixed_7c = InceptionE(2048, "max" if fid else "avg")
        self.fc = nn.Linear(2048, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [-1, 1] (H, W >= 75; 299 is the trained size) -> (B, 2048) pool3."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected (B, 3, H, W) images, got {tuple(x.shape)}")
        if min(x.shape[-2:]) < 75:
            raise ValueError(f"Inception-v3 needs images of at least 75 x 75, got {x.shape[-2:]}")
        if self.channels_last and x.device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, 3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, 3, stride=2)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b,
                      self.Mixed_6c, self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b,
                      self.Mixed_7c):  # fmt: skip
            x = block(x)
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (B, num_classes) (no dropout: evaluation only)."""
        return self.fc(self.features(x))


def inception_from_state_dict(state: Mapping[str, torch.Tensor]) -> tuple[InceptionV3, str]:
    """Build the Inception-v3 a state dict belongs to and load it (strictly).

    The variant follows from the classifier size: 1008 classes is the FID network
    (pytorch-fid's port of the TensorFlow graph), 1000 torchvision's. A ``module.`` prefix (a
    DataParallel save) is removed.

    Returns:
        (model in eval mode, variant "fid" or "torchvision").

    Raises:
        ValueError: not an Inception-v3 state dict, or one with another classifier size.
    """
    state = {k.removeprefix("module."): v for k, v in state.items()}
    need = ("Conv2d_1a_3x3.conv.weight", "Mixed_7c.branch_pool.conv.weight", "fc.weight")
    missing = [k for k in need if k not in state]
    if missing:
        raise ValueError(f"not an Inception-v3 state dict (missing {missing})")
    n_classes = int(state["fc.weight"].shape[0])
    if n_classes not in (TORCHVISION_CLASSES, FID_CLASSES):
        raise ValueError(
            f"Inception-v3 with {n_classes} classes: expected {FID_CLASSES} (the FID network) "
            f"or {TORCHVISION_CLASSES} (torchvision)"
        )
    fid = n_classes == FID_CLASSES
    aux = any(k.startswith("AuxLogits.") for k in state)
    model = InceptionV3(n_classes, aux_logits=aux, fid=fid)
    model.load_state_dict(state, strict=True)
    return model.eval(), "fid" if fid else "torchvision"
