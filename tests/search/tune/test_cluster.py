"""The cluster rules of a search: the Ray address, the storage, how trials get the data."""

from pathlib import Path

import numpy as np
import pytest
import yaml

from search.tune import cluster
from search.tune.trainable import node_dataset
from search.space import load_space
from trainable.data import load_dataset
from trainable.data.config import DataConfig
from trainable.errors import UserError

GB = 1e9


def test_the_address_is_the_flag_then_ray_address_then_local(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert cluster.ray_address(None) == "local"
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")  # what ray job submit sets for the entrypoint
    assert cluster.ray_address(None) == "10.0.0.1:6379"
    assert cluster.ray_address("auto") == "auto"


def test_storage_is_the_flag_then_the_file_then_the_results_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cluster.resolve_storage(None, None, "results") == str(tmp_path / "results")
    assert cluster.resolve_storage(None, "~/searches", "results") == str(Path.home() / "searches")
    assert cluster.resolve_storage("s3://bucket/searches/", "/nfs/x", "results") == "s3://bucket/searches"
    assert cluster.resolve_storage("file:///nfs/searches", None, "results") == "/nfs/searches"
    assert cluster.is_uri("gs://bucket/x") and not cluster.is_uri("/nfs/x") and not cluster.is_uri("file:///x")


def test_storage_key_in_a_space_file(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"data": {"format": "digits"}, "storage": "s3://bucket/searches"}))
    assert load_space(path).storage == "s3://bucket/searches"
    path.write_text(yaml.safe_dump({"data": {"format": "digits"}, "storage": ["s3://a"]}))
    with pytest.raises(UserError, match=r"s\.yaml: storage: must be a folder or a URI"):
        load_space(path)


def test_data_share_is_checked(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"data": {"format": "digits", "share": "nfs"}}))
    with pytest.raises(UserError, match=r"data\.share: 'nfs' is not one of auto, object_store, path"):
        load_space(path)


def test_an_unusable_storage_uri_is_one_clear_line():
    with pytest.raises(UserError, match=r"^--storage / storage: cannot use nosuchfs://bucket/x \(") as err:
        cluster.check_uri("nosuchfs://bucket/x")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("share, nbytes, stores, has_path, expected", [
    ("auto", 1 * GB, [8 * GB, 4 * GB], True, "object_store"),   # 1 GB <= half of 4 GB
    ("auto", 3 * GB, [8 * GB, 4 * GB], True, "path"),           # the smallest node decides
    ("auto", 3 * GB, [8 * GB, 8 * GB], True, "object_store"),
    ("object_store", 30 * GB, [8 * GB], True, "object_store"),  # data.share wins
    ("path", 1e6, [8 * GB], True, "path"),
    ("auto", 30 * GB, [8 * GB], False, "object_store"),         # no folder to read (digits)
])
def test_the_sharing_rule(share, nbytes, stores, has_path, expected):
    sharing, line = cluster.choose_sharing(share, int(nbytes), stores, has_path)
    assert sharing == expected
    assert line.startswith(f"data sharing: {'path' if expected == 'path' else 'object store'}")
    assert "\n" not in line


def test_results_are_copied_to_uri_storage(tmp_path):
    folder = tmp_path / "results" / "s1"
    (folder / "wandb").mkdir(parents=True)
    (folder / "summary.json").write_text("{}")
    (folder / "wandb" / "run.wandb").write_bytes(b"x")
    remote = tmp_path / "bucket"
    remote.mkdir()
    uri = f"file://{remote}"
    assert cluster.upload_folder(folder, uri, "s1") == f"{uri}/s1"
    assert (remote / "s1" / "summary.json").read_text() == "{}"
    assert (remote / "s1" / "wandb" / "run.wandb").read_bytes() == b"x"


@pytest.fixture
def lens_set(tmp_path):
    from trainable.simulate import simulate

    root = tmp_path / "lens"
    simulate("lens_finding", root, n=60, seed=1)
    return DataConfig.from_mapping({"format": "fits_csv", "path": str(root), "normalization": "standardize",
                                    "cache_dir": str(tmp_path / "cache")})


def test_a_mapped_set_equals_the_loaded_one_and_is_one_shared_read_only_file(lens_set, tmp_path):
    loaded = load_dataset(lens_set)
    mapped = load_dataset(lens_set, mapped=True)
    again = load_dataset(lens_set, mapped=True)  # a second trial of the node: the same file
    assert np.array_equal(loaded.images.numpy(), mapped.images.numpy())
    assert mapped.normalization == again.normalization == loaded.normalization  # standardize's train stats
    for split in ("train", "val", "test"):
        assert np.array_equal(mapped.splits[split], loaded.splits[split])
    entries = [p for p in (tmp_path / "cache").glob("*.npy") if (tmp_path / "cache" / f"{p.stem}.json").exists()]
    assert len(entries) == 1  # one normalized entry, with its record
    # Both loads' pixels lie in read-only mappings of that one file, not in this process's memory.
    mappings = [line.split() for line in Path("/proc/self/maps").read_text().splitlines()
                if line.endswith(str(entries[0]))]
    for tensor in (mapped.images, again.images):
        address = tensor.data_ptr()
        assert any(int(m[0].split("-")[0], 16) <= address < int(m[0].split("-")[1], 16) and "w" not in m[1]
                   for m in mappings)


def test_a_changed_normalization_is_a_new_mapped_entry(lens_set, tmp_path):
    import dataclasses

    load_dataset(lens_set, mapped=True)
    other = load_dataset(dataclasses.replace(lens_set, normalization="minmax"), mapped=True)
    assert float(other.images.max()) == pytest.approx(1.0)
    assert len(list((tmp_path / "cache").glob("*.json"))) == 2


def test_trials_of_a_process_reuse_the_node_dataset(lens_set):
    first = node_dataset(lens_set)
    assert node_dataset(lens_set) is first


def test_the_per_node_check_finds_a_missing_path_and_names_the_node(tmp_path):
    """The zero-CPU task pinned to each node reports where a path is missing (here one node)."""
    import ray

    ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        nodes = cluster.alive_nodes()
        assert cluster._exists_on_each_node(str(tmp_path), nodes) == []
        missing = cluster._exists_on_each_node(str(tmp_path / "nowhere"), nodes)
        assert missing == [f"{nodes[0]['NodeManagerAddress']} ({nodes[0]['NodeID'][:8]})"]
        with pytest.raises(UserError, match=r"^s\.yaml: data\.path: .*nowhere does not exist on node "):
            cluster.check_data_visible(tmp_path / "nowhere", "s.yaml: data", nodes * 2)
    finally:
        ray.shutdown()
