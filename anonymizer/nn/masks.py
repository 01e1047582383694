"""Person instance segmentation: torchvision's Mask R-CNN on our MobileNetV2 + a feature pyramid.

The backbone is the CenterFace form of :class:`~anonymizer.nn.backbones.MobileNetV2` (batch-norm folded
into biased convolutions, RGB input in 0..255), so that CenterFace's weights, trained on crowd photos, can
start it. torchvision's transform receives 0..1 images and scales them to 0..255 (mean 0, std 1/255).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import Tensor, nn

from ..errors import InputError
from ..weights import get_weights, load_state_dict
from ._registry import register_model, with_weights
from .backbones import MobileNetV2, init_weights

#: Feature pyramid width and the RoI heads' sizes: small, for a 2-core CPU.
FPN_CHANNELS = 96
BOX_REPRESENTATION = 256
MASK_LAYERS = (128, 128, 128, 128)
#: Shorter side of the image the network sees (train: one of these at random; test: the middle one).
TRAIN_SIZES = (320, 352, 384, 416, 448)
TEST_SIZE = 384
MAX_SIZE = 704


def group_norm(channels: int) -> nn.Module:
    """GroupNorm (8 groups) for the pyramid and the mask head: their weights start from scratch with two
    photos per batch, where batch-norm statistics would be noise."""
    return nn.GroupNorm(8, channels)


class PersonBackbone(nn.Module):
    """MobileNetV2 (CenterFace form) -> torchvision FPN on strides 4-32, plus a max-pooled stride-64 level.

    forward(x: Tensor[B, 3, H, W], RGB in 0..255) -> OrderedDict "0".."3", "pool" of FPN_CHANNELS maps.
    """

    def __init__(self, channels: int = FPN_CHANNELS) -> None:
        super().__init__()
        from torchvision.ops.feature_pyramid_network import FeaturePyramidNetwork, LastLevelMaxPool

        self.body = MobileNetV2(norm=False)
        init_weights(self.body)
        self.fpn = FeaturePyramidNetwork(
            list(MobileNetV2.out_channels), channels, extra_blocks=LastLevelMaxPool(), norm_layer=group_norm
        )
        self.out_channels = channels

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:
        feats = self.body(x)
        return self.fpn(OrderedDict((str(i), f) for i, f in enumerate(feats)))


def build_maskrcnn(backbone: PersonBackbone | None = None) -> nn.Module:
    """The person Mask R-CNN (2 classes: background, person), randomly initialised heads."""
    from torchvision.models.detection import MaskRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
    from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
    from torchvision.ops import MultiScaleRoIAlign

    backbone = backbone or PersonBackbone()
    c = backbone.out_channels
    names = ["0", "1", "2", "3"]
    # people are tall: anchors of height/width 1, 2 and 3
    anchors = AnchorGenerator(sizes=((32,), (64,), (128,), (256,), (512,)), aspect_ratios=((1.0, 2.0, 3.0),) * 5)
    return MaskRCNN(
        backbone,
        num_classes=None,
        min_size=TRAIN_SIZES,
        max_size=MAX_SIZE,
        image_mean=[0.0, 0.0, 0.0],
        image_std=[1 / 255.0] * 3,
        rpn_anchor_generator=anchors,
        rpn_pre_nms_top_n_train=1000,
        rpn_post_nms_top_n_train=500,
        rpn_pre_nms_top_n_test=500,
        rpn_post_nms_top_n_test=200,
        box_roi_pool=MultiScaleRoIAlign(names, 7, 2),
        box_head=TwoMLPHead(c * 7 * 7, BOX_REPRESENTATION),
        box_predictor=FastRCNNPredictor(BOX_REPRESENTATION, 2),
        box_batch_size_per_image=128,
        box_detections_per_img=50,
        mask_roi_pool=MultiScaleRoIAlign(names, 14, 2),
        mask_head=MaskRCNNHeads(c, MASK_LAYERS, 1, norm_layer=group_norm),
        mask_predictor=MaskRCNNPredictor(MASK_LAYERS[-1], MASK_LAYERS[-1], 2),
    )


def centerface_backbone_state() -> dict[str, Tensor]:
    """CenterFace's backbone tensors (``body.*`` keys of :class:`PersonBackbone`)."""
    state = load_state_dict(get_weights("centerface"))
    return {k.replace("backbone.", "body.", 1): v for k, v in state.items() if k.startswith("backbone.")}


@register_model("person_maskrcnn")
def person_maskrcnn(*, weights: str | None = "default", backbone_init: str = "random") -> nn.Module:
    """Person instance segmentation (models/person_maskrcnn.md).

    ``weights="default"``: the trained weights, in eval mode (test size :data:`TEST_SIZE`).
    ``weights=None``: untrained; ``backbone_init="centerface"`` starts the backbone from CenterFace's
    weights, ``"random"`` from a Kaiming-normal start.
    """
    if backbone_init not in ("random", "centerface"):
        raise InputError(f"backbone_init must be 'random' or 'centerface', got {backbone_init!r}")
    model = build_maskrcnn()
    if weights is None:
        if backbone_init == "centerface":
            backbone: nn.Module = model.backbone  # type: ignore[assignment]
            missing, unexpected = backbone.load_state_dict(centerface_backbone_state(), strict=False)
            assert not unexpected and all(k.startswith("fpn.") for k in missing), (missing, unexpected)
        return model
    set_test_size(model, TEST_SIZE)
    return with_weights(model, "person_maskrcnn", weights)  # stored in float16: copied into float32


def set_test_size(model: nn.Module, size: int) -> None:
    """Make the (eval-mode) transform resize the shorter side to ``size``."""
    model.transform.min_size = (size,)  # type: ignore[union-attr]


@torch.no_grad()
def half_state(model: nn.Module) -> dict[str, Tensor]:
    """Float tensors as float16 for the shipped file (loaded back into float32)."""
    return {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in model.state_dict().items()}
