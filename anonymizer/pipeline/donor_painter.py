"""Surrogate faces from the donor bank: every face of a photo or video frame replaced by the face of someone
who does not exist (:mod:`anonymizer.pipeline.donors`), chosen by the password.

For each detected face (:meth:`DonorPainter.paint`):

1. **Plan** (:meth:`DonorPainter.plan`): faces at least :data:`MESH_MIN` pixels tall get their 468-point
   mesh (:mod:`anonymizer.nn.facemesh`). The mesh is trusted when the network sees a face (presence >=
   :data:`MIN_PRESENCE`), the head is turned less than :data:`MAX_YAW` / :data:`MAX_PITCH` (a video
   track trusted on its last frame: :data:`TURN_MARGIN` more), and the mesh's
   eyes, nose and mouth lie where the detector put them (within :data:`AGREE` of the face's size) and
   inside the mesh's face outline: a hand or an object over the face makes the mesh wander, the back of a
   head or a sign has no face for it, and a turned head's nose can stand out of the outline.
   Faces with an untrusted mesh are covered solid, as are faces whose surrogate would leave part of the
   face showing (:data:`COVER_MIN`).
   Faces under :data:`MESH_MIN` pixels tall are too blurred for the mesh network's presence to mean
   anything (measured: about 0 for real faces under 30 px): they are placed by their five landmarks when
   the detector is sure of them (score >= :data:`SMALL_SCORE`; a video passes its tracks' detection
   scores), else covered solid (a coat of arms' lions scored 0.2).
2. **Donor** (:func:`~anonymizer.pipeline.donor_swap.choose_donor`): the password's weighted draw among the
   suitable donors, those nearer the face in skin lightness, apparent sex and age more likely (the sex and
   age read from the face's IdentityNet descriptor, :mod:`anonymizer.nn.attributes`; the lightness the
   lighter of the skin's in the photo and :mod:`anonymizer.nn.skin_tone`'s reading of a second descriptor,
   of the crop at an even exposure); a video's track keeps its donor (``choices``).
3. **Render** (:func:`~anonymizer.pipeline.donor_swap.render_face` or
   :func:`~anonymizer.pipeline.donor_swap.render_points`) in a window around the face.

Determinism: the same password and input give the same pixels whatever the number of threads. The mesh
network's sums do not depend on the thread count (:class:`anonymizer.nn.facemesh.Pointwise`), the
identity check runs in float64, and the detector's boxes and landmarks are rounded to whole pixels first,
so the last-bit differences the detector shows between thread counts almost never reach the mesh.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from ..errors import InputError
from ..nn.attributes import FaceAttributes, face_attributes
from ..nn.facemesh import FaceMesh, fit_meshes
from ..nn.identity import IDENTITY_CROP, IdentityNet, identity_net
from ..nn.skin_tone import SkinTone, skin_tone
from ..ops.align import align_face, similarity_onto
from ..ops.checks import require_rgb
from ..ops.masks import box_coverage
from ..types import Face, Region
from ..vault.surrogate import SurrogateSeed
from .donor_swap import (
    FACE_OVAL,
    choose_donor,
    distinct_shape,
    donor_weights,
    draw_weights,
    five_points,
    radial_share,
    render_face,
    render_points,
)
from .donors import DonorBank, head_pose, mirror_permutation, mirrored, skin_lab

#: faces shorter than this (box height, pixels) are placed by their five landmarks instead of a mesh
MESH_MIN = 40
#: a face under MESH_MIN px gets a donor only with at least this detector score (else it is covered solid)
SMALL_SCORE = 0.5
#: the mesh is trusted when the network's face presence is at least this ...
MIN_PRESENCE = 0.5
#: ... the head is turned less than this (degrees) ...: the donors face the camera (|yaw| <= 18), and on
#: crowd photos (wider-dev at 1024 px, 17 faces turned 20-48 degrees, looked at) faces turned 43 degrees
#: and more got a donor's features squeezed onto their near side, mask-like; 22-39 looked like faces
MAX_YAW, MAX_PITCH = 38.0, 40.0
#: ... or, for a video track whose mesh was trusted on its previous frame, this much more: a head turning
#: about the limit would otherwise switch between its surrogate and a black ellipse every frame or two (on
#: the sample clip a boy turning 36-40 degrees did so twice in 10 frames)
TURN_MARGIN = 4.0
#: ... and the mesh's five points lie on average within this share of the face's size of the detector's
AGREE = 0.2
#: ... and the face stays inside the mesh's face outline: on a head turned 22-38 degrees the nose tip or
#: the far eye can stand out of the outline the mesh draws, and the photo's own nose or eye corner then
#: stayed beside the new face (11 of 99 wider-dev faces with a trusted mesh). In a photo each of the
#: detector's five landmarks must lie within OUTSIDE of the way from the outline's centre to the outline;
#: in a video (whose landmarks between detections are moved with the track, a few percent off at times:
#: the sample clip's boy, turned 25-40 degrees, then switched between his surrogate and a black ellipse
#: every frame or two) the steadied mesh's own nose tip (NOSE_TIPS) must lie inside it
OUTSIDE = 1.1
NOSE_TIPS = (1, 4)
#: the surrogate must cover at least this share of the central half of the face box, else the face is
#: covered solid as well (see :func:`anonymizer.ops.masks.box_coverage`)
COVER_MIN = 0.8
#: a face whose box lies at least this share inside a larger face's box that gets a surrogate is a second
#: detection of that face (the detector's face-in-face, a track that split): it is not painted again, and
#: is covered solid only when the surrogates leave more than COVER_MIN of it showing. On the sample clip a
#: boy's face got a black ellipse over his surrogate for 12 of 60 frames from such a box
NESTED = 0.8
#: donor candidates per track for the identity check (see :meth:`DonorPainter.paint`): more candidates
#: favour the same few donors that render far from most faces, and two passwords then agree more often
#: (replayed on 200 held-out adults: 4 candidates 83.9% "passwords differ", 3 85.8%, 2 86.2%); fewer let
#: more faces through that dlib still matches (all 890 held-out faces, 2 candidates: 99.2% de-identified)
ATTEMPTS = 3
#: the check's recognizer (weights declared in anonymizer/weights.py) and the distance from the original
#: face beyond which a candidate is taken (see models/donors.md, "Identity check")
CHECK_WEIGHTS, CHECK_DISTANCE = "identity_net", 0.65
#: the median grey level (0..1, the mean of R, G, B) a face's aligned crop is scaled to before the skin tone
#: head reads it (:meth:`DonorPainter.describe` with ``even_light``): the photo's exposure taken out
EVEN_GREY = 0.45
#: the window rendered around a face, as a share of its mesh's (or box's) size on each side
WINDOW_MARGIN = 0.25
#: a donor is drawn mirrored when that brings its head's turn at least this much (degrees) nearer the
#: face's: a donor turned the other way sees the cheek the face turns towards edge-on, and that strip of
#: its photo, stretched across the near cheek, left streaks and patches (wider-dev faces turned 15-38
#: degrees, models/donors.md, "A donor turned the other way")
MIRROR_GAIN = 8.0


@dataclass
class FacePlan:
    """How :meth:`DonorPainter.paint` replaces one face: ``how`` ("mesh", "points" or "solid"; see
    :meth:`DonorPainter.plan`), its mesh (steadied along its track), the window rendered (None: covered
    solid) and, for a face whose track has no donor yet, ``drawn``: :meth:`DonorPainter.draw`'s
    (descriptor, candidates)."""

    how: str
    mesh: np.ndarray | None
    win: tuple[slice, slice] | None
    drawn: tuple[np.ndarray, list[int]] | None = None


class DonorPainter:
    """Loads the donor bank and the mesh network once; :meth:`paint` is safe to call from several threads."""

    def __init__(
        self,
        *,
        bank: DonorBank | None = None,
        mesh: FaceMesh | None = None,
        identity_check: bool = True,
        tone: SkinTone | None = None,
    ) -> None:
        if mesh is None:
            from ..nn import face_mesh

            mesh = face_mesh()
        self.bank = bank if bank is not None else DonorBank.load()
        self.mesh = mesh.eval()
        self.weights = donor_weights(self.bank)
        self._lock = threading.Lock()
        self._mesh_lock = threading.Lock()  # the mesh network's own: a video fits meshes beside painting
        # per donor view (see :meth:`view`): its crop decoded once (a video repaints it every frame), its mesh
        # and its distinct shape (donor_swap.distinct_shape)
        self._views: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._pairs = mirror_permutation(self.bank.reference)
        # float64: the check's decisions and the donor's draw do not depend on the thread count
        self.describer: IdentityNet = identity_net(weights=CHECK_WEIGHTS).eval().double()
        self.attributes: FaceAttributes = face_attributes().eval().double()
        self.tone: SkinTone = (tone if tone is not None else skin_tone()).eval().double()
        self.identity_check = identity_check

    def plan(self, rgb: np.ndarray, face: Face) -> tuple[str, np.ndarray | None]:
        """How to replace ``face``: ("mesh", its mesh [468, 3] in image pixels), ("points", None) for a face
        too small for a mesh, or ("solid", None) when its mesh cannot be trusted (see the module's doc)."""
        return self.plan_all(rgb, [face])[0]

    def plan_all(
        self, rgb: np.ndarray, faces: Sequence[Face], lenient: Sequence[bool] | None = None
    ) -> list[tuple[str, np.ndarray | None]]:
        """:meth:`plan` for every face of ``rgb``, the meshes fitted in one batch. ``lenient`` (a video's
        frame, one flag per face): the faces it marks are trusted :data:`TURN_MARGIN` degrees further
        turned or nodded, and every face is held to the video's test of :data:`OUTSIDE`."""
        boxes = [_whole_pixels(f.box) for f in faces]
        points = [_whole_pixels(f.landmarks) for f in faces]
        if any(lm.shape != (5, 2) for lm in points):
            raise InputError("a surrogate needs the face's five landmarks")
        big = [k for k, b in enumerate(boxes) if b[3] - b[1] >= MESH_MIN]
        with self._mesh_lock:
            fitted, seen = fit_meshes(self.mesh, rgb, [boxes[k] for k in big], [points[k] for k in big])
        meshes: list[np.ndarray | None] = [None] * len(faces)
        presence = [0.0] * len(faces)
        for k, mesh, p in zip(big, fitted, seen, strict=True):
            meshes[k], presence[k] = mesh, float(p)
        plans: list[tuple[str, np.ndarray | None]] = []
        margins = [TURN_MARGIN if ease else 0.0 for ease in (lenient or [False] * len(faces))]
        for face, mesh, p, box, lm, margin in zip(faces, meshes, presence, boxes, points, margins, strict=True):
            if mesh is None:  # too small for the mesh network to tell (not in ``big``): the detector's score
                plans.append(("points", None) if face.score >= SMALL_SCORE else ("solid", None))
                continue
            yaw, pitch, _ = head_pose(mesh, self.bank.reference)
            size = float(max(box[2] - box[0], box[3] - box[1]))
            off = float(np.linalg.norm(five_points(mesh) - lm, axis=1).mean()) / max(size, 1.0)
            turned = abs(yaw) > MAX_YAW + margin or abs(pitch) > MAX_PITCH + margin
            outside = _stands_out(mesh, lm, video=lenient is not None)
            trusted = p >= MIN_PRESENCE and not turned and off <= AGREE and not outside
            plans.append(("mesh", mesh) if trusted else ("solid", None))
        return plans

    def candidates(
        self,
        rgb: np.ndarray,
        mesh: np.ndarray | None,
        seed: SurrogateSeed,
        track: int,
        descriptor: np.ndarray | None = None,
        even: np.ndarray | None = None,
    ) -> list[int]:
        """The :data:`ATTEMPTS` donor candidates of ``track``, in order: candidate k is the seed's weighted
        draw number track * ATTEMPTS + k (so a track's candidates are different donors) with the face's
        :meth:`draw_weights`."""
        drawn = self.draw_weights(rgb, mesh, descriptor, even)
        return [choose_donor(seed, track * ATTEMPTS + k, drawn) for k in range(ATTEMPTS)]

    def draw_weights(
        self,
        rgb: np.ndarray,
        mesh: np.ndarray | None,
        descriptor: np.ndarray | None,
        even: np.ndarray | None = None,
    ) -> np.ndarray:
        """:func:`~anonymizer.pipeline.donor_swap.draw_weights` of a face: its skin lightness, the lighter of
        the L* read from its ``mesh``'s forehead and cheeks in ``rgb`` and its :meth:`lightness` from its
        ``even`` descriptor (``describe(..., even_light=True)``; mid-grey without either), and its apparent
        sex and age from its :meth:`describe` ``descriptor`` (none without). The photo's reading errs dark
        (shadow, a dim photo, a cap's brim, sunglasses over the cheeks) far more often than light; the
        head's does not follow the photo's exposure but reads real, well-lit faces a little darker than
        their skin reads (models/skin_tone.md)."""
        read = float(skin_lab(rgb, mesh)[0]) if mesh is not None else float("nan")
        tone = self.lightness(even) if even is not None else float("nan")
        lightness = max((v for v in (read, tone) if np.isfinite(v)), default=50.0)
        looks = self.looks(descriptor) if descriptor is not None else None
        return draw_weights(self.bank, self.weights, lightness, looks)

    def describe(self, rgb: np.ndarray, face: Face, *, even_light: bool = False) -> np.ndarray:
        """The identity check's descriptor (float64 [128]) of ``face`` in ``rgb``, aligned by its landmarks
        rounded to whole pixels as for the mesh (the detector's last digits depend on the thread count, and
        the face's looks, read from this descriptor, weigh the donors). ``even_light``: of the crop scaled
        so that its median grey is :data:`EVEN_GREY` (the photo's exposure taken out), as
        :meth:`lightness` reads it."""
        crop = align_face(rgb, _whole_pixels(face.landmarks), size=IDENTITY_CROP)
        x = torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1)[None].double() / 255.0
        if even_light:
            x = (x * (EVEN_GREY / max(float(x.mean(1).median()), 1e-3))).clamp(0.0, 1.0)
        with self._lock, torch.inference_mode():
            return self.describer(x)[0].numpy()

    def looks(self, descriptor: np.ndarray) -> tuple[float, float]:
        """(probability of female, apparent age in years) of a face from its :meth:`describe` descriptor."""
        with self._lock, torch.inference_mode():
            female, age = self.attributes.predict(torch.from_numpy(descriptor)[None].double())
        return float(female[0]), float(age[0])

    def lightness(self, even: np.ndarray) -> float:
        """A face's skin lightness (L*) as the donors' skin was measured, in even light, from its
        ``describe(..., even_light=True)`` descriptor (:class:`~anonymizer.nn.skin_tone.SkinTone`,
        models/skin_tone.md): read from the photo alone, a light-skinned face in shadow, in a dim photo or
        under a cap's brim read 20-30 L* darker and drew donors of another complexion."""
        with self._lock, torch.inference_mode():
            return float(self.tone(torch.from_numpy(even)[None].double())[0])

    def draw(
        self, rgb: np.ndarray, face: Face, mesh: np.ndarray | None, seed: SurrogateSeed, track: int
    ) -> tuple[np.ndarray, list[int]]:
        """(the face's :meth:`describe` descriptor, its donor :meth:`candidates`): what choosing its donor
        needs from the original photo."""
        ref, even = self.describe(rgb, face), self.describe(rgb, face, even_light=True)
        return ref, self.candidates(rgb, mesh, seed, track, ref, even)

    def prepare(
        self,
        rgb: np.ndarray,
        faces: Sequence[Face],
        seed: SurrogateSeed,
        tracks: Sequence[int],
        *,
        meshes: dict[int, np.ndarray] | None = None,
        decided: set[int] | None = None,
        trusted: set[int] | None = None,
    ) -> list[FacePlan]:
        """What :meth:`paint` reads from the original photo, face by face: :meth:`plan_all`'s plan, the mesh
        steadied against its track's last (``meshes``, see :meth:`paint`), the window to render, and for
        faces to be replaced whose track is not in ``decided`` (every face when None) their :meth:`draw`;
        those tracks are then added to ``decided``. ``trusted``: the tracks whose mesh was trusted on their
        last frame (kept up to date here), given :data:`TURN_MARGIN`."""
        plans = []
        tracks = [int(t) for t in tracks]
        lenient = [t in trusted for t in tracks] if trusted is not None else None
        for face, track, (how, mesh) in zip(faces, tracks, self.plan_all(rgb, faces, lenient), strict=True):
            if trusted is not None and how == "mesh":
                trusted.add(track)
            elif trusted is not None:
                trusted.discard(track)
            if meshes is not None and mesh is not None:
                mesh = meshes[track] = steady_mesh(meshes.get(track), mesh)
            win = _window(rgb.shape[:2], face, mesh) if how != "solid" else None
            drawn = None
            if win is not None and (decided is None or track not in decided):
                drawn = self.draw(rgb, face, mesh, seed, track)
                if decided is not None:
                    decided.add(track)
            plans.append(FacePlan(how, mesh, win, drawn))
        return plans

    def paint(
        self,
        rgb: np.ndarray,
        faces: Sequence[Face],
        seed: SurrogateSeed,
        tracks: Sequence[int] | None = None,
        choices: dict[int, int] | None = None,
        meshes: dict[int, np.ndarray] | None = None,
        prepared: Sequence[FacePlan] | None = None,
    ) -> tuple[np.ndarray, tuple[Region, ...], np.ndarray]:
        """(new image, regions, changed-pixel mask) for ``rgb`` (uint8 RGB) with each face replaced; the input
        is not modified. ``tracks``: each face's track number (default 0, 1, ... in order), which with the
        seed picks its donor; ``choices`` (track -> donor :meth:`view`) remembers the picks: a video passes one
        dict for all its frames (kept to one thread), so a track keeps the donor it got where it first
        appeared. ``meshes`` (track -> mesh) likewise remembers each track's last mesh, and the new one is
        smoothed against it (:func:`steady_mesh`), so that a video's faces do not swim. ``prepared``: what
        :meth:`prepare` gives for this frame, when done already (a video prepares the next frames while
        this one is painted; ``meshes`` is then not used). A face replaced by a donor gives a region of
        shape "surrogate"; a face covered solid (an untrusted mesh, or a surrogate that would leave part of
        the face showing) one of shape "ellipse". Faces without five landmarks raise InputError."""
        from .photo import cover_faces

        require_rgb(rgb)
        tracks = list(range(len(faces))) if tracks is None else list(tracks)
        if len(tracks) != len(faces):
            raise InputError(f"{len(faces)} faces but {len(tracks)} track numbers")
        out = rgb.copy()
        changed = np.zeros(rgb.shape[:2], bool)
        painted = np.zeros(rgb.shape[:2], np.float32)  # the surrogates' alpha
        regions: list[Region] = []
        solid: list[Face] = []  # faces covered solid instead
        if prepared is None:
            decided = set(choices) if choices is not None else None
            prepared = self.prepare(rgb, faces, seed, tracks, meshes=meshes, decided=decided)
        nested = _nested(faces, [plan.win is not None for plan in prepared])
        for k, (face, track, plan) in enumerate(zip(faces, tracks, prepared, strict=True)):
            covered = 0.0
            if (win := plan.win) is not None and not nested[k]:
                keep = _keep(win, [f for j, f in enumerate(faces) if j != k and not nested[j]])
                alpha, moved = self._choose(rgb, out, face, plan, seed, int(track), choices, keep)
                x0, y0 = win[1].start, win[0].start
                ys, xs = np.nonzero(moved)
                if len(xs):
                    regions.append(
                        Region(
                            face=face,
                            box=(
                                x0 + int(xs.min()),
                                y0 + int(ys.min()),
                                x0 + int(xs.max()) + 1,
                                y0 + int(ys.max()) + 1,
                            ),
                            shape="surrogate",
                        )
                    )
                    changed[win] |= moved
                painted[win] = np.maximum(painted[win], alpha)
                x1, y1, x2, y2 = _whole_pixels(face.box)  # the window holds the box's central half (mesh spans it)
                covered = box_coverage(alpha, (x1 - x0, y1 - y0, x2 - x0, y2 - y0))
            if covered < COVER_MIN:
                solid.append(face)
        # a second detection inside a surrogate's face is covered by it (the same rule as the face's own)
        solid = [f for f in solid if box_coverage(painted, _box(f)) < COVER_MIN]
        if solid:  # last, in one pass (one copy of the frame, not one each), over any surrogate they touch
            out, more, more_mask = cover_faces(out, solid, method="solid")
            regions.extend(more)
            changed |= more_mask
        return out, tuple(regions), changed

    def _choose(
        self,
        rgb: np.ndarray,
        out: np.ndarray,
        face: Face,
        plan: FacePlan,
        seed: SurrogateSeed,
        track: int,
        choices: dict[int, int] | None,
        keep: np.ndarray | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Paint the track's donor into ``out`` (within ``plan.win``; the photo is not reshaped where ``keep``
        is 0) and return the alpha and the changed pixels there: the donor :meth:`view` in ``choices``, else
        the first of the plan's (or newly drawn) candidates whose face the check puts more than
        :data:`CHECK_DISTANCE` from the original (the farthest when none is; faces without a mesh, too
        small for the check, take the first), remembered in ``choices``."""
        win, mesh = plan.win, plan.mesh
        assert win is not None
        below = out[win].copy()
        if choices is not None and track in choices:
            return self._render(out, below, win, face, mesh, choices[track], keep)
        best, far, drawn = 0, -1.0, None
        tries = ATTEMPTS if self.identity_check and mesh is not None else 1
        ref, candidates = plan.drawn if plan.drawn is not None else self.draw(rgb, face, mesh, seed, track)
        for view in (self.view(index, mesh) for index in candidates[:tries]):
            drawn = self._render(out, below, win, face, mesh, view, keep)
            if tries == 1:
                best = view
                break
            d = float(np.linalg.norm(ref - self.describe(out, face)))
            if d > CHECK_DISTANCE:
                best = view
                break
            if d > far:
                far, best = d, view
        else:
            if best != view:  # none was far enough: the farthest, unless it is the one painted last
                drawn = self._render(out, below, win, face, mesh, best, keep)
        if choices is not None:
            choices[track] = best
        assert drawn is not None
        return drawn

    def view(self, index: int, mesh: np.ndarray | None) -> int:
        """How donor ``index`` is drawn into the face of ``mesh`` (None: placed by five points, as it is): the
        donor as it is (``index``) or mirrored (``index + len(bank)``), whichever turns its head nearer the
        face's, mirrored only when that gains at least :data:`MIRROR_GAIN` degrees of yaw. A video's track
        keeps the view it was first painted with (``choices``)."""
        if mesh is None:
            return index
        yaw, donor = float(head_pose(mesh, self.bank.reference)[0]), float(self.bank.pose(index)[0])
        return index + len(self.bank) if abs(yaw - donor) - abs(yaw + donor) >= MIRROR_GAIN else index

    def donor_of(self, view: int) -> int:
        """The bank's index of the donor behind a :meth:`view`."""
        return view % len(self.bank)

    def _donor(self, view: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(crop, mesh, distinct shape) of a donor :meth:`view`, decoded and computed once."""
        if (known := self._views.get(view)) is None:
            if not 0 <= view < 2 * len(self.bank):
                raise IndexError(f"donor view {view} out of range for a bank of {len(self.bank)}")
            index = self.donor_of(view)
            image, mesh = self.bank.image(index), self.bank.mesh(index)
            if view >= len(self.bank):
                image, mesh = mirrored(image, mesh, self._pairs)
            known = self._views[view] = (image, mesh, distinct_shape(mesh, self.bank.reference))
        return known

    def _render(
        self,
        out: np.ndarray,
        below: np.ndarray,
        win: tuple[slice, slice],
        face: Face,
        mesh: np.ndarray | None,
        view: int,
        keep: np.ndarray | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Render donor ``view`` (:meth:`view`) over ``face`` into ``out[win]`` (over ``below``, what was
        there) and return the alpha it was blended with and the pixels it changed there."""
        shift = np.array([win[1].start, win[0].start], np.float32)
        image, donor_mesh, shape = self._donor(view)
        if mesh is not None:
            target = mesh.copy()
            target[:, :2] -= shift
            new, a, moved = render_face(below, target, image, donor_mesh, self.bank.triangles, shape=shape, keep=keep)
        else:
            points = _whole_pixels(face.landmarks) - shift
            new, a, moved = render_points(below, points, image, donor_mesh)
        out[win] = new
        return a, moved


#: a video track's mesh follows the head's turn, scale and shift at once, and the rest of its change
#: (expression, and the mesh network's jitter from frame to frame) this share per frame ...
STEADY = 0.35
#: ... unless the rest moved more than this share of the face's size (another face under the same track):
#: then the new mesh as it is
STEADY_RESET = 0.08


def steady_mesh(previous: np.ndarray | None, mesh: np.ndarray) -> np.ndarray:
    """``mesh`` [468, 3] smoothed against a track's ``previous`` one: the previous mesh moved by the 3D
    similarity that best takes it onto the new one (the head's motion, followed without lag), plus
    :data:`STEADY` of what that leaves (the shape's change; :data:`STEADY_RESET`). float32."""
    if previous is None:
        return mesh.astype(np.float32)
    moved = similarity_onto(np.asarray(previous, np.float64), mesh)
    rest = np.asarray(mesh, np.float64) - moved
    size = float(np.ptp(mesh[:, :2], axis=0).max())
    if float(np.linalg.norm(rest[:, :2], axis=1).mean()) > STEADY_RESET * max(size, 1.0):
        return mesh.astype(np.float32)
    return (moved + STEADY * rest).astype(np.float32)


#: the photo is not reshaped around a face (donor_swap.reshaped_photo) within this share of another face's
#: size around that face's box, and only partly within twice that: the other face's own pixels stay where
#: its own replacement will cover them
KEEP_MARGIN = 0.25


def _keep(win: tuple[slice, slice], others: Sequence[Face]) -> np.ndarray | None:
    """float32 [h, w] over ``win``: 0 on the boxes of ``others`` grown by :data:`KEEP_MARGIN` of their size,
    rising smoothly to 1 over as much again; None when none of them comes near."""
    h, w = win[0].stop - win[0].start, win[1].stop - win[1].start
    free, ramp = np.ones((h, w), np.uint8), np.inf
    for f in others:
        x1, y1, x2, y2 = _whole_pixels(f.box)  # the ramp's width reaches every pixel's blend
        m = KEEP_MARGIN * max(x2 - x1, y2 - y1)
        a, b = int(np.floor(x1 - m)) - win[1].start, int(np.floor(y1 - m)) - win[0].start
        c, d = int(np.ceil(x2 + m)) - win[1].start + 1, int(np.ceil(y2 + m)) - win[0].start + 1
        if c > 0 and d > 0 and a < w and b < h:
            free[max(b, 0) : max(d, 0), max(a, 0) : max(c, 0)] = 0
            ramp = min(ramp, m)
    if not np.isfinite(ramp):
        return None
    t = np.clip(cv2.distanceTransform(free, cv2.DIST_L2, 3) / max(ramp, 1.0), 0.0, 1.0)
    return (t * t * (3 - 2 * t)).astype(np.float32)


def _stands_out(mesh: np.ndarray, landmarks: np.ndarray, *, video: bool) -> bool:
    """Whether the face stands out of its ``mesh``'s outline (see :data:`OUTSIDE`): in a photo one of the
    detector's ``landmarks`` [5, 2], in a video the mesh's own nose tip."""
    tips, limit = (mesh[list(NOSE_TIPS), :2], 1.0) if video else (landmarks.astype(np.float32), OUTSIDE)
    return float(radial_share(tips, mesh[list(FACE_OVAL), :2]).max()) > limit


def _nested(faces: Sequence[Face], painted: Sequence[bool]) -> list[bool]:
    """For each face: whether at least :data:`NESTED` of its box lies inside the box of a larger face that
    is ``painted`` (gets a surrogate)."""
    boxes = [_whole_pixels(f.box) for f in faces]
    area = [max(float(b[2] - b[0]) * float(b[3] - b[1]), 1.0) for b in boxes]
    out = []
    for k, b in enumerate(boxes):
        inside = 0.0
        for j, o in enumerate(boxes):
            if j != k and painted[j] and area[j] > area[k]:
                w = min(b[2], o[2]) - max(b[0], o[0])
                h = min(b[3], o[3]) - max(b[1], o[1])
                inside = max(inside, max(float(w), 0.0) * max(float(h), 0.0) / area[k])
        out.append(inside >= NESTED)
    return out


def _box(face: Face) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = (float(v) for v in _whole_pixels(face.box))
    return x1, y1, x2, y2


def _whole_pixels(values: object) -> np.ndarray:
    """The detector's box or landmarks rounded to whole pixels (float64): their last digits depend on the
    thread count, and what the painter reads from them (mesh, descriptor) must not."""
    return np.round(np.asarray(values, np.float64))


def _window(shape: tuple[int, int], face: Face, mesh: np.ndarray | None) -> tuple[slice, slice] | None:
    """The part of an image of ``shape`` rendered for ``face``: its mesh's (else its box's) extent grown by
    :data:`WINDOW_MARGIN` on each side; None when that lies outside the image."""
    h, w = shape
    if mesh is not None:
        lo, hi = mesh[:, :2].min(0), mesh[:, :2].max(0)
    else:
        box = _whole_pixels(face.box)
        lo, hi = box[:2].astype(np.float32), box[2:].astype(np.float32)
    pad = WINDOW_MARGIN * float((hi - lo).max()) + 4
    x0, y0 = max(int(lo[0] - pad), 0), max(int(lo[1] - pad), 0)
    x1, y1 = min(int(hi[0] + pad) + 1, w), min(int(hi[1] + pad) + 1, h)
    if x1 <= x0 or y1 <= y0:
        return None
    return slice(y0, y1), slice(x0, x1)


__all__ = [
    "AGREE",
    "ATTEMPTS",
    "CHECK_DISTANCE",
    "CHECK_WEIGHTS",
    "COVER_MIN",
    "EVEN_GREY",
    "MAX_PITCH",
    "MAX_YAW",
    "MESH_MIN",
    "MIN_PRESENCE",
    "NESTED",
    "NOSE_TIPS",
    "OUTSIDE",
    "SMALL_SCORE",
    "STEADY",
    "TURN_MARGIN",
    "DonorPainter",
    "FacePlan",
    "steady_mesh",
]
