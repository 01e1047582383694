"""`anonymize --backend ray`: photos, videos and pieces of long videos spread over a Ray cluster.

- Each worker is a Ray actor that loads the models once (the first file it gets) and keeps them.
- A long video is cut at keyframes into pieces of about ``segment_seconds``; pieces are anonymized in
  parallel (:class:`~anonymizer.media.video.Transcoder` ``segment=True``), then joined on the driver
  without re-encoding, with the source's timestamps and its audio copied packet for packet. With a key,
  each piece seals its original regions for a key pair the driver makes for this run (nothing in clear
  travels through Ray's object store); the driver opens them and seals one vault for the joined video,
  so `restore` works as for a video anonymized in one piece. Faces are tracked within a piece: a person
  crossing a piece boundary starts a new track (and, with ``--method surrogate``, a new surrogate).
- A worker that dies (its process or node lost) is replaced, and what it was doing is retried on
  another worker, up to :data:`MAX_ATTEMPTS` times. Outputs are written atomically by whoever finishes
  them; temporaries left by a dead worker are removed.
- ``.anonymizer-manifest.jsonl`` in the output folder records every finished file (its output path, and
  digests of the options and of the source's path, size and modification time: nothing the published
  outputs do not show); the same command run again skips those files.
- Keys: workers get :meth:`~anonymizer.vault.keys.Key.for_workers`, never the password (the password
  KDF runs once, here). With ``--recipient`` only public keys reach the workers.

Inputs and the output folder must be on storage every node sees (the same paths).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import InputError, MediaError
from ..vault.keys import Identity, Key, public_bytes
from ..vault.surrogate import SurrogateSeed
from .batch import BatchReport, Job, describe_error, remove_stale_parts
from .options import AnonymizeOptions

MANIFEST = ".anonymizer-manifest.jsonl"
MAX_ATTEMPTS = 3


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise InputError("--backend ray needs Ray: pip install 'anonymizer[ray]'") from None
    return ray


# --------------------------------------------------------------------------------------------- manifest


class Manifest:
    """Finished files of an output folder, one JSON line each; only the driver writes it.

    The output folder is what gets published, so the manifest names nothing the outputs do not already
    show: each line holds the output's path inside the folder, a digest of the options, and a digest of
    the source's absolute path, size and modification time (a changed or moved source is done again).
    No source path, no time, no secret."""

    def __init__(self, folder: Path, options: str) -> None:
        self.folder = Path(folder)
        self.path = self.folder / MANIFEST
        self.options = options
        self._done: dict[str, dict[str, Any]] = {}
        if self.path.is_file():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    entry = json.loads(line)
                    self._done[str(entry["output"])] = entry
                except (ValueError, KeyError, TypeError):
                    continue  # a line cut short by a crash: that file is simply done again

    @staticmethod
    def _source(src: Path) -> str:
        st = src.stat()
        return hashlib.sha256(f"{src.resolve()}\0{st.st_size}\0{st.st_mtime_ns}".encode()).hexdigest()[:32]

    def _output(self, job: Job) -> str | None:
        if job.dest is None or not job.dest.resolve().is_relative_to(self.folder.resolve()):
            return None
        return job.dest.resolve().relative_to(self.folder.resolve()).as_posix()

    def finished(self, job: Job) -> bool:
        """True when ``job`` was finished by a run with the same options, its output is still there and
        its source has not changed since."""
        out = self._output(job)
        entry = self._done.get(out) if out is not None else None
        return (
            entry is not None
            and job.dest is not None
            and job.dest.is_file()
            and entry.get("options") == self.options
            and entry.get("source") == self._source(job.src)
        )

    def record(self, job: Job) -> None:
        out = self._output(job)
        if out is None:
            return
        entry = {"output": out, "options": self.options, "source": self._source(job.src)}
        self._done[out] = entry
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())


# ------------------------------------------------------------------------------------------------ worker


class Worker:
    """What one Ray actor runs. Errors come back as a message (the file fails, the batch goes on)."""

    def __init__(
        self,
        opts: AnonymizeOptions,
        key: Key | None,
        seed: SurrogateSeed | None,
        threads: int | None,
        transit: bytes | None = None,
    ) -> None:
        from ..nn.runtime import configure_runtime

        configure_runtime(threads or 1)  # the CPUs Ray gave this actor
        self.opts, self.key, self.seed = opts, key, seed
        self.transit = transit  # the driver's public key for this run: pieces seal their regions for it

    def file(self, job: Job) -> dict[str, Any]:
        from .jobs import anonymize_file

        try:
            return {"row": anonymize_file(job, self.opts, self.key, self.seed)}
        except Exception as exc:
            return {"error": describe_error(job.src, exc)}

    def piece(
        self, job: Job, part: Path, start: float | None, end: float | None, seed: SurrogateSeed | None
    ) -> dict[str, Any]:
        """Anonymize [start, end) of ``job.src`` into ``part``. With a key, the original regions come back
        sealed for the driver's key of this run (``sealed``: vault bytes), which re-seals them into the
        joined video's vault."""
        from .jobs import run_video

        regions: list[tuple[dict[str, Any], bytes]] | None = [] if self.key is not None else None
        try:
            rep = run_video(
                job.src,
                part,
                replace(self.opts, start=start, end=end, cut=False),
                surrogate_seed=seed,
                segment=True,
                regions_out=regions,
            )
            sealed = _seal_for_driver(regions, self.transit) if regions is not None else None
        except Exception as exc:
            return {"error": describe_error(job.src, exc)}
        return {
            "frames": rep.frames,
            "tracks": rep.tracks,
            "plate_tracks": rep.plate_tracks,
            "person_tracks": rep.person_tracks,
            "sealed": sealed,
            "count": rep.regions,
        }


