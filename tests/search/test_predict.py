"""``python -m search.predict`` on the results of a real search: it reproduces the search's own test
predictions (the final model's, at its threshold), reads folders, applies TTA as the model file says
unless told, and refuses bad inputs in one line, writing nothing."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.search.test_run import ROOT

RESULTS = "results/tiny_lens"


def predict(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "search.predict", *args], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=300)


def predict_ok(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    proc = predict(workdir, *args)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def predict_here(capsys, results: Path | str, *args: str) -> subprocess.CompletedProcess:
    """``search.predict``'s command line run in this process (its ``main``, exit status and
    output as the command gives them, without a new interpreter's imports)."""
    from search.predict import main

    capsys.readouterr()
    try:
        code = main([str(results), *args])
    except SystemExit as exit:
        code = exit.code
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(["search.predict", str(results), *args], code, out, err)


def outcome(proc: subprocess.CompletedProcess) -> tuple[int, str]:
    return proc.returncode, proc.stderr


def predict_here_ok(capsys, results: Path | str, *args: str) -> subprocess.CompletedProcess:
    proc = predict_here(capsys, results, *args)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def test_split(finished):
    workdir, _ = finished
    return pd.read_csv(workdir / RESULTS / "test_predictions.csv")


def test_reproduces_the_test_split(finished, test_split, tmp_path):
    workdir, _ = finished
    out = tmp_path / "test.csv"
    proc = predict_ok(workdir, RESULTS, *test_split["file"], "--out", str(out))
    frame = pd.read_csv(out)
    summary = json.loads((workdir / RESULTS / "summary.json").read_text())
    p_columns = [f"p_{name}" for name in summary["test"]["class_names"]]
    assert list(frame.columns) == ["file", "predicted", *p_columns]
    assert frame["file"].tolist() == test_split["file"].tolist()
    accuracy = float((frame["predicted"].astype(str) == test_split["true"].astype(str)).mean())
    assert accuracy == summary["test"]["accuracy"]
    np.testing.assert_allclose(frame[p_columns].to_numpy(), test_split[p_columns].to_numpy(), atol=1e-5)
    assert f"{len(test_split)} images" in proc.stdout and str(out) in proc.stdout


def test_gzipped_fits_files_in_a_folder_are_classified_like_the_plain_ones(finished, test_split, tmp_path, capsys):
    import gzip

    workdir, _ = finished
    first = [Path(f) for f in test_split["file"][:3]]
    (tmp_path / "gz").mkdir()
    for path in first:
        (tmp_path / "gz" / (path.name + ".gz")).write_bytes(gzip.compress(path.read_bytes()))
    predict_here_ok(capsys, workdir / RESULTS, str(tmp_path / "gz"), "--out", str(tmp_path / "gz.csv"))
    predict_here_ok(capsys, workdir / RESULTS, *map(str, first), "--out", str(tmp_path / "plain.csv"))
    gz, plain = pd.read_csv(tmp_path / "gz.csv"), pd.read_csv(tmp_path / "plain.csv")
    assert [Path(f).name for f in gz["file"]] == [p.name + ".gz" for p in first]
    np.testing.assert_array_equal(gz.drop(columns="file").to_numpy(), plain.drop(columns="file").to_numpy())


def test_a_folder_gives_one_row_per_image_in_natural_order(finished):
    workdir, _ = finished
    files = workdir / "data/tiny_lens/files"
    default = workdir / RESULTS / "predictions.csv"
    try:
        proc = predict_ok(workdir, RESULTS, "data/tiny_lens/files")
        frame = pd.read_csv(default)
    finally:
        default.unlink(missing_ok=True)  # the shared results folder stays as the search left it
    expected = sorted(files.glob("*.fits"), key=lambda p: int(p.stem.rsplit("-", 1)[1]))
    assert len(expected) == 240
    assert frame["file"].tolist() == [str(p.relative_to(workdir)) for p in expected]
    counts = frame["predicted"].astype(str).value_counts()
    line = proc.stdout.strip().splitlines()[-1]
    assert line.startswith("240 images") and str(Path(RESULTS) / "predictions.csv") in line
    assert all(f"{name}: {n}" in line for name, n in counts.items())


