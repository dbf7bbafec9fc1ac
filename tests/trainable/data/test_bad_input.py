"""Every kind of bad data gives one clear line naming the file or key, and changes nothing."""

import os
import subprocess
import sys

import numpy as np
import pytest
from astropy.io import fits

from tests.trainable.data.writers import (write_csv_images, write_fits_csv, write_image_folders,
                                          write_npy_folders)
from trainable.data import load_dataset
from trainable.errors import DataError


def _npy(tmp_path, **counts):
    return write_npy_folders(tmp_path / "d", {"train": counts or {"a": 4, "b": 4}})


def _error(block) -> str:
    with pytest.raises(DataError) as info:
        load_dataset(block)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_missing_path(tmp_path):
    assert _error({"format": "npy_folders", "path": str(tmp_path / "nope")}) == \
        f"data.path: {tmp_path / 'nope'} does not exist"


def test_empty_class_folder(tmp_path):
    root = _npy(tmp_path)
    (root / "train" / "c").mkdir()
    message = _error({"format": "npy_folders", "path": str(root)})
    assert "empty class folder" in message and str(root / "train" / "c") in message


def test_class_with_a_single_image(tmp_path):
    root = _npy(tmp_path, a=4, b=1)
    message = _error({"format": "npy_folders", "path": str(root)})
    assert "class 'b' has a single image" in message and "0.npy" in message


@pytest.mark.parametrize("name", ["a/2.npy", "files/imageEUC_VIS-100003.fits", "dog/img_1.png"])
def test_corrupt_file_is_named(tmp_path, name):
    if name.endswith(".npy"):
        root, block = write_npy_folders(tmp_path / "d", {"": {"a": 4, "b": 4}}), {"format": "npy_folders"}
    elif name.endswith(".fits"):
        root, block = write_fits_csv(tmp_path / "d", [0, 1] * 4), {"format": "fits_csv"}
    else:
        root, block = write_image_folders(tmp_path / "d", {"cat": 4, "dog": 4}), {"format": "image_folders"}
    (root / name).write_bytes(b"\x00garbage" * 10)
    message = _error({**block, "path": str(root)})
    assert str(root / name) in message and "cannot read" in message


def test_mixed_shapes_name_one_file_of_each(tmp_path):
    root = _npy(tmp_path)
    np.save(root / "train" / "b" / "9.npy", np.zeros((1, 20, 20), np.float32))
    message = _error({"format": "npy_folders", "path": str(root)})
    assert "images differ in shape" in message and "1x12x12" in message and "1x20x20" in message
    assert str(root / "train" / "b" / "9.npy") in message and "image_size" in message
    assert load_dataset({"format": "npy_folders", "path": str(root), "image_size": 12}).images.shape[1:] == (1, 12, 12)


def test_nonfinite_pixels_name_the_file(tmp_path):
    root = write_fits_csv(tmp_path / "b", [0, 1] * 4)
    path = root / "files" / "imageEUC_VIS-100002.fits"
    data = fits.getdata(path)
    data[3, 4], data[5, 5] = np.nan, np.inf
    fits.writeto(path, data, overwrite=True)
    message = _error({"format": "fits_csv", "path": str(root)})
    assert str(path) in message and "2 NaN or infinite pixels" in message
    ds = load_dataset({"format": "fits_csv", "path": str(root), "nonfinite": "zero"})
    assert np.isfinite(ds.images.numpy()).all()


def test_rows_without_files_and_files_without_rows_are_counted(tmp_path):
    root = write_fits_csv(tmp_path / "b", [0, 1] * 5)
    (root / "files" / "imageEUC_VIS-100001.fits").unlink()
    (root / "files" / "imageEUC_VIS-100004.fits").unlink()
    (root / "files" / "imageEUC_VIS-100003.fits").rename(root / "files" / "imageEUC_VIS-555.fits")
    message = _error({"format": "fits_csv", "path": str(root)})
    assert "3 rows of classifications.csv have no file (e.g. ID 100001" in message
    assert "1 files have no row in classifications.csv (e.g. files/imageEUC_VIS-555.fits)" in message


def test_missing_label_column_lists_the_columns(tmp_path):
    root = write_fits_csv(tmp_path / "b", [0, 1] * 3)
    message = _error({"format": "fits_csv", "path": str(root), "label_column": "lens"})
    assert message == (f"data.label_column: 'lens' is not a column of {root / 'classifications.csv'}; "
                       "columns: ID, is_lens, Einstein_area, numb_pix_lensed_image, "
                       "flux_lensed_image_in_sigma")


def test_ambiguous_label_table_asks_for_its_name(tmp_path):
    root = write_csv_images(tmp_path / "c", ["a", "b"] * 3)
    (root / "sampleSubmission.csv").write_text("id,label\n")
    message = _error({"format": "csv_images", "path": str(root)})
    assert "2 .csv files" in message and "data.csv" in message


def test_unknown_format_lists_the_known_ones(tmp_path):
    message = _error({"format": "hdf5", "path": str(tmp_path)})
    assert message.startswith("data.format: unknown format 'hdf5'; known formats: npy_folders, fits_csv")


def test_block_problems_are_reported_together(tmp_path):
    message = _error({"format": "fits_csv", "path": str(tmp_path), "labelcolumn": "x",
                      "val_fraction": 1.5, "normalization": "zscore", "file_pattern": "a.fits"})
    for key in ("data.labelcolumn: unknown key", "data.val_fraction", "data.normalization",
                "data.file_pattern"):
        assert key in message


def _snapshot(root):
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


def test_cli_bad_input_exits_2_with_one_line_and_touches_nothing(tmp_path):
    root = _npy(tmp_path)
    np.save(root / "train" / "b" / "9.npy", np.zeros((1, 5, 5), np.float32))
    before = _snapshot(root)
    env = {**os.environ, "LENS_SEARCH_CACHE": str(tmp_path / "cache")}
    run = subprocess.run([sys.executable, "-m", "trainable.data", "npy_folders", str(root)],
                         capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and run.stderr.startswith("error: images differ in shape")
    assert "Traceback" not in run.stderr
    assert _snapshot(root) == before


def test_cli_prints_the_summary(tmp_path):
    root = _npy(tmp_path)
    env = {**os.environ, "LENS_SEARCH_CACHE": str(tmp_path / "cache")}
    run = subprocess.run([sys.executable, "-m", "trainable.data", "npy_folders", str(root),
                          "--set", "val_fraction=0.25"], capture_output=True, text=True, env=env,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    assert "8 images of 1x12x12 in 2 classes (split folders)" in run.stdout
    assert "val        2  (a: 1, b: 1)" in run.stdout


def test_errors_raised_in_decoding_workers_name_the_file(tmp_path):
    root = write_npy_folders(tmp_path / "many", {"": {"a": 80, "b": 80}})
    (root / "b" / "70.npy").write_bytes(b"broken")
    message = _error({"format": "npy_folders", "path": str(root), "workers": 2})
    assert str(root / "b" / "70.npy") in message


def test_unreadable_folder_is_named(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root reads every folder")
    root = _npy(tmp_path)
    (root / "train" / "a").chmod(0)
    try:
        message = _error({"format": "npy_folders", "path": str(root)})
    finally:
        (root / "train" / "a").chmod(0o755)
    assert str(root / "train" / "a") in message
