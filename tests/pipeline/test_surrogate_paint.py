"""Painting surrogates into photos (with an untrained generator whose code has a say): only the face region
changes, the same password gives byte-identical output, other passwords and other tracks other faces,
large faces go through super-resolution, faces without landmarks are refused, the identity check takes
the first candidate far enough from the original and a video's tracks keep the candidate taken."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from anonymizer.errors import InputError
from anonymizer.nn.surrogate import CODE_DIM, SurrogateGenerator
from anonymizer.pipeline.surrogate import ATTEMPTS, CHECK_DISTANCE, SurrogatePainter, check_recognizer
from anonymizer.types import Face
from anonymizer.vault.surrogate import SurrogateSeed


def coded_generator(seed: int) -> SurrogateGenerator:
    """An untrained generator whose code has a say (a fresh FiLM starts as the identity)."""
    torch.manual_seed(seed)
    gen = SurrogateGenerator()
    with torch.no_grad():
        for mod in gen.modules():
            if type(mod).__name__ == "FiLM":
                mod.proj.weight.normal_(0, 0.3)
    return gen


@pytest.fixture(scope="module")
def painter() -> SurrogatePainter:
    return SurrogatePainter(generator=coded_generator(0), identity_check=False)


@pytest.fixture(scope="module")
def photo(samples, finder):
    from anonymizer.media.image import load_image

    rgb = load_image(samples / "astronaut.png").rgb
    return rgb, finder.find(rgb)


@pytest.fixture(scope="module")
def seed() -> SurrogateSeed:
    return SurrogateSeed(bytes(range(32)))


def test_only_the_face_changes_and_output_repeats(painter, photo, seed) -> None:
    rgb, faces = photo
    out, regions, changed = painter.paint(rgb, faces, seed)
    again, _, _ = painter.paint(rgb, faces, seed)
    assert np.array_equal(out, again)  # byte-identical for the same password and input
    assert len(regions) == 1 and regions[0].shape == "surrogate"
    np.testing.assert_array_equal(out[~changed], rgb[~changed])
    x1, y1, x2, y2 = (int(v) for v in faces[0].box)
    assert changed[(y1 + y2) // 2, (x1 + x2) // 2] and changed.mean() < 0.2
    rx1, ry1, rx2, ry2 = regions[0].box
    assert rx1 >= 0 and ry1 >= 0 and rx2 <= rgb.shape[1] and ry2 <= rgb.shape[0]


def test_other_passwords_and_tracks_paint_other_faces(painter, photo, seed) -> None:
    rgb, faces = photo
    a, _, changed = painter.paint(rgb, faces, seed)
    b, _, _ = painter.paint(rgb, faces, SurrogateSeed(bytes(32)))
    c, _, _ = painter.paint(rgb, faces, seed, tracks=[7])
    for other in (b, c):
        assert np.abs(a[changed].astype(int) - other[changed].astype(int)).mean() > 2


def test_large_faces_use_super_resolution(painter, seed) -> None:
    rgb = np.full((900, 900, 3), 120, np.uint8)
    lm = ((300, 380), (600, 380), (450, 520), (330, 660), (570, 660))
    face = Face(box=(180.0, 180.0, 720.0, 800.0), score=0.9, landmarks=lm)
    out, regions, changed = painter.paint(rgb, [face], seed)
    assert changed[520, 450] and not changed[20, 20] and changed.sum() > 100_000
    no_sr = SurrogatePainter(generator=painter.gen, super_resolution=None, identity_check=False).paint(
        rgb, [face], seed
    )[0]
    assert not np.array_equal(out, no_sr)


def test_bad_input(painter, photo, seed) -> None:
    rgb, faces = photo
    with pytest.raises(InputError, match="five landmarks"):
        painter.paint(rgb, [Face(box=(1.0, 1.0, 50.0, 50.0), score=0.9, landmarks=())], seed)
    with pytest.raises(InputError, match="track numbers"):
        painter.paint(rgb, faces, seed, tracks=[0, 1])
    with pytest.raises(InputError, match="RGB uint8"):
        painter.paint(rgb[..., 0], faces, seed)


def test_colour_is_matched_to_the_photo() -> None:
    from anonymizer.pipeline.surrogate import match_colour

    rng = np.random.default_rng(0)
    generated = rng.uniform(0, 255, (64, 64, 3)) * np.array([1.0, 0.5, 0.2])  # a reddish face
    inside = np.zeros((64, 64), bool)
    inside[16:48, 16:48] = True
    grey = np.repeat(rng.integers(60, 120, (64, 64, 1), dtype=np.uint8), 3, axis=2)  # a greyscale photo
    out = match_colour(generated, grey, inside)
    assert out.dtype == np.uint8 and np.array_equal(out[..., 0], out[..., 2])  # grey stays grey
    assert abs(float(out[inside].mean()) - float(grey[inside].mean())) < 3
    warm = np.zeros((64, 64, 3), np.uint8) + np.array([200, 150, 100], np.uint8)
    warm[inside] = warm[inside] + rng.integers(0, 30, (int(inside.sum()), 3), dtype=np.uint8)
    out = match_colour(generated, warm, inside)
    np.testing.assert_allclose(out[inside].mean(0), warm[inside].mean(0), atol=3)


def test_a_face_the_surrogate_cannot_cover_is_covered_solid(painter, photo, seed) -> None:
    from anonymizer.ops.masks import box_coverage
    from anonymizer.pipeline.surrogate import COVER_MIN

    rgb, faces = photo
    _, regions, changed = painter.paint(rgb, faces, seed)
    assert len(regions) == 1  # a frontal face: the surrogate covers it
    # landmarks gone astray (all five within a few pixels of the nose): the mask would be a sliver
    nose = np.asarray(faces[0].landmarks[2])
    squeezed = Face(
        box=faces[0].box, score=faces[0].score, landmarks=tuple(map(tuple, nose + np.arange(10).reshape(5, 2) * 0.3))
    )
    out, regions, changed = painter.paint(rgb, [squeezed], seed)
    assert [r.shape for r in regions][-1] == "ellipse"
    x1, y1, x2, y2 = (int(v) for v in faces[0].box)
    centre = out[(y1 + y2) // 2 - 5 : (y1 + y2) // 2 + 5, (x1 + x2) // 2 - 5 : (x1 + x2) // 2 + 5]
    assert centre.max() == 0 and box_coverage(changed.astype(np.float32), faces[0].box) >= COVER_MIN


def test_a_generator_with_a_palette_paints_its_rows(photo, seed) -> None:
    """With a palette, candidate k of track t is the seed's (t * ATTEMPTS + k)-th row (no two candidates of
    one seed share a row), painted exactly as that code; tracks past the palette get the seed's
    standard-normal codes, numbered the same way."""
    gen = coded_generator(1)
    gen.palette.normal_()
    with_palette = SurrogatePainter(generator=gen, identity_check=False)
    rows = [[seed.palette_index(t * ATTEMPTS + k, len(gen.palette)) for k in range(ATTEMPTS)] for t in range(3)]
    assert len({r for rs in rows for r in rs}) == 3 * ATTEMPTS
    for t, rs in enumerate(rows):
        assert torch.equal(with_palette.code(seed, t), gen.palette[rs[0]][None])
        for k, row in enumerate(rs):
            assert torch.equal(with_palette.code(seed, t, k), gen.palette[row][None])
    past = len(gen.palette) // ATTEMPTS + 2
    assert torch.equal(with_palette.code(seed, past, 1), torch.from_numpy(seed.code(past * ATTEMPTS + 1))[None])
    with pytest.raises(InputError, match="attempt"):
        with_palette.code(seed, 0, ATTEMPTS)
    rgb, faces = photo
    out, _, changed = with_palette.paint(rgb, faces, seed)
    assert np.array_equal(out, fixed_row(gen, rows[0][0]).paint(rgb, faces, seed)[0]) and changed.any()
    assert not np.array_equal(out, painter_without(gen).paint(rgb, faces, seed)[0])
    # row weights: the painter hands out rows as the seed's weighted order says; a row of weight 0 comes last
    gen.palette_weight.fill_(1.0)
    gen.palette_weight[rows[0][0]] = 0.0
    weighted = SurrogatePainter(generator=gen, identity_check=False)
    w = gen.palette_weight.double().numpy()
    for t in range(3):
        row = seed.palette_index(t * ATTEMPTS, len(gen.palette), w)
        assert row != rows[0][0] and torch.equal(weighted.code(seed, t), gen.palette[row][None])  # type: ignore[index]
    last = len(gen.palette) - 1
    assert torch.equal(weighted.code(seed, last // ATTEMPTS, last % ATTEMPTS), gen.palette[rows[0][0]][None])


def test_an_ensemble_paints_each_row_with_the_network_it_names(photo, seed) -> None:
    """An ensemble's rows (surrogate_palette --weigh --join) are painted by their own network: a row of the
    other network's paints exactly as that network alone, and the candidate says which network it is."""
    own, other = coded_generator(2), coded_generator(3)
    pal = torch.randn(8, CODE_DIM)
    ens = SurrogateGenerator()
    nets = torch.tensor([0, 1] * 4)
    ens.load_state_dict(
        {
            **own.state_dict(),
            **{f"alt.0.{k}": v for k, v in other.state_dict().items() if not k.startswith("palette")},
            "palette": pal,
            "palette_weight": torch.zeros(8),
            "palette_net": nets,
        }
    )
    alone = {}
    for k, g in ((0, own), (1, other)):
        g.set_palette(pal.clone())
        alone[k] = SurrogatePainter(generator=g, identity_check=False)
    painter = SurrogatePainter(generator=ens, identity_check=False)
    rgb, faces = photo
    row = seed.palette_index(0, 8)
    code, net = painter.candidate(seed, 0)
    assert torch.equal(code, pal[row][None]) and net == int(nets[row])  # type: ignore[index]
    assert torch.equal(painter.code(seed, 0), code)
    out = painter.paint(rgb, faces, seed)[0]
    assert np.array_equal(out, alone[net].paint(rgb, faces, seed)[0])
    assert not np.array_equal(out, alone[1 - net].paint(rgb, faces, seed)[0])


