"""Person masks: covering grows and fills each mask, regions seal and restore exactly, ids images, and the
shipped Mask R-CNN on real photos (when its weights are in models/)."""

from __future__ import annotations

import numpy as np
import pytest

from anonymizer.errors import InputError
from anonymizer.pipeline.persons import Person, cover_persons, instance_image


def _person(mask: np.ndarray, score: float = 0.9) -> Person:
    ys, xs = np.nonzero(mask)
    return Person(
        box=(float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)), score=score, mask=mask
    )


@pytest.fixture()
def scene() -> tuple[np.ndarray, list[Person]]:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    a = np.zeros((120, 160), bool)
    a[20:100, 30:60] = True
    b = np.zeros((120, 160), bool)
    b[40:110, 50:90] = True  # overlaps a
    return rgb, [_person(a, 0.9), _person(b, 0.7)]


def test_cover_persons_fills_grown_masks(scene) -> None:
    rgb, persons = scene
    before = rgb.copy()
    out, regions, changed = cover_persons(rgb, persons, method="solid", color=(1, 2, 3))
    np.testing.assert_array_equal(rgb, before)  # input untouched
    union = persons[0].mask | persons[1].mask
    assert changed[union].all() and (out[union] == (1, 2, 3)).all()
    # grown by 2% of the height (at least 2 px) around each mask, nothing far beyond
    assert changed[18, 40] and changed[50, 28] and not changed[5, 5] and not changed[115, 150]
    np.testing.assert_array_equal(out[~changed], rgb[~changed])
    assert [r.kind for r in regions] == ["person", "person"] and regions[0].shape == "mask"
    x1, y1, x2, y2 = regions[0].box
    assert (x1, y1) == (28, 18) and (x2, y2) == (62, 102)
    assert regions[0].face.box == persons[0].box and regions[0].face.landmarks == ()


@pytest.mark.parametrize("method", ["pixelate", "blur"])
def test_cover_persons_other_methods_change_the_mask(scene, method: str) -> None:
    rgb, persons = scene
    out, _, changed = cover_persons(rgb, persons, method=method)
    inside = persons[0].mask
    assert np.abs(out[inside].astype(int) - rgb[inside].astype(int)).mean() > 30
    np.testing.assert_array_equal(out[~changed], rgb[~changed])


def test_cover_persons_bad_input(scene) -> None:
    rgb, persons = scene
    with pytest.raises(InputError, match="unknown method"):
        cover_persons(rgb, persons, method="smudge")
    with pytest.raises(InputError, match="person mask is"):
        cover_persons(rgb[:100], persons)


def test_instance_image_first_person_wins_overlaps(scene) -> None:
    rgb, persons = scene
    ids = instance_image(persons, rgb.shape[:2])
    assert ids.dtype == np.uint16 and set(np.unique(ids)) == {0, 1, 2}
    assert ids[50, 55] == 1  # in both masks: the first (higher-scoring) person
    assert ids[105, 70] == 2 and ids[5, 5] == 0


def test_person_regions_seal_and_restore_exactly(scene) -> None:
    from anonymizer.pipeline.image import AnonymizedImage
    from anonymizer.vault.images import restore_bytes
    from anonymizer.vault.keys import Key

    rgb, persons = scene
    out, regions, changed = cover_persons(rgb, persons, method="pixelate")
    key = Key.from_password("persons are people too")
    originals = tuple(rgb[r.box[1] : r.box[3], r.box[0] : r.box[2]].copy() for r in regions)
    res = AnonymizedImage(
        image=out, faces=(), regions=regions, mask=changed, method="pixelate", originals=originals, key=key
    )
    data, sidecar = res.encode("png")
    assert sidecar is None
    restored = restore_bytes(data, Key.from_password("persons are people too"))
    np.testing.assert_array_equal(restored.image, rgb)


