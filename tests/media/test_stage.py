"""media.video.Stage: a worker thread that keeps order, bounds its queue and hands its errors back."""

from __future__ import annotations

import threading
import time

import pytest

from anonymizer.errors import MediaError
from anonymizer.media.video import Stage


def test_items_are_done_in_order_in_another_thread() -> None:
    done: list[tuple[int, int]] = []
    stage = Stage(lambda x: done.append((x, threading.get_ident())), depth=2)
    for i in range(50):
        stage.put(i)
    stage.close()
    assert [x for x, _ in done] == list(range(50))
    assert {t for _, t in done} == {done[0][1]} != {threading.get_ident()}
    assert stage.busy_s >= 0


def test_an_error_in_the_thread_is_raised_by_put_or_close() -> None:
    def fail_on_3(x: int) -> None:
        if x == 3:
            raise ValueError("item 3 is bad")

    stage = Stage(fail_on_3, depth=1)
    with pytest.raises(ValueError, match="item 3 is bad"):
        for i in range(100):  # the queue holds one: put raises soon after the thread stops
            stage.put(i)
    stage2 = Stage(fail_on_3, depth=8)
    for i in range(5):
        stage2.put(i)
    with pytest.raises(ValueError, match="item 3 is bad"):
        stage2.close()


def test_abort_stops_without_doing_the_rest() -> None:
    done: list[int] = []
    stage = Stage(lambda x: (time.sleep(0.05), done.append(x)), depth=16)
    for i in range(16):
        stage.put(i)
    stage.abort()
    assert len(done) < 16
    with pytest.raises(MediaError, match="stopped"):
        stage.put(99)
