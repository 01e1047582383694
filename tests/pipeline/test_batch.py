"""Batches: collecting inputs, planning the mirrored output tree, running jobs so one bad file never stops the rest."""

from __future__ import annotations

from pathlib import Path

import pytest

from anonymizer.errors import InputError, MediaError
from anonymizer.pipeline.batch import (
    BatchReport,
    Job,
    collect_inputs,
    output_suffix,
    plan,
    plan_jobs,
    run_jobs,
    walk_inputs,
)


def _touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """in/ with nested image files, hidden entries and non-image files (contents do not matter here)."""
    root = tmp_path / "in"
    for rel in (
        "a.jpg",
        "b.PNG",
        "notes.txt",
        "clip.gif",
        "noext",
        ".hidden.jpg",
        ".cache/c.jpg",
        "sub/d.jpeg",
        "sub/e.webp",
        "sub/.f.png",
        "sub/deeper/g.tif",
        "sub/deeper/h.bmp",
        "sub/deeper/readme.md",
    ):
        _touch(root / rel)
    (root / "empty_dir").mkdir()
    (root / "dir.jpg").mkdir()  # a folder with an image suffix is not a file
    return root


def test_collect_inputs_walks_recursively(tree: Path) -> None:
    got = collect_inputs([tree])
    rels = [rel.as_posix() for _, rel in got]
    assert rels == ["a.jpg", "b.PNG", "sub/d.jpeg", "sub/deeper/g.tif", "sub/deeper/h.bmp", "sub/e.webp"]
    assert all(f == tree / rel for f, rel in got)


def test_collect_inputs_keeps_explicit_files(tree: Path) -> None:
    got = collect_inputs([tree / "notes.txt", tree / ".hidden.jpg", tree / "sub" / "d.jpeg"])
    assert got == [
        (tree / "notes.txt", Path("notes.txt")),
        (tree / ".hidden.jpg", Path(".hidden.jpg")),
        (tree / "sub" / "d.jpeg", Path("d.jpeg")),
    ]


