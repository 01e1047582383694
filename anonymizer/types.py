"""Frozen result types shared by the library, the CLI and the tests."""

from __future__ import annotations

from dataclasses import dataclass

#: Landmark order used everywhere: the eye, then the other eye, nose tip, mouth corner, mouth corner.
#: "left"/"right" are as seen in the image: ``left_eye`` has the smaller x on an upright frontal face
#: (it is the subject's right eye).
LANDMARK_NAMES: tuple[str, ...] = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


class _Boxed:
    """Width and height of a detection's ``box`` (x1, y1, x2, y2)."""

    box: tuple[float, float, float, float]

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]


@dataclass(frozen=True)
class Face(_Boxed):
    """One detected face, in pixels of the upright image.

    box: (x1, y1, x2, y2), x2/y2 exclusive edges, floats.
    score: detector confidence in 0..1.
    landmarks: five (x, y) points in :data:`LANDMARK_NAMES` order.
    """

    box: tuple[float, float, float, float]
    score: float
    landmarks: tuple[tuple[float, float], ...]

    def to_dict(self) -> dict[str, object]:
        return {
            "box": [round(float(v), 2) for v in self.box],
            "score": round(float(self.score), 5),
            "landmarks": [[round(float(x), 2), round(float(y), 2)] for x, y in self.landmarks],
        }


@dataclass(frozen=True)
class Plate(_Boxed):
    """One detected licence plate, in pixels of the upright image: box (x1, y1, x2, y2) floats, x2/y2
    exclusive edges; score: detector confidence in 0..1. ``landmarks`` is empty (a plate has none)."""

    box: tuple[float, float, float, float]
    score: float
    landmarks: tuple[tuple[float, float], ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {"box": [round(float(v), 2) for v in self.box], "score": round(float(self.score), 5)}


@dataclass(frozen=True)
class Region:
    """One anonymized region: the face (or person, or plate) it covers and the integer pixel box its mask spans.

    box: (x1, y1, x2, y2) integer pixels, clipped to the image, x2/y2 exclusive.
    shape: "ellipse" or "box" for faces; "mask" for a person's segmentation mask; "box" for a plate.
    kind: "face", "person" or "plate"; for a person or a plate, ``face`` holds its box and score (no
    landmarks).
    """

    face: Face
    box: tuple[int, int, int, int]
    shape: str
    kind: str = "face"


@dataclass(frozen=True)
class Detections:
    """Faces found in one image of ``width`` x ``height`` pixels (upright)."""

    width: int
    height: int
    faces: tuple[Face, ...] = ()
    path: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "path": self.path,
            "width": self.width,
            "height": self.height,
            "faces": [f.to_dict() for f in self.faces],
        }
