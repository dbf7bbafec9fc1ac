import pytest


@pytest.fixture(autouse=True)
def _private_data_cache(tmp_path_factory, monkeypatch):
    """Keep every test's decoded-data cache out of the user's home folder."""
    monkeypatch.setenv("LENS_SEARCH_CACHE", str(tmp_path_factory.mktemp("data-cache")))


@pytest.fixture
def local_ray():
    """A local Ray instance of 2 CPUs in this process, shut down after the test."""
    ray = pytest.importorskip("ray")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


# The suite's process loads torch, Ray (whose in-process tests leave gRPC threads), OpenMP
# runtimes and W&B; tearing them down at interpreter exit crashed once in CI (exit 139, a
# segmentation fault after "519 passed"), and does not reproduce on a rerun: a race among native
# destructors, not a test's failure. So the process ends with pytest's own exit status as soon as
# pytest is done with the session (summary printed, cache and temporary folders written), without
# the interpreter's teardown. Every test that starts a process stops it itself; nothing is left to
# that teardown.
_EXIT_STATUS = pytest.StashKey[int]()


def pytest_sessionfinish(session, exitstatus):
    session.config.stash[_EXIT_STATUS] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    import os
    import sys

    if _EXIT_STATUS in config.stash:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(config.stash[_EXIT_STATUS])
