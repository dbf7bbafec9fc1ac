import pytest


@pytest.fixture(scope="session")
def finished(tmp_path_factory):
    """One real small search (tests/search/test_run.py's SPACE) through the CLI, shared by the
    tests of its results: ``(workdir, completed process)``; results in ``workdir/results/tiny_lens``."""
    from tests.search.test_run import search_once

    return search_once(tmp_path_factory)
