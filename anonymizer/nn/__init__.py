"""The shared torch model stack: backbones, necks, heads and the registered model builders."""

from __future__ import annotations

from ._registry import build_model, get_model_builder, list_models, register_model
from .attributes import FaceAttributes, face_attributes
from .backbones import MobileNetV2
from .deepfake import DeepfakeNet, deepfake
from .detectors import FaceDetector, centerface, plate_detector, prepare_batch
from .facemesh import FaceMesh, face_mesh
from .heads import CenterHead
from .identity import IdentityNet, identity_net
from .masks import PersonBackbone, person_maskrcnn
from .necks import TopDownFPN
from .plate_refiner import PlateRefiner, plate_refiner
from .quantized import QuantizedDetector, centerface_int8
from .retinaface import RetinaHead, retinaface, retinaface_loss
from .selfie import SelfieSegmentation, selfie_segmentation
from .skin_tone import SkinTone, skin_tone
from .sr import Discriminator, SRResNet, sr_discriminator, srgan, srresnet
from .surrogate import PatchDiscriminator, SurrogateGenerator, surrogate, surrogate_discriminator

__all__ = [
    "CenterHead",
    "DeepfakeNet",
    "Discriminator",
    "FaceAttributes",
    "FaceDetector",
    "FaceMesh",
    "IdentityNet",
    "MobileNetV2",
    "PatchDiscriminator",
    "PersonBackbone",
    "PlateRefiner",
    "QuantizedDetector",
    "RetinaHead",
    "SRResNet",
    "SelfieSegmentation",
    "SkinTone",
    "SurrogateGenerator",
    "TopDownFPN",
    "build_model",
    "centerface",
    "centerface_int8",
    "deepfake",
    "face_attributes",
    "face_mesh",
    "get_model_builder",
    "identity_net",
    "list_models",
    "person_maskrcnn",
    "plate_detector",
    "plate_refiner",
    "prepare_batch",
    "register_model",
    "retinaface",
    "retinaface_loss",
    "selfie_segmentation",
    "skin_tone",
    "sr_discriminator",
    "srgan",
    "srresnet",
    "surrogate",
    "surrogate_discriminator",
]