def fixed_row(gen: SurrogateGenerator, row: int) -> SurrogatePainter:
    """A painter that gives every track and candidate the code of one palette row, without a check."""

    class Fixed(SurrogatePainter):
        def candidate(self, seed: SurrogateSeed, track: int, attempt: int = 0) -> tuple[torch.Tensor, int]:
            return gen.palette[row][None], 0

    return Fixed(generator=gen, identity_check=False)


class ScriptedCheck:
    """Stands in for IdentityNet: the original face embeds at 0, each candidate painted after it at the
    next of ``distances`` (along one axis), so the check sees exactly those distances."""

    def __init__(self, distances: list[float]) -> None:
        self.distances = list(distances)
        self.calls = 0

    def embed(self, rgb: np.ndarray, face: Face) -> np.ndarray:
        self.calls += 1
        v = np.zeros(128, np.float32)
        if self.calls > 1:
            v[0] = self.distances[self.calls - 2]
        return v


def test_the_identity_check_takes_the_first_candidate_far_enough(photo, seed) -> None:
    gen = coded_generator(2)
    gen.palette.normal_()
    rgb, faces = photo
    plain = SurrogatePainter(generator=gen, identity_check=False)
    row = [seed.palette_index(k, len(gen.palette)) for k in range(ATTEMPTS)]
    by_candidate = [fixed_row(gen, r).paint(rgb, faces, seed)[0] for r in row]
    assert all(not np.array_equal(by_candidate[0], o) for o in by_candidate[1:])

    def checked(distances: list[float], choices: dict[int, int] | None = None) -> tuple[np.ndarray, ScriptedCheck]:
        painter = SurrogatePainter(generator=gen)
        painter.check = ScriptedCheck(distances)  # type: ignore[assignment]
        return painter.paint(rgb, faces, seed, choices=choices)[0], painter.check  # type: ignore[return-value]

    # the first candidate is far enough: painted once, as without the check
    out, check = checked([CHECK_DISTANCE + 0.1])
    assert np.array_equal(out, plain.paint(rgb, faces, seed)[0]) and check.calls == 2
    # the first two are too close to the original: the third is taken and nothing more is tried
    choices: dict[int, int] = {}
    out, check = checked([0.3, CHECK_DISTANCE - 0.01, 0.9, 1.0], choices)
    assert np.array_equal(out, by_candidate[2]) and check.calls == 4 and choices == {0: 2}
    # none is far enough: the farthest is taken
    out, _ = checked([0.3, CHECK_DISTANCE - 0.05, 0.4, 0.2])
    assert np.array_equal(out, by_candidate[1])
    # a video's later frames: the track keeps the candidate taken, without checking again
    out, check = checked([], {0: 3})
    assert np.array_equal(out, by_candidate[3]) and check.calls == 0


