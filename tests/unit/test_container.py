"""What a container builds once: concurrent first calls share one build (one verifier, one role cache)."""

from __future__ import annotations

import threading
import time

from kuma_iam.container import per_container


def test_concurrent_first_calls_wait_for_one_build() -> None:
    # Given a build that holds until released, and 8 threads that all ask for it at once
    builds: list[object] = []
    release = threading.Event()

    @per_container
    def built() -> object:
        builds.append(object())
        release.wait(timeout=60)
        return builds[-1]

    ready = threading.Barrier(9)
    answers: list[object] = []

    def ask() -> None:
        ready.wait(timeout=60)
        answers.append(built())

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    ready.wait(timeout=60)
    time.sleep(0.2)  # lets every thread reach the build (without the lock, each would run one)
    release.set()
    for thread in threads:
        thread.join(timeout=60)

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