def test_tta_as_the_model_file_says_unless_told(finished, test_split, tmp_path, capsys):
    """The final stage stored whether its model averages over the 8 flips and rotations
    (``final.tta``, kept where validation chose it): predict does by default, and ``--tta`` /
    ``--no-tta`` override it. (That TTA is the mean over the 8 transforms is
    tests/trainable/test_export.py's.)"""
    from trainable.export import load_model

    workdir, _ = finished
    files = list(test_split["file"])
    out = {name: tmp_path / f"{name}.csv" for name in ("default", "tta", "plain")}
    results = workdir / RESULTS
    predict_here_ok(capsys, results, *files, "--out", str(out["default"]))
    proc = predict_here_ok(capsys, results, *files, "--tta", "--out", str(out["tta"]))
    assert "(TTA)" in proc.stdout
    proc = predict_here_ok(capsys, results, *files, "--no-tta", "--out", str(out["plain"]))
    assert "(TTA)" not in proc.stdout
    frames = {name: pd.read_csv(path) for name, path in out.items()}
    p_columns = [c for c in frames["tta"].columns if c.startswith("p_")]
    stored = "tta" if load_model(workdir / RESULTS / "best_model.pt").tta else "plain"
    np.testing.assert_array_equal(frames["default"][p_columns].to_numpy(), frames[stored][p_columns].to_numpy())
    np.testing.assert_allclose(frames["tta"][p_columns].sum(axis=1), 1.0, atol=1e-5)
    assert np.abs(frames["tta"][p_columns].to_numpy() - frames["plain"][p_columns].to_numpy()).max() > 1e-6

    # An image that every rotation and flip leaves unchanged gets the same probabilities either way.
    y, x = np.mgrid[-50:51, -50:51]
    np.save(tmp_path / "round.npy", np.exp(-(x ** 2 + y ** 2) / 200.0).astype(np.float32)[None])
    round_plain, round_tta = tmp_path / "round_plain.csv", tmp_path / "round_tta.csv"
    predict_here_ok(capsys, results, str(tmp_path / "round.npy"), "--no-tta", "--out", str(round_plain))
    predict_here_ok(capsys, results, str(tmp_path / "round.npy"), "--tta", "--out", str(round_tta))
    np.testing.assert_allclose(pd.read_csv(round_tta)[p_columns].to_numpy(),
                               pd.read_csv(round_plain)[p_columns].to_numpy(), rtol=0, atol=2e-7)


@pytest.mark.parametrize("case", ["no results folder", "no model in folder", "missing image", "corrupt image",
                                  "folder without images"])
def test_bad_inputs_are_one_line_and_write_nothing(finished, tmp_path, case, capsys):
    workdir, _ = finished
    results, image = str(workdir / RESULTS), str(workdir / "data/tiny_lens/files")
    if case == "no results folder":
        results = named = str(tmp_path / "results/nothing")
    elif case == "no model in folder":
        results = named = str(tmp_path)
    elif case == "missing image":
        image = named = str(tmp_path / "missing.fits")
    elif case == "corrupt image":
        (tmp_path / "x.fits").write_bytes(b"\x00garbage, not FITS\xff" * 10)
        image = named = str(tmp_path / "x.fits")
    else:
        (tmp_path / "empty/sub").mkdir(parents=True)
        (tmp_path / "empty/sub/notes.txt").write_text("no images here\n")
        image = named = str(tmp_path / "empty")
    out = tmp_path / "out.csv"
    if case == "no results folder":  # the command itself once; the others through its main here
        proc = predict(workdir, results, image, "--out", str(out))
    else:
        proc = predict_here(capsys, results, image, "--out", str(out))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {named}"), proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists() and not (workdir / RESULTS / "predictions.csv").exists()
    assert not list(tmp_path.rglob("*.csv*"))


# The training images' size: refused when it differs, unless the model records a resize -----------

def exported(folder: Path, **extra) -> Path:
    """A results folder holding an untrained 1-channel simple_cnn exported from a trial checkpoint
    whose best weights record 16x16 training images; ``extra`` goes to export_model."""
    import torch

    from search.files import MODEL_FILE
    from trainable.checkpoint import BEST_FILE
    from trainable.config import TrainConfig
    from trainable.export import export_model
    from trainable.models import build_backbone

    torch.manual_seed(0)
    checkpoint = folder / "checkpoint"
    checkpoint.mkdir(parents=True)
    torch.save({"model": build_backbone("simple_cnn", 2, 1).state_dict(), "epoch": 1, "value": 0.5,
                "config": TrainConfig(loss="ce").to_dict(), "class_names": ["a", "b"], "in_chans": 1,
                "normalization": {"method": "none"}, "input_size": [16, 16]}, checkpoint / BEST_FILE)
    export_model(checkpoint, folder / MODEL_FILE, **extra)
    return folder


