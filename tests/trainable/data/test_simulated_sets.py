"""The embedded simulator's output loads through the data layer as the real sets do."""

import numpy as np

from trainable.data import load_dataset
from trainable.simulate import simulate


def test_simulated_lens_finding_set_loads_as_fits_csv(tmp_path):
    root = simulate("lens_finding", tmp_path / "lf", n=40, seed=1, workers=2)
    ds = load_dataset({"format": "fits_csv", "path": str(root)})
    assert ds.images.shape == (40, 1, 101, 101) and ds.class_names == ("0", "1")
    assert ds.source["layout"] == "label table classifications.csv"
    lenses = int(ds.labels.sum())
    assert 0 < lenses < 40
    # The simulation-truth columns are metadata, and they do encode the label.
    meta = ds.metadata
    assert set(meta.columns) == {"ID", "Einstein_area", "numb_pix_lensed_image",
                                 "flux_lensed_image_in_sigma"}
    assert (meta["numb_pix_lensed_image"][ds.labels.numpy() == 1] >= 20).all()
    assert float(ds.images.min()) == 0.0 and float(ds.images.max()) == 1.0


def test_simulated_substructure_set_loads_as_npy_folders(tmp_path):
    root = simulate("substructure", tmp_path / "sub", n=30, seed=1, workers=2)
    ds = load_dataset({"format": "npy_folders", "path": str(root), "normalization": "none"})
    assert ds.images.shape == (30, 1, 150, 150) and ds.class_names == ("no", "sphere", "vort")
    assert ds.source["layout"] == "split folders"
    assert {ds.files[i].split("/")[-3] for i in ds.splits["val"]} == {"val"}  # the shipped split
    assert min(ds.class_counts("val").values()) >= 1
    assert np.isclose(ds.images.amax(dim=(1, 2, 3)).numpy(), 1).all()  # min-max normalised files