def test_collect_inputs_empty_and_missing(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert collect_inputs([tmp_path / "empty"]) == []
    assert collect_inputs([]) == []
    missing = tmp_path / "nope"
    with pytest.raises(InputError) as info:
        collect_inputs([tmp_path / "empty", missing])
    assert str(missing) in str(info.value)


def test_walk_lists_what_it_leaves_out_and_why(tree: Path) -> None:
    skipped = {p.relative_to(tree).as_posix(): why for p, why in walk_inputs([tree]).skipped}
    assert skipped == {
        ".cache": "hidden folder",
        ".hidden.jpg": "hidden file",
        "clip.gif": "not a photo or video",  # its content is not an image: a real GIF is taken (below)
        "noext": "not a photo or video",
        "notes.txt": "not a photo or video",
        "sub/.f.png": "hidden file",
        "sub/deeper/readme.md": "not a photo or video",
    }


def test_walk_recognises_photos_and_videos_by_content(tmp_path: Path) -> None:
    import sys

    from PIL import Image

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from videoclips import make_clip

    root = tmp_path / "in"
    root.mkdir()
    Image.new("RGB", (16, 16), "red").save(root / "still.gif")
    Image.new("RGB", (16, 16), "blue").save(root / "scan", format="PNG")
    make_clip(root / "clip.mp4", frames=3, audio=False)
    (root / "clip.mp4").rename(root / "clip")
    (root / "photo.vault").write_bytes(b"sealed")  # our own sidecar: neither taken nor listed
    found = walk_inputs([root])
    assert [rel.as_posix() for _, rel in found.files] == ["clip", "scan", "still.gif"] and not found.skipped
    jobs = {j.src.name: j for j in plan([root], tmp_path / "out").jobs}
    assert jobs["clip"].is_video and jobs["clip"].dest.name == "clip.mkv"  # Matroska holds any codec
    assert not jobs["scan"].is_video and jobs["scan"].dest.name == "scan.png"
    assert jobs["still.gif"].dest.name == "still.png"
    # named, too
    assert plan([root / "clip"], tmp_path / "out").jobs[0].is_video


def test_plan_refuses_a_folder_with_nothing_to_do(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no photos or videos in it") as info:
        plan([empty], tmp_path / "out")
    assert str(empty) in str(info.value)
    _touch(empty / "notes.txt", b"text")
    with pytest.raises(InputError, match=r"1 other file\(s\) skipped"):
        plan([empty], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_plan_jobs_mirrors_the_tree(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    jobs = plan_jobs([tree], out)
    assert all(isinstance(j, Job) for j in jobs)
    got = {j.src.relative_to(tree).as_posix(): j.dest.relative_to(out.resolve()).as_posix() for j in jobs if j.dest}
    assert got == {
        "a.jpg": "a.jpg",
        "b.PNG": "b.PNG",
        "sub/d.jpeg": "sub/d.jpeg",
        "sub/e.webp": "sub/e.webp",
        "sub/deeper/g.tif": "sub/deeper/g.tif",
        "sub/deeper/h.bmp": "sub/deeper/h.bmp",
    }
    assert not out.exists()  # planning writes nothing


def test_plan_jobs_format_changes_suffix(tree: Path, tmp_path: Path) -> None:
    out = (tmp_path / "out").resolve()
    dests = {j.src.name: j.dest for j in plan_jobs([tree], out, fmt="png")}
    assert dests["a.jpg"] == out / "a.png"
    assert dests["b.PNG"] == out / "b.PNG"  # already PNG: its own spelling is kept
    assert dests["g.tif"] == out / "sub" / "deeper" / "g.png"
    dests = {j.src.name: j.dest for j in plan_jobs([tree], out, fmt="JPEG")}
    assert dests["d.jpeg"] == out / "sub" / "d.jpeg"
    assert dests["b.PNG"] == out / "b.jpg"
    assert dests["h.bmp"] == out / "sub" / "deeper" / "h.jpg"


def test_output_suffix() -> None:
    assert output_suffix(Path("x.JPG"), None) == ".JPG"
    assert output_suffix(Path("x.txt"), None) == ".png"
    assert output_suffix(Path("x"), "webp") == ".webp"
    assert output_suffix(Path("x.tiff"), "tif") == ".tiff"
    with pytest.raises(InputError, match="unsupported output format"):
        output_suffix(Path("x.jpg"), "gif")


def test_plan_jobs_jpe_with_format(tmp_path: Path) -> None:
    # Regression: '.jpe' was walked (IMAGE_SUFFIXES) but not a known format, so one .jpe aborted the plan.
    _touch(tmp_path / "in" / "photo.jpe")
    jobs = plan_jobs([tmp_path / "in"], tmp_path / "out", fmt="png")
    assert [j.dest.name for j in jobs if j.dest] == ["photo.png"]


def test_plan_jobs_without_output() -> None:
    here = Path(__file__)
    assert plan_jobs([here], None) == [Job(here, None)]


def test_plan_jobs_no_inputs(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no inputs"):
        plan_jobs([], tmp_path / "out")


@pytest.mark.parametrize("out_rel", ["in/out", "in", "in/sub/deeper/out", "in/../in/sub/../out"])
def test_plan_jobs_refuses_output_inside_input(tree: Path, tmp_path: Path, out_rel: str) -> None:
    with pytest.raises(InputError) as info:
        plan_jobs([tree], tmp_path / out_rel)
    assert "inside the input folder" in str(info.value)
    assert str(tree) in str(info.value)


def test_plan_jobs_output_next_to_input_is_fine(tree: Path, tmp_path: Path) -> None:
    jobs = plan_jobs([tree], tmp_path / "in-out")  # a sibling whose name starts like the input's
    assert len(jobs) == 6


def test_plan_jobs_refuses_overwriting_an_input(tree: Path) -> None:
    src = tree / "a.jpg"
    with pytest.raises(InputError) as info:
        plan_jobs([src], tree)
    assert "overwrite an input" in str(info.value) and str(src) in str(info.value)
    with pytest.raises(InputError, match="overwrite an input"):
        plan_jobs([tree / "sub" / "e.webp", tree / "a.jpg"], tree, fmt="jpeg")  # e.webp -> in/e.jpg is fine, a.jpg not


def test_plan_jobs_refuses_output_that_is_an_input_file(tree: Path) -> None:
    with pytest.raises(InputError, match="output folder is an input file"):
        plan_jobs([tree / "a.jpg"], tree / "a.jpg")


# run_jobs ---------------------------------------------------------------------------------------------


def test_run_jobs_one_failure_does_not_stop_the_rest(tmp_path: Path) -> None:
    jobs = [Job(tmp_path / f"{name}.jpg", tmp_path / "out" / f"{name}.jpg") for name in ("a", "bad", "c", "gone", "e")]
    seen: list[tuple[str, object, str | None]] = []

    def work(job: Job) -> str:
        if job.src.stem == "bad":
            raise InputError("truncated or corrupt image", path=job.src)
        if job.src.stem == "gone":
            raise FileNotFoundError(2, "No such file or directory", str(job.src))
        return job.src.stem.upper()

    report = run_jobs(jobs, work, on_result=lambda job, res, err: seen.append((job.src.stem, res, err)))
    assert isinstance(report, BatchReport) and not report.ok
    assert report.done == [tmp_path / "a.jpg", tmp_path / "c.jpg", tmp_path / "e.jpg"]
    assert [src for src, _ in report.failed] == [tmp_path / "bad.jpg", tmp_path / "gone.jpg"]
    for src, error in report.failed:
        assert str(src) in error
    assert "truncated" in report.failed[0][1] and "No such file" in report.failed[1][1]
    assert [s[0] for s in seen] == ["a", "bad", "c", "gone", "e"]
    assert seen[0] == ("a", "A", None) and seen[1][1] is None and seen[1][2] == report.failed[0][1]


def test_run_jobs_error_without_path_is_prefixed_with_the_file(tmp_path: Path) -> None:
    def work(job: Job) -> None:
        raise MediaError("cannot encode JPEG: broken")

    report = run_jobs([Job(tmp_path / "x.jpg", None)], work)
    assert report.failed == [(tmp_path / "x.jpg", f"{tmp_path / 'x.jpg'}: cannot encode JPEG: broken")]


def test_run_jobs_duplicate_destination_fails_the_later_job(tmp_path: Path) -> None:
    dest = tmp_path / "out" / "a.png"
    jobs = [
        Job(tmp_path / "a.jpg", dest),
        Job(tmp_path / "a.png", dest),
        Job(tmp_path / "b.png", tmp_path / "out" / "b.png"),
    ]
    calls: list[Path] = []
    report = run_jobs(jobs, lambda job: calls.append(job.src))
    assert calls == [tmp_path / "a.jpg", tmp_path / "b.png"]  # the later duplicate never runs
    assert report.done == [tmp_path / "a.jpg", tmp_path / "b.png"]
    ((src, error),) = report.failed
    assert src == tmp_path / "a.png"
    assert str(src) in error and str(dest) in error and "already written" in error


def test_run_jobs_empty_and_without_destinations() -> None:
    assert run_jobs([], lambda job: None).ok
    jobs = [Job(Path("a.jpg"), None), Job(Path("a.jpg"), None)]  # detect-style jobs: no destination, no clash
    report = run_jobs(jobs, lambda job: 1)
    assert report.ok and len(report.done) == 2


def test_the_manifest_skips_only_files_finished_the_same_way(tmp_path) -> None:
    import os

    from anonymizer.pipeline.batch import Job, stale_parts
    from anonymizer.pipeline.cluster import MANIFEST, Manifest

    src, out = tmp_path / "a.png", tmp_path / "out"
    src.write_bytes(b"photo")
    out.mkdir()
    dest = out / "a.png"
    job = Job(src, dest)
    m = Manifest(out, "opts1")
    assert not m.finished(job)
    dest.write_bytes(b"anonymized")
    m.record(job)
    text = (out / MANIFEST).read_text()
    assert str(tmp_path) not in text and "a.png" in text  # no source path: the folder gets published
    with open(out / MANIFEST, "a") as f:
        f.write('{"output": "cut short by a cra')  # a crash mid-line: ignored on reading
    assert Manifest(out, "opts1").finished(job)
    assert not Manifest(out, "opts2").finished(job)  # other options: done again
    st = src.stat()
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert not Manifest(out, "opts1").finished(job)  # the source changed
    m.record(job)
    dest.unlink()
    assert not Manifest(out, "opts1").finished(job)  # the output is gone
    (out / ".a.png.1234abcd.part").write_bytes(b"x")
    (out / ".a.png.piece00001.part.png").write_bytes(b"x")
    (out / "..a.png.piece00001.part.png.beef.part.png").write_bytes(b"x")
    (out / ".b.png.1234abcd.part").write_bytes(b"x")  # another file's: kept
    assert [p.name for p in stale_parts(dest)] == [
        "..a.png.piece00001.part.png.beef.part.png",
        ".a.png.1234abcd.part",
        ".a.png.piece00001.part.png",
    ]