def _seal_for_driver(regions: list[tuple[dict[str, Any], bytes]], transit: bytes | None) -> bytes:
    """A piece's original regions as a vault only the driver's key of this run opens."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

    from ..vault.format import Record, seal

    if transit is None:
        raise InputError("a piece with a key needs the driver's public key to seal its regions for")
    recipient = Key.from_recipients([X25519PublicKey.from_public_bytes(transit)])
    return seal([Record(meta=meta, payload=payload) for meta, payload in regions], recipient, info={"kind": "piece"})


# ------------------------------------------------------------------------------------------------ driver


@dataclass
class _Item:
    """One unit of work: a whole file, or piece ``index`` of a video."""

    job: Job
    index: int | None = None
    start: float | None = None
    end: float | None = None
    first_frame: int = 0
    seed: SurrogateSeed | None = None
    attempts: int = 0

    @property
    def part(self) -> Path:
        assert self.job.dest is not None and self.index is not None
        return self.job.dest.with_name(f".{self.job.dest.name}.piece{self.index:05d}.part{self.job.dest.suffix}")


@dataclass
class _Video:
    """The pieces of one video and what came back from them. With a key, each piece's original regions
    are sealed as soon as the pieces before it are in (the vault spools to disk), so the driver never
    holds more than the pieces that came back out of order."""

    items: list[_Item]
    results: dict[int, dict[str, Any]] = field(default_factory=dict)
    writer: Any = None  # a VaultWriter with a key
    transit: Any = None  # the driver's Identity of this run, which opens what the pieces sealed
    sealed: int = 0  # pieces whose regions are in the writer
    frames: int = 0  # frames of those pieces

    def seal_ready(self) -> None:
        from ..vault.format import open_vault

        while self.writer is not None and self.sealed in self.results:
            r, it = self.results[self.sealed], self.items[self.sealed]
            for rec in open_vault(r.pop("sealed"), self.transit)[1]:
                meta = rec.meta
                self.writer.add(
                    dict(
                        meta,
                        frame=int(meta["frame"]) + self.frames,
                        source_frame=int(meta["source_frame"]) + it.first_frame,
                    ),
                    rec.payload,
                )
            self.frames += int(r["frames"])
            self.sealed += 1


def plan_pieces(job: Job, opts: AnonymizeOptions, segment_seconds: float) -> list[_Item]:
    """Pieces of a video, cut at keyframes at least ``segment_seconds`` apart; one item for a photo, a
    short video, a video with --start/--end, or ``segment_seconds`` 0."""
    from ..media.video import keyframes

    if not job.is_video or segment_seconds <= 0 or opts.start is not None or opts.end is not None or job.dest is None:
        return [_Item(job)]
    keys = keyframes(job.src)
    cuts = [keys[0]] if keys else []
    for k in keys[1:]:
        if k.time - cuts[-1].time >= segment_seconds:
            cuts.append(k)
    if len(cuts) < 2:
        return [_Item(job)]
    return [
        _Item(
            job,
            index=i,
            start=None if i == 0 else k.time,
            end=cuts[i + 1].time if i + 1 < len(cuts) else None,
            first_frame=0 if i == 0 else k.index,
        )
        for i, k in enumerate(cuts)
    ]


def run_on_ray(
    jobs: list[Job],
    out_dir: Path,
    opts: AnonymizeOptions,
    key: Key | None,
    seed: SurrogateSeed | None,
    *,
    address: str | None = None,
    workers: int | None = None,
    threads: int | None = None,
    segment_seconds: float = 30.0,
    progress: bool = False,
    on_result: Callable[[Job, object | None, str | None], None] | None = None,
    on_workers: Callable[[list[Any]], None] | None = None,
) -> BatchReport:
    """Anonymize ``jobs`` on Ray (see the module docstring); the same per-file contract as
    :func:`~anonymizer.pipeline.batch.run_jobs`: one bad file never stops the rest. Ray is started on
    this machine unless it is already running in this process or ``address`` names a cluster; nothing
    is started when every file was finished by an earlier run. ``on_workers`` hears the live actor
    handles whenever they change (for monitoring)."""
    ray = _ray()  # before anything else: a clear error when Ray is not installed
    transit = Identity.generate() if key is not None else None  # pieces seal their regions for it (this run only)
    run = _Run(out_dir, opts, key, transit, len(jobs), progress, on_result)
    try:
        run.plan(jobs, seed, segment_seconds)
        if not run.queue:
            return run.report
        cpus = threads or 1
        worker_key = key.for_workers() if key is not None else None  # never the password itself
        transit_public = public_bytes(transit.public_key) if transit is not None else None
        started_here = _start_ray(ray, address, workers, cpus)
        pool: _Pool | None = None
        try:
            pool = _Pool(ray, cpus, (opts, worker_key, seed, threads, transit_public), on_workers)
            pool.work(run, workers or max(1, int(ray.cluster_resources().get("CPU", 1) // cpus)))
        finally:
            if pool is not None:
                pool.close()
            if started_here:
                ray.shutdown()
    finally:
        run.bar.close()
    return run.report


def _start_ray(ray: Any, address: str | None, workers: int | None, cpus: int) -> bool:
    """Start or join Ray unless this process already has; True when it was started here."""
    if ray.is_initialized():
        return False
    local = {"num_cpus": (workers or os.cpu_count() or 1) * cpus} if address is None else {}
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level="error", **local)
    except Exception as exc:  # Ray raises ConnectionError, RuntimeError, ValueError... for a bad address
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        raise InputError(f"cannot start or join {where}: {exc}") from None
    return True


class _Run:
    """The driver's bookkeeping of one run: the queue of items, the videos in pieces, the report, the
    manifest and the progress bar (one step per file)."""

    def __init__(
        self,
        out_dir: Path,
        opts: AnonymizeOptions,
        key: Key | None,
        transit: Identity | None,
        total: int,
        progress: bool,
        on_result: Callable[[Job, object | None, str | None], None] | None,
    ) -> None:
        from tqdm import tqdm

        self.opts, self.key, self.transit, self.on_result = opts, key, transit, on_result
        self.report = BatchReport()
        self.manifest = Manifest(out_dir, opts.fingerprint(key))
        self.bar = tqdm(total=total, desc="anonymize (ray)", unit="file", disable=not progress, leave=False)
        self.queue: deque[_Item] = deque()
        self.videos: dict[Path, _Video] = {}

    def plan(self, jobs: list[Job], seed: SurrogateSeed | None, segment_seconds: float) -> None:
        """Queue the files (videos in pieces) that are not finished already; refuse two inputs that would
        write the same output."""
        seen: set[Path] = set()
        for job in jobs:
            if job.dest is not None and job.dest in seen:
                self.finish_job(job, None, f"{job.src}: output {job.dest} is already written by another input")
                self.bar.update(1)
                continue
            if job.dest is not None:
                seen.add(job.dest)
            if self.manifest.finished(job):
                self.report.skipped.append(job.src)
                self.bar.update(1)
                continue
            try:
                items = self._pieces(job, seed, segment_seconds)
            except Exception as exc:
                self.finish_job(job, None, describe_error(job.src, exc))
                self.bar.update(1)
                continue
            if items[0].index is not None:
                from ..vault.format import VaultWriter

                writer = VaultWriter(self.key) if self.key is not None else None
                self.videos[job.src] = _Video(items, writer=writer, transit=self.transit)
            self.queue.extend(items)

    def _pieces(self, job: Job, seed: SurrogateSeed | None, segment_seconds: float) -> list[_Item]:
        items = plan_pieces(job, self.opts, segment_seconds)
        if items[0].index is not None and self.opts.method == "surrogate" and seed is not None:
            from ..media.files import sha256_file

            base = seed.for_context(sha256_file(job.src).encode())  # one digest of the video, here
            for it in items:  # different pieces, different codes: no two people share a surrogate
                it.seed = base.for_context(f"piece {it.index}".encode())
        return items

    def finish_job(self, job: Job, row: dict[str, Any] | None, error: str | None) -> None:
        if job.dest is not None:
            remove_stale_parts(job.dest)
        if error is None:
            assert row is not None
            self.report.done.append(job.src)
            self.manifest.record(job)
        else:
            self.report.failed.append((job.src, error))
        if self.on_result is not None:
            self.on_result(job, row, error)

    def done(self, item: _Item, result: dict[str, Any]) -> None:
        """What a worker gave back for ``item``."""
        if item.index is None:
            self.finish_job(item.job, result.get("row"), result.get("error"))
            self.bar.update(1)
        elif item.job.src not in self.videos:
            item.part.unlink(missing_ok=True)  # a late piece of a video that has already failed
        elif "error" in result:
            self.fail(item, result["error"])
        else:
            self._piece_done(item, result)

    def _piece_done(self, item: _Item, result: dict[str, Any]) -> None:
        assert item.index is not None
        video = self.videos[item.job.src]
        video.results[item.index] = result
        video.seal_ready()
        self.bar.update(1 / len(video.items))
        if len(video.results) == len(video.items):
            del self.videos[item.job.src]
            row = error = None
            try:
                row = _join(item.job, video, targets=self.opts.targets)
            except Exception as exc:
                error = describe_error(item.job.src, exc)
            self.finish_job(item.job, row, error)

    def fail(self, item: _Item, error: str) -> None:
        """``item`` failed: a file fails; a piece fails its whole video (once; the other pieces' results
        are dropped)."""
        if item.index is None:
            self.finish_job(item.job, None, error)
            self.bar.update(1)
            return
        video = self.videos.pop(item.job.src, None)
        if video is None:
            return  # this video has already failed
        self.bar.update(1 - len(video.results) / len(video.items))
        self.finish_job(item.job, None, error)


class _Pool:
    """Worker actors going through a run's queue; a lost actor is replaced and its item given to a live
    one, up to :data:`MAX_ATTEMPTS` times."""

    def __init__(
        self, ray: Any, cpus: int, args: tuple[Any, ...], on_workers: Callable[[list[Any]], None] | None = None
    ) -> None:
        self.ray, self.args, self.on_workers = ray, args, on_workers  # args: what each Worker is made with
        self.live: list[Any] = []
        self.actor_cls = ray.remote(num_cpus=cpus, max_restarts=0)(Worker)
        self.created: list[Any] = []
        self.idle: list[Any] = []
        self.pending: dict[Any, tuple[Any, _Item]] = {}

    def _new_actor(self) -> Any:
        actor = self.actor_cls.remote(*self.args)
        self.created.append(actor)
        return actor

    def work(self, run: _Run, n_workers: int) -> None:
        self.idle = [self._new_actor() for _ in range(min(n_workers, len(run.queue)))]
        self._set_live(list(self.idle))
        self._submit(run.queue)
        while self.pending:
            ready, _ = self.ray.wait(list(self.pending), num_returns=1)
            actor, item = self.pending.pop(ready[0])
            try:
                result = self.ray.get(ready[0])
            except (
                self.ray.exceptions.RayActorError,
                self.ray.exceptions.WorkerCrashedError,
                self.ray.exceptions.ObjectLostError,
            ) as exc:
                self._lost(run, actor, item, exc)
            else:
                self.idle.append(actor)
                run.done(item, result)
            self._submit(run.queue)

    def _submit(self, queue: deque[_Item]) -> None:
        while self.idle and queue:
            actor, item = self.idle.pop(), queue.popleft()
            item.attempts += 1
            if item.index is None:
                ref = actor.file.remote(item.job)
            else:
                ref = actor.piece.remote(item.job, item.part, item.start, item.end, item.seed)
            self.pending[ref] = (actor, item)

    def _lost(self, run: _Run, actor: Any, item: _Item, exc: BaseException) -> None:
        """The worker died: replace it, and give its work to a live one."""
        run.report.retries += 1
        replacement = self._new_actor()
        self._set_live([*(a for a in self.live if a is not actor), replacement])
        self.idle.append(replacement)
        if item.attempts < MAX_ATTEMPTS:
            run.queue.appendleft(item)
        else:
            run.fail(item, f"{item.job.src}: worker lost {item.attempts} times ({type(exc).__name__})")

    def close(self) -> None:
        for actor in self.created:  # their CPUs go back to the cluster now, not whenever Ray collects them
            try:
                self.ray.kill(actor, no_restart=True)
            except Exception:  # already dead
                pass
        self.created.clear()
        self.live = []

    def _set_live(self, actors: list[Any]) -> None:
        self.live = actors
        if self.on_workers is not None:
            self.on_workers(list(actors))


def _join(job: Job, video: _Video, *, targets: tuple[str, ...]) -> dict[str, Any]:
    """Join the pieces into ``job.dest`` and, with a key, seal their regions into its vault."""
    from ..media.video import join_segments
    from ..vault.images import sidecar_path
    from .video import write_video_vault

    assert job.dest is not None
    parts = [it.part for it in video.items]
    missing = [p for p in parts if not p.is_file()]
    if missing:
        raise MediaError(f"piece {missing[0].name} of the video is missing", path=job.src)
    join_segments(job.src, parts, job.dest)
    results = [video.results[it.index] for it in video.items]  # type: ignore[index]
    frames = sum(int(r["frames"]) for r in results)
    row: dict[str, Any] = {
        "path": str(job.src),
        "output": str(job.dest),
        "frames": frames,
        "tracks": sum(int(r["tracks"]) for r in results),
        **{f"{t}_tracks": sum(int(r[f"{t}_tracks"]) for r in results) for t in ("plate", "person") if t in targets},
        "regions": sum(int(r["count"]) for r in results),
        "pieces": len(parts),
    }
    side = sidecar_path(job.dest)
    if video.writer is None:
        side.unlink(missing_ok=True)  # a vault from an earlier run would no longer match
        return row
    assert video.sealed == len(video.items) and video.frames == frames
    write_video_vault(job.dest, video.writer, frames, original=job.src)  # pieces cover the whole video
    row["vault"] = str(side)
    return row
