"""Models: the RFS-style ResNet-12 and the key maps that load other implementations' state dicts."""
from divcoeff.models.resnet12 import DEFAULT_WIDTHS, BatchNorm2d, ResNet12, bn_mode

__all__ = ["DEFAULT_WIDTHS", "BatchNorm2d", "ResNet12", "bn_mode"]
