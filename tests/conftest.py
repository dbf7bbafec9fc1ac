import pytest


@pytest.fixture(autouse=True)
def _private_data_cache(tmp_path_factory, monkeypatch):
    """Keep every test's decoded-data cache out of the user's home folder."""
    monkeypatch.setenv("LENS_SEARCH_CACHE", str(tmp_path_factory.mktemp("data-cache")))
