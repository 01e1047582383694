"""MediaPipe's face mesh in our own module: the forward contract with random weights, TFLite's padding,
the crop geometry; with the shipped weights, real faces against our detector's landmarks; and, where
the tflite file and a LiteRT interpreter are present, the conversion and numerical equality with it."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from anonymizer.errors import InputError, WeightsError
from anonymizer.media import load_image
from anonymizer.media.files import sha256_file
from anonymizer.nn import FaceMesh, build_model, face_mesh, list_models
from anonymizer.nn.facemesh import (
    MESH_INPUT,
    MESH_LEFT_EYE,
    MESH_MOUTH_LEFT,
    MESH_MOUTH_RIGHT,
    MESH_NOSE_TIP,
    MESH_POINTS,
    MESH_RIGHT_EYE,
    Pointwise,
    fit_mesh,
    fit_meshes,
    mesh_crop_matrix,
    mesh_in_image,
    mesh_to_image,
    tf_same_pad,
)
from anonymizer.weights import get_weights


def _to_input(crop: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(crop).permute(2, 0, 1)[None].float() / 255


@pytest.fixture(scope="module")
def net() -> FaceMesh:
    return face_mesh()


@pytest.fixture(scope="module")
def astronaut(samples: Path):
    """(photo, its face as our detector finds it, the network's 192x192 crop, the crop matrix)."""
    from anonymizer.api import get_finder

    rgb = load_image(samples / "astronaut.png").rgb
    faces = get_finder(threshold=0.5).find(rgb)
    assert len(faces) == 1
    m = mesh_crop_matrix(faces[0].box, faces[0].landmarks)
    return rgb, faces[0], cv2.warpAffine(rgb, m, (MESH_INPUT, MESH_INPUT), flags=cv2.INTER_LINEAR), m


def test_registered_and_random_forward_contract() -> None:
    assert "face_mesh" in list_models()
    torch.manual_seed(0)
    model = build_model("face_mesh", weights=None)
    assert isinstance(model, FaceMesh) and not model.training
    for b in (0, 1, 2):
        with torch.inference_mode():
            out = model(torch.rand(b, 3, MESH_INPUT, MESH_INPUT))
        assert out.landmarks.shape == (b, MESH_POINTS, 3) and out.presence.shape == (b,)
        assert torch.isfinite(out.landmarks).all()
        assert ((out.presence >= 0) & (out.presence <= 1)).all()
        torch.testing.assert_close(out.presence, torch.sigmoid(out.presence_logit))
    with torch.inference_mode():
        last = model(torch.rand(2, 3, MESH_INPUT, MESH_INPUT).contiguous(memory_format=torch.channels_last))
    assert last.landmarks.shape == (2, MESH_POINTS, 3)


@pytest.mark.parametrize("shape", [(1, 3, 128, 128), (1, 1, 192, 192), (3, 192, 192)])
def test_bad_input_shapes(shape: tuple[int, ...]) -> None:
    with pytest.raises(InputError, match=r"Tensor\[N, 3, 192, 192\]"):
        face_mesh(weights=None)(torch.zeros(shape))


def test_tf_same_pad_is_asymmetric_for_stride_2() -> None:
    x = torch.arange(36.0).reshape(1, 1, 6, 6)
    padded = tf_same_pad(x, 3, 2)  # out 3: (3 - 1) * 2 + 3 - 6 = 1 pixel, bottom / right
    assert padded.shape == (1, 1, 7, 7)
    assert torch.equal(padded[..., :6, :6], x)
    assert padded[..., 6, :].abs().sum() == 0 and padded[..., :, 6].abs().sum() == 0
    assert torch.equal(tf_same_pad(x, 3, 1), F.pad(x, (1, 1, 1, 1)))
    assert tf_same_pad(torch.zeros(1, 1, 5, 5), 3, 2).shape == (1, 1, 7, 7)  # odd side: one each side
    # the first layer on the real input: 192 -> 96, padding only at the end
    assert tf_same_pad(torch.zeros(1, 3, 192, 192), 3, 2).shape == (1, 3, 193, 193)


def test_crop_matrix_levels_the_eyes_and_maps_back() -> None:
    box = (100.0, 50.0, 180.0, 150.0)
    lms = ((120.0, 90.0), (160.0, 110.0), (140.0, 110.0), (125.0, 130.0), (160.0, 140.0))
    m = mesh_crop_matrix(box, lms)
    eyes = np.asarray(lms[:2]) @ m[:, :2].T + m[:, 2]
    assert abs(eyes[0, 1] - eyes[1, 1]) < 1e-9 and eyes[0, 0] < eyes[1, 0]
    centre = m[:, :2] @ np.array([140.0, 100.0]) + m[:, 2]
    np.testing.assert_allclose(centre, [MESH_INPUT / 2, MESH_INPUT / 2], atol=1e-9)
    np.testing.assert_allclose(abs(np.linalg.det(m[:, :2])) ** 0.5, MESH_INPUT / (1.5 * 100.0))
    pts = torch.tensor([[[*eyes[0], 4.0], [*eyes[1], -2.0]]], dtype=torch.float64)
    back = mesh_to_image(pts, m)
    np.testing.assert_allclose(back[0, :, :2].numpy(), np.asarray(lms[:2]), atol=1e-9)
    np.testing.assert_allclose(back[0, :, 2].numpy(), [4.0 * 1.5 * 100.0 / MESH_INPUT, -2.0 * 1.5 * 100.0 / MESH_INPUT])
    with pytest.raises(InputError, match="five"):
        mesh_crop_matrix(box, lms[:4])
    with pytest.raises(InputError, match="empty"):
        mesh_crop_matrix((10.0, 10.0, 10.0, 10.0), lms)


def test_shipped_weights_find_a_face_where_the_detector_does(net: FaceMesh, astronaut) -> None:
    _, face, crop, m = astronaut
    grey = torch.full((1, 3, MESH_INPUT, MESH_INPUT), 0.5)
    with torch.inference_mode():
        out, blank = net(_to_input(crop)), net(grey)
    assert float(out.presence) > 0.9 and float(blank.presence) < 0.1
    mesh = mesh_to_image(out.landmarks, m)[0, :, :2].numpy()
    five = np.stack([
        mesh[list(MESH_LEFT_EYE)].mean(0), mesh[list(MESH_RIGHT_EYE)].mean(0),
        mesh[MESH_NOSE_TIP], mesh[MESH_MOUTH_LEFT], mesh[MESH_MOUTH_RIGHT],
    ])  # fmt: skip
    ours = np.asarray(face.landmarks)
    eye_distance = float(np.linalg.norm(ours[0] - ours[1]))
    # measured: eyes 0.01, nose 0.14 (the two models place the tip differently), mouth 0.08-0.12
    err = np.linalg.norm(five - ours, axis=1) / eye_distance
    assert (err < 0.2).all(), err
    # and the whole mesh lies on the face: inside the detector's box, widened by a tenth
    x1, y1, x2, y2 = face.box
    pad = 0.1 * (x2 - x1)
    assert (mesh[:, 0] > x1 - pad).all() and (mesh[:, 0] < x2 + pad).all()
    assert (mesh[:, 1] > y1 - pad).all() and (mesh[:, 1] < y2 + pad).all()


def test_fit_meshes_batches_what_fit_mesh_does(net: FaceMesh, astronaut) -> None:
    import copy

    rgb, face, _, _ = astronaut
    single, presence = fit_mesh(net, rgb, face.box, face.landmarks)
    assert single.dtype == np.float32 and single.shape == (MESH_POINTS, 3) and presence > 0.9
    assert np.array_equal(single, mesh_in_image(net, rgb, face.box, face.landmarks))
    # the same face twice and a box on the background, in one batch
    x1, y1, x2, y2 = face.box
    away = (x1 - x1 + 2, y1, x2 - x1 + 2, y2), tuple((x - x1 + 2, y) for x, y in face.landmarks)
    meshes, pres = fit_meshes(net, rgb, [face.box, face.box, away[0]], [face.landmarks, face.landmarks, away[1]])
    assert meshes.shape == (3, MESH_POINTS, 3) and np.allclose(meshes[0], single, atol=1e-3)
    assert np.array_equal(meshes[0], meshes[1]) and pres[2] < pres[0]
    # float64 runs the network in its own dtype; the mesh stays float32
    m64, p64 = fit_mesh(copy.deepcopy(net).double(), rgb, face.box, face.landmarks)
    assert m64.dtype == np.float32 and np.allclose(m64, single, atol=0.05) and abs(p64 - presence) < 1e-3
    empty = fit_meshes(net, rgb, [], [])
    assert empty[0].shape == (0, MESH_POINTS, 3) and empty[1].shape == (0,)
    with pytest.raises(InputError, match="2 boxes but 1 sets of landmarks"):
        fit_meshes(net, rgb, [face.box, face.box], [face.landmarks])


def test_network_gives_the_same_bits_at_any_thread_count(net: FaceMesh, astronaut) -> None:
    """Pointwise's float32 products (24x24 maps and up) and float64 ones (below) give the same mesh whatever
    the thread count, alone and in batches (oneDNN's 1x1 convolution did not: its last bits moved)."""
    _, _, crop, _ = astronaut
    g = torch.Generator().manual_seed(1)
    face = torch.from_numpy(crop).permute(2, 0, 1)[None].float() / 255
    batch = torch.cat([face, torch.rand((4, 3, MESH_INPUT, MESH_INPUT), generator=g)])
    before, runs = torch.get_num_threads(), []
    try:
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            with torch.inference_mode():
                runs.append([net(x) for x in (face, batch[:3], batch)])
    finally:
        torch.set_num_threads(before)
    for other in runs[1:]:
        for a, b in zip(runs[0], other, strict=True):
            assert torch.equal(a.landmarks, b.landmarks) and torch.equal(a.presence, b.presence)
    # and it is still the 1x1 convolution it stands for
    first = next(m for m in net.modules() if isinstance(m, Pointwise))
    x = torch.rand((3, first.in_channels, 96, 96), generator=g)
    assert torch.allclose(first(x), F.conv2d(x, first.weight, first.bias), atol=1e-5)


# ---- checks that need MediaPipe's tflite file (not in CI) and the LiteRT interpreter ---------------------


@pytest.fixture(scope="module")
def tflite_file() -> Path:
    from anonymizer.nn.facemesh_tflite import face_landmark_tflite_path

    try:
        path = face_landmark_tflite_path()
    except WeightsError as exc:
        pytest.skip(str(exc))
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return path


@pytest.fixture(scope="module")
def interpreter(tflite_file: Path):
    litert = pytest.importorskip("ai_edge_litert.interpreter")
    it = litert.Interpreter(model_path=str(tflite_file), num_threads=1)
    it.allocate_tensors()
    return it


def _run_tflite(it, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(landmarks (N, 468, 3), presence logits (N,)) from the interpreter, one image at a time (batch 1)."""
    index = it.get_input_details()[0]["index"]
    outs = {o["name"]: o["index"] for o in it.get_output_details()}
    lms, logits = [], []
    for img in x.permute(0, 2, 3, 1).numpy():
        it.set_tensor(index, np.ascontiguousarray(img[None], dtype=np.float32))
        it.invoke()
        lms.append(it.get_tensor(outs["conv2d_21"]).reshape(MESH_POINTS, 3))
        logits.append(it.get_tensor(outs["conv2d_31"]).reshape(()))
    return np.stack(lms), np.stack(logits)


def test_matches_litert(net: FaceMesh, interpreter, astronaut) -> None:
    _, _, crop, _ = astronaut
    g = torch.Generator().manual_seed(0)
    batch = torch.cat(
        [
            _to_input(crop),
            torch.rand(2, 3, MESH_INPUT, MESH_INPUT, generator=g),
            torch.full((1, 3, MESH_INPUT, MESH_INPUT), 0.5),
        ]
    )
    lms, logits = _run_tflite(interpreter, batch)
    with torch.inference_mode():
        out = net(batch.contiguous(memory_format=torch.channels_last))
    # measured: 1.4e-4 px on the landmarks, 2e-5 on the logits (float32 summation order)
    np.testing.assert_allclose(out.landmarks.numpy(), lms, atol=2e-3, rtol=0)
    np.testing.assert_allclose(out.presence_logit.numpy(), logits, atol=2e-3, rtol=0)


def test_conversion_reproduces_the_shipped_file(tflite_file: Path, tmp_path: Path) -> None:
    pytest.importorskip("tflite")
    from anonymizer.nn.facemesh_tflite import SOURCE_SHA256, main

    assert sha256_file(tflite_file) == SOURCE_SHA256
    out = tmp_path / "face_mesh.safetensors"
    main([str(tflite_file), str(out)])
    assert sha256_file(out) == get_weights("face_mesh").sha256


def test_conversion_rejects_bad_files(tmp_path: Path) -> None:
    pytest.importorskip("tflite")
    from anonymizer.nn.facemesh_tflite import convert_face_mesh_tflite

    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a tflite file" * 4)
    with pytest.raises(WeightsError, match="bad.tflite"):
        convert_face_mesh_tflite(bad)
    with pytest.raises(WeightsError, match="not found"):
        convert_face_mesh_tflite(tmp_path / "missing.tflite")