def test_targets_are_checked() -> None:
    from anonymizer.api import parse_targets

    assert parse_targets("person, face") == ("face", "person")
    assert parse_targets(["person"]) == ("person",)
    for bad in ("", "faces", "face,car"):
        with pytest.raises(InputError, match="targets must be"):
            parse_targets(bad)


def test_grow_mask_is_a_superset_of_the_exact_growth() -> None:
    import cv2

    from anonymizer.pipeline.persons import grow_mask

    rng = np.random.default_rng(0)
    mask = rng.random((120, 90)) < 0.01
    for r in (3, 12, 30):
        exact = cv2.dilate(mask.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1,) * 2)) > 0
        grown = grow_mask(mask, r)
        assert grown.shape == mask.shape and (grown >= exact).all()
        assert grown.sum() <= 2.0 * exact.sum()  # not much more than asked


def _segment(samples, name: str, closeups: bool):
    from anonymizer.media import load_image
    from anonymizer.pipeline.persons import PersonSegmenter

    rgb = load_image(samples / name).rgb
    persons = PersonSegmenter(closeups=closeups).segment(rgb)
    union = np.zeros(rgb.shape[:2], bool)
    for p in persons:
        union |= p.mask
    return rgb, persons, union


def test_a_seated_group_is_covered_whole(samples) -> None:
    from anonymizer.api import get_finder

    rgb, _, union = _segment(samples, "group_solvay_1927.jpg", closeups=True)
    faces = get_finder(threshold=0.5).find(rgb)
    assert len(faces) >= 25
    inside = [union[int((f.box[1] + f.box[3]) / 2), int((f.box[0] + f.box[2]) / 2)] for f in faces]
    assert np.mean(inside) >= 0.85  # measured: 26 of 29 faces inside a person (the Mask R-CNN alone: 1)
    _, _, street_only = _segment(samples, "group_solvay_1927.jpg", closeups=False)
    assert street_only.mean() < 0.2 * union.mean()  # measured: 2.0% of the photo against 39.2%


def test_a_portrait_is_covered_whole(samples) -> None:
    _, persons, union = _segment(samples, "grace_hopper.jpg", closeups=True)
    h, w = union.shape
    assert union[h // 4 :, w // 4 : 3 * w // 4].mean() > 0.88  # face, uniform, shoulders (measured: 0.917)
    assert union[: h // 8, : w // 8].mean() < 0.05  # the flag in the corner
    assert any(p.score == 0.5 for p in persons)  # the close-up segmenter's person


def test_the_close_up_segmenter_is_asked_only_where_the_street_model_sees_few_sure_people(monkeypatch) -> None:
    """A crowd of sure people keeps it away; unsure fragments (a talking head's hair and a patch of background,
    which the Mask R-CNN scores 0.54-0.75) do not."""
    from anonymizer.pipeline import persons as P

    seg = P.PersonSegmenter()
    rgb = np.zeros((64, 64, 3), np.uint8)

    def people(n: int, score: float) -> tuple[Person, ...]:
        return tuple(Person(box=(0, 0, 4, 4), score=score, mask=np.ones((64, 64), bool)) for _ in range(n))

    extra = Person(box=(0, 0, 8, 8), score=0.5, mask=np.ones((64, 64), bool))
    asked: list[int] = []
    monkeypatch.setattr(seg, "closeups_of", lambda rgb, persons: asked.append(len(persons)) or (extra,))
    few, unsure = people(P.CLOSEUP_MAX_PERSONS, P.CLOSEUP_SURE), people(3, P.CLOSEUP_SURE - 0.2)
    for found in (few, (*few, *people(1, 0.99)), (*few, *unsure)):
        monkeypatch.setattr(seg, "_maskrcnn", lambda rgb, found=found: found)
        out = seg.segment(rgb)
        assert out == (found if len(found) == P.CLOSEUP_MAX_PERSONS + 1 else (*found, extra))
    assert asked == [P.CLOSEUP_MAX_PERSONS, P.CLOSEUP_MAX_PERSONS + 3]
