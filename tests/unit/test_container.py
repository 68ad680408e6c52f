"""What a container builds once: concurrent first calls share one build (one verifier, one role cache)."""

from __future__ import annotations

import sys
import threading
import time
from types import FrameType

from kuma_iam import container
from kuma_iam.container import per_container

# "Did not hang": threads reach the build in microseconds on a quiet machine, far longer on a loaded one.
CEILING_SECONDS = 60


def _waits_in_the_build(thread: threading.Thread) -> bool:
    """The thread is in the build itself or in per_container's call (waiting for another thread's build)."""
    frame: FrameType | None = sys._current_frames().get(thread.ident or -1)
    while frame is not None:
        code = frame.f_code
        if code.co_name == "built" or code.co_filename == container.__file__:
            return True
        frame = frame.f_back
    return False


def test_concurrent_first_calls_wait_for_one_build() -> None:
    # Given a build that holds until released, and 8 threads that all ask for it at once
    builds: list[object] = []
    release = threading.Event()

    @per_container
    def built() -> object:
        builds.append(object())
        release.wait(timeout=CEILING_SECONDS)
        return builds[-1]

    answers: list[object] = []
    threads = [threading.Thread(target=lambda: answers.append(built())) for _ in range(8)]
    for thread in threads:
        thread.start()
    # Every thread has reached the build, or waits for it, before the first build may finish: without the
    # lock (functools.cache), each would be running its own here
    deadline = time.monotonic() + CEILING_SECONDS
    while not all(_waits_in_the_build(thread) for thread in threads) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert all(_waits_in_the_build(thread) for thread in threads)

    # When the first build finishes
    release.set()
    for thread in threads:
        thread.join(timeout=CEILING_SECONDS)

    # Then one build ran and every caller got its result
    assert len(builds) == 1
    assert answers == [builds[0]] * 8


def test_cache_clear_makes_the_next_call_build_again() -> None:
    # Given a built value
    counter = iter(range(10))

    @per_container
    def built() -> int:
        return next(counter)

    assert built() == built() == 0

    # When the cache is cleared (a test's new environment, a new container)
    built.cache_clear()

    # Then the next call builds anew, once
    assert built() == built() == 1