def npy_image(path: Path, height: int, width: int) -> Path:
    np.save(path, np.random.default_rng(height * width).random((1, height, width), dtype=np.float32))
    return path


def test_the_model_file_records_the_training_images_size(tmp_path):
    from trainable.export import load_model

    assert load_model(exported(tmp_path / "a") / "best_model.pt").info["input_size"] == [16, 16]
    given = exported(tmp_path / "b", input_size=(24, 20))  # the results writer's, over the checkpoint's
    assert load_model(given / "best_model.pt").info["input_size"] == [24, 20]


def test_an_image_of_another_size_is_refused_in_one_line_writing_nothing(tmp_path, capsys):
    results = exported(tmp_path / "results")
    good, bad = npy_image(tmp_path / "good.npy", 16, 16), npy_image(tmp_path / "bad.npy", 20, 20)
    for given in ([bad], [good, bad], [bad, good]):  # alone, after an image of the right size, before one
        out = tmp_path / "out.csv"
        status, err = outcome(predict_here(capsys, str(results), *map(str, given), "--out", str(out)))
        lines = err.strip().splitlines()
        assert status == 2 and len(lines) == 1, err
        assert lines[0].startswith(f"error: {bad}: ") and "20x20" in lines[0] and "16x16" in lines[0], err
        assert not list(tmp_path.rglob("*.csv*"))


def test_an_image_of_the_training_size_is_classified(tmp_path, capsys):
    results = exported(tmp_path / "results")
    out = tmp_path / "out.csv"
    good = npy_image(tmp_path / "good.npy", 16, 16)
    status, err = outcome(predict_here(capsys, str(results), str(good), "--out", str(out)))
    assert status == 0, err
    frame = pd.read_csv(out)
    assert frame["file"].tolist() == [str(tmp_path / "good.npy")]
    np.testing.assert_allclose(frame[["p_a", "p_b"]].sum(axis=1), 1.0, atol=1e-6)


@pytest.mark.parametrize("record", ["a resize", "no input size (an older model file)"])
def test_a_model_with_a_resize_record_or_an_older_one_classifies_other_sizes(tmp_path, capsys, record):
    from trainable.data.decode import stack_images

    results = (exported(tmp_path / "results", image_size=[16, 16]) if record == "a resize"
               else exported(tmp_path / "results", input_size=None))
    big = npy_image(tmp_path / "big.npy", 20, 20)
    status, err = outcome(predict_here(capsys, str(results), str(big), "--out", str(tmp_path / "big.csv")))
    assert status == 0, err
    if record == "a resize":  # resized as the data layer resized the training images
        np.save(tmp_path / "small.npy", stack_images([np.load(big)], [str(big)], (16, 16))[0])
        status, err = outcome(predict_here(capsys, str(results), str(tmp_path / "small.npy"),
                                           "--out", str(tmp_path / "small.csv")))
        assert status == 0, err
        p = [pd.read_csv(tmp_path / f"{name}.csv")[["p_a", "p_b"]].to_numpy() for name in ("big", "small")]
        np.testing.assert_allclose(p[0], p[1], rtol=0, atol=1e-6)


def test_a_model_with_mirror_tta_predicts_each_image_with_its_mirror(tmp_path, capsys):
    """``final.tta: hflip`` (photographs): predict averages each image and its left-right mirror
    by default and with ``--tta``; ``--no-tta`` takes the image alone."""
    results = exported(tmp_path / "results", decision={"tta": "hflip"})
    image = npy_image(tmp_path / "x.npy", 16, 16)
    np.save(tmp_path / "mirror.npy", np.load(image)[..., ::-1].copy())
    frames = {}
    for name, args in (("default", []), ("tta", ["--tta"]), ("plain", ["--no-tta"])):
        proc = predict_here_ok(capsys, results, str(image), str(tmp_path / "mirror.npy"), *args,
                               "--out", str(tmp_path / f"{name}.csv"))
        assert ("(TTA: mirrored)" in proc.stdout) == (name != "plain"), proc.stdout
        frames[name] = pd.read_csv(tmp_path / f"{name}.csv")[["p_a", "p_b"]].to_numpy()
    np.testing.assert_array_equal(frames["default"], frames["tta"])
    np.testing.assert_allclose(frames["default"][0], frames["default"][1], atol=1e-6)  # a mirror pair: one answer
    np.testing.assert_allclose(frames["default"][0], frames["plain"].mean(axis=0), atol=1e-6)
    assert np.abs(frames["plain"][0] - frames["plain"][1]).max() > 1e-6