def test_the_real_check_leaves_a_different_person(photo) -> None:
    """The shipped generator and the check's IdentityNet: whatever password, the astronaut's surrogate is
    someone else to it (further than CHECK_DISTANCE, or the check would have tried another candidate)."""
    from anonymizer.audit.recognizers import distance, get_recognizer

    rgb, faces = photo
    painter = SurrogatePainter()
    rec = check_recognizer()
    assert painter.check is rec
    # the check's own weights (fine-tuned on surrogates), not the audit's IdentityNet
    audit = get_recognizer("identity_net")
    assert not all(
        torch.equal(a, b)
        for a, b in zip(rec.model.state_dict().values(), audit.model.state_dict().values(), strict=True)
    )  # type: ignore[attr-defined]
    ref = rec.embed(rgb, faces[0])
    for k in range(3):
        out = painter.paint(rgb, faces, SurrogateSeed(bytes([k]) * 32))[0]
        assert distance(ref, rec.embed(out, faces[0])) > CHECK_DISTANCE


def painter_without(gen: SurrogateGenerator) -> SurrogatePainter:
    bare = SurrogateGenerator()
    bare.load_state_dict({k: v for k, v in gen.state_dict().items() if k != "palette"})
    return SurrogatePainter(generator=bare, identity_check=False)
