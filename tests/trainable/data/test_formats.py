"""Each real on-disk layout loads with the right shapes, labels, class names, metadata and splits."""

import numpy as np
import pytest
from astropy.io import fits

from tests.trainable.data.writers import (write_csv_images, write_fits_csv, write_image_folders,
                                          write_npy_folders, write_png, write_prefixed_npy,
                                          write_split_tables)
from trainable.data import load_dataset


def _tags(ds):
    return ds.images[:, 0, 0, 0].numpy().astype(int)


def _assert_partition(ds):
    parts = [ds.splits[name] for name in ("train", "val", "test")]
    joined = np.concatenate(parts)
    assert len(joined) == len(ds.labels) and len(np.unique(joined)) == len(joined)


def test_npy_folders_keeps_shipped_val_and_carves_test_from_train(tmp_path):
    counts = {"train": {"no": 20, "sphere": 20, "vort": 20}, "val": {"no": 4, "sphere": 4, "vort": 4}}
    root = write_npy_folders(tmp_path / "deeplense", counts, shape=(1, 15, 15))
    ds = load_dataset({"format": "npy_folders", "path": str(root), "normalization": "none",
                       "test_fraction": 0.15})

    assert ds.images.shape == (72, 1, 15, 15) and ds.images.dtype.is_floating_point
    assert ds.class_names == ("no", "sphere", "vort") and ds.in_chans == 1
    assert (_tags(ds) // 1000 == ds.labels.numpy()).all()  # each image kept its own label
    val_files = {f for i, f in enumerate(ds.files) if "/val/" in f}
    assert {ds.files[i] for i in ds.splits["val"]} == val_files
    assert ds.class_counts("test") == {"no": 3, "sphere": 3, "vort": 3}  # 15 % of train, stratified
    assert all("/train/" in ds.files[i] for i in ds.splits["test"])
    _assert_partition(ds)
    assert ds.metadata is None and ds.source["layout"] == "split folders"


def test_npy_folders_reads_2d_arrays_and_a_shipped_test_folder(tmp_path):
    counts = {"train": {"no": 10, "vort": 10}, "test": {"no": 3, "vort": 3}}
    root = write_npy_folders(tmp_path / "d", counts, shape=(9, 9))
    ds = load_dataset({"format": "npy_folders", "path": str(root), "val_fraction": 0.2})
    assert ds.images.shape == (26, 1, 9, 9)
    assert sorted(ds.files[i].split("/")[-3] for i in ds.splits["test"]) == ["test"] * 6
    assert ds.class_counts("val") == {"no": 2, "vort": 2}


def test_npy_prefixed_lens_finding_layout(tmp_path):
    root = write_prefixed_npy(tmp_path / "lf", {"train_lenses": 12, "train_nonlenses": 18,
                                                "test_lenses": 3, "test_nonlenses": 4})
    ds = load_dataset({"format": "npy_folders", "path": str(root)})
    assert ds.class_names == ("lenses", "nonlenses") and ds.images.shape == (37, 3, 8, 8)
    assert ds.class_counts("test") == {"lenses": 3, "nonlenses": 4}
    assert all("/test_" in ds.files[i] for i in ds.splits["test"])
    assert ds.source["layout"] == "split-prefixed class folders"


def test_fits_csv_bologna_layout_with_metadata(tmp_path):
    labels = [1] * 46 + [0] * 20  # 2.3 : 1, like the real set
    root = write_fits_csv(tmp_path / "bologna", labels, size=13)
    ds = load_dataset({"format": "fits_csv", "path": str(root), "normalization": "none"})

    assert ds.images.shape == (66, 1, 13, 13) and ds.class_names == ("0", "1")
    assert (_tags(ds) // 1000 == ds.labels.numpy()).all()
    assert list(ds.metadata.columns) == ["ID", "Einstein_area", "numb_pix_lensed_image",
                                         "flux_lensed_image_in_sigma"]
    # Metadata rows line up with images and files.
    assert [f"imageEUC_VIS-{i}.fits" for i in ds.metadata["ID"]] == [f.split("/")[-1] for f in ds.files]
    assert (ds.metadata["numb_pix_lensed_image"].to_numpy() == 40 * ds.labels.numpy()
            + _tags(ds) % 1000).all()
    for name in ("train", "val", "test"):  # stratified: every split keeps the 2.3 : 1 ratio
        counts = ds.class_counts(name)
        assert abs(counts["1"] / len(ds.splits[name]) - 46 / 66) < 0.1


def test_fits_csv_options_and_multiband_patterns(tmp_path):
    root = write_fits_csv(tmp_path / "b", [0, 1] * 6, size=10)
    for path in (root / "files").glob("imageEUC_VIS-*.fits"):  # a second band per image
        image_id = path.stem.split("-")[1]
        fits.PrimaryHDU(np.ones((10, 10), np.float32)).writeto(root / "files" / f"imageEUC_J-{image_id}.fits")
    (root / "labels.csv").write_text((root / "classifications.csv").read_text().replace("is_lens", "lens"))
    ds = load_dataset({"format": "fits_csv", "path": str(root), "csv": "labels.csv",
                       "label_column": "lens", "normalization": "none",
                       "file_pattern": ["files/imageEUC_VIS-{id}.fits", "files/imageEUC_J-{id}.fits"]})
    assert ds.images.shape == (12, 2, 10, 10)
    assert (ds.images[:, 1] == 1).all() and "+" in ds.files[0]


@pytest.mark.parametrize("rgb,channels", [(True, 3), (False, 1)])
def test_image_folders(tmp_path, rgb, channels):
    root = write_image_folders(tmp_path / "imgs", {"cat": 5, "dog": 7, "frog": 6}, rgb=rgb)
    ds = load_dataset({"format": "image_folders", "path": str(root), "normalization": "none"})
    assert ds.images.shape == (18, channels, 10, 10) and ds.class_names == ("cat", "dog", "frog")
    assert 0 <= ds.images.min() and ds.images.max() <= 1
    assert np.bincount(ds.labels.numpy()).tolist() == [5, 7, 6]


def test_image_folders_mixing_grey_and_rgb_become_rgb(tmp_path):
    root = write_image_folders(tmp_path / "imgs", {"a": 3, "b": 3}, rgb=True)
    grey = np.linspace(0, 1, 100).reshape(10, 10)
    write_png(root / "a" / "grey.png", grey)
    ds = load_dataset({"format": "image_folders", "path": str(root), "normalization": "none"})
    assert ds.in_chans == 3
    i = next(i for i, f in enumerate(ds.files) if f.endswith("grey.png"))
    assert np.allclose(ds.images[i, 0], ds.images[i, 2])
    assert np.allclose(ds.images[i, 0].numpy(), grey, atol=1 / 255)


def test_csv_images_cifar_layout_with_class_names(tmp_path):
    labels = ["frog", "truck", "cat"] * 5
    root = write_csv_images(tmp_path / "cifar", labels)
    ds = load_dataset({"format": "csv_images", "path": str(root)})
    assert ds.class_names == ("cat", "frog", "truck") and ds.images.shape == (15, 3, 8, 8)
    by_file = {f.split("/")[-1]: ds.class_names[y] for f, y in zip(ds.files, ds.labels.tolist())}
    assert by_file == {f"{i}.png": label for i, label in enumerate(labels, start=1)}
    assert ds.metadata["id"].tolist() == [str(i) for i in range(1, 16)]


GENERATED = {"format": "csv_images", "csv": {"train": "train.csv", "val": "val.csv"},
             "id_column": "Image", "label_column": "Class",
             "file_pattern": {"train": "train_images/{id}", "val": "val_images/{id}"}}


def test_csv_images_one_table_per_shipped_split_keeps_val_and_carves_test(tmp_path):
    root = write_split_tables(tmp_path / "gen", {"train": [0, 7, 42] * 10, "val": [0, 7, 42] * 2})
    (root / "test_images").mkdir()
    write_png(root / "test_images" / "unlabelled.png", np.zeros((8, 8, 3)))  # the contest's test/: no labels
    (root / "test.csv").write_text("Image\nunlabelled.png\n")
    ds = load_dataset({**GENERATED, "path": str(root), "normalization": "none", "test_fraction": 0.2})
    assert ds.class_names == ("0", "7", "42") and ds.images.shape == (36, 3, 8, 8)
    assert [len(ds.splits[s]) for s in ("train", "val", "test")] == [24, 6, 6]
    assert all("/val_images/" in ds.files[i] for i in ds.splits["val"])
    assert all("/train_images/" in ds.files[i] for i in np.concatenate([ds.splits["train"], ds.splits["test"]]))
    tags = np.round(ds.images[:, 0, 0, 0].numpy() * 100).astype(int)  # PNG levels: label / 100 to 1/255
    assert [int(ds.class_names[y]) for y in ds.labels.tolist()] == tags.tolist()  # each image kept its label
    assert ds.metadata["Image"].str.endswith(".png").all() and len(ds.metadata) == 36
    assert ds.source["layout"] == "label tables train.csv (train), val.csv (val)"


def test_csv_images_split_tables_refuse_shared_files_and_mismatched_options(tmp_path):
    root = write_split_tables(tmp_path / "gen", {"train": [0, 1] * 4, "val": [0, 1] * 2})
    shared = {**GENERATED, "path": str(root), "file_pattern": "{id}"}
    (root / "val.csv").write_text((root / "train.csv").read_text())
    with pytest.raises(Exception, match="is named by both train.csv and val.csv"):
        load_dataset({**GENERATED, "path": str(root),
                      "file_pattern": {"train": "train_images/{id}", "val": "train_images/{id}"}})
    with pytest.raises(Exception, match=r"data.file_pattern: one pattern per split needs one table per split"):
        load_dataset({**GENERATED, "path": str(root), "csv": "train.csv"})
    with pytest.raises(Exception, match=r"data.csv: dev is not a split \(train, val, test\)"):
        load_dataset({**shared, "csv": {"train": "train.csv", "dev": "val.csv"}})
    with pytest.raises(Exception, match=r"data.csv: must name the train split's table"):
        load_dataset({**shared, "csv": {"val": "val.csv"}})


def test_digits_needs_no_files():
    ds = load_dataset({"format": "digits", "seed": 3})
    assert ds.images.shape == (1797, 1, 8, 8) and ds.num_classes == 10
    assert [len(ds.splits[s]) for s in ("train", "val", "test")] == [1257, 270, 270]


def test_image_size_resizes_mixed_shapes(tmp_path):
    root = write_npy_folders(tmp_path / "a", {"": {"x": 3, "y": 3}}, shape=(1, 12, 12))
    write_npy_folders(tmp_path / "b", {"": {"x": 2}}, shape=(1, 20, 20))
    for i, f in enumerate(sorted((tmp_path / "b" / "x").iterdir())):
        f.rename(root / "x" / f"big{i}.npy")
    ds = load_dataset({"format": "npy_folders", "path": str(root), "image_size": [16, 14]})
    assert ds.images.shape == (8, 1, 16, 14)


def test_parallel_decoding_matches_serial_and_handles_odd_shapes(tmp_path):
    root = write_npy_folders(tmp_path / "many", {"": {"a": 90, "b": 90}}, shape=(1, 10, 10))
    np.save(root / "b" / "50.npy", np.full((1, 14, 14), 3.0, np.float32))  # resized, in a worker
    block = {"format": "npy_folders", "path": str(root), "normalization": "none",
             "image_size": 10, "cache": False}
    serial = load_dataset({**block, "workers": 1})
    parallel = load_dataset({**block, "workers": 2})
    assert np.array_equal(serial.images.numpy(), parallel.images.numpy())
    assert serial.files == parallel.files
    i = parallel.files.index(str(root / "b" / "50.npy"))
    assert np.allclose(parallel.images[i].numpy(), 3.0)


def test_gzipped_fits_files_decode_like_plain_ones(tmp_path):
    import gzip

    from astropy.io import fits

    from trainable.data.decode import decodable, read_image

    image = np.arange(36, dtype=np.float32).reshape(6, 6)
    fits.writeto(tmp_path / "a.fits", image)
    (tmp_path / "a.fits.gz").write_bytes(gzip.compress((tmp_path / "a.fits").read_bytes()))
    assert np.array_equal(read_image(tmp_path / "a.fits.gz"), read_image(tmp_path / "a.fits"))
    assert decodable(tmp_path / "a.fits.gz") and decodable(tmp_path / "b.FIT.GZ")
    assert not decodable(tmp_path / "a.csv.gz") and not decodable(tmp_path / "notes.txt")
