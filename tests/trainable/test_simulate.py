"""The embedded simulator writes the real on-disk layouts, reproducibly, never over user files."""

import csv
import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from trainable.errors import UserError
from trainable.simulate import KINDS, simulate
from trainable.simulate import galaxies, lens_finding, substructure

REPO = Path(__file__).resolve().parents[2]
CSV_HEADER = "ID,is_lens,Einstein_area,numb_pix_lensed_image,flux_lensed_image_in_sigma"


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _rows(root: Path) -> list[dict]:
    with open(root / "classifications.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_lens_finding_layout(tmp_path):
    out = simulate("lens_finding", tmp_path / "lf", n=30, seed=3, workers=2)
    assert out == tmp_path / "lf"
    assert sorted(p.name for p in out.iterdir()) == ["classifications.csv", "files"]
    assert (out / "classifications.csv").read_text().splitlines()[0] == CSV_HEADER
    rows = _rows(out)
    ids = [int(row["ID"]) for row in rows]
    assert ids == list(range(100000, 100030))
    assert sorted(p.name for p in (out / "files").iterdir()) == sorted(
        f"imageEUC_VIS-{i}.fits" for i in ids)
    for image_id in ids[:5]:
        with fits.open(out / "files" / f"imageEUC_VIS-{image_id}.fits") as hdus:
            assert len(hdus) == 1
            data = hdus[0].data
            assert data.shape == (101, 101) and data.dtype.kind == "f" and data.dtype.itemsize == 4
            assert np.isfinite(data).all() and data.std() > 0
            assert hdus[0].header["PIXSCALE"] == 0.1
    assert {row["is_lens"] for row in rows} == {"0", "1"}


def test_lens_finding_label_follows_the_truth_columns(tmp_path):
    rows = _rows(simulate("lens_finding", tmp_path / "lf", n=30, seed=5, workers=2))
    for row in rows:
        detectable = (float(row["Einstein_area"]) > 0
                      and int(row["numb_pix_lensed_image"]) >= lens_finding.MIN_LENSED_PIXELS
                      and float(row["flux_lensed_image_in_sigma"])
                      >= lens_finding.MIN_FLUX_IN_SIGMA)
        assert row["is_lens"] == str(int(detectable)), row


def test_substructure_layout(tmp_path):
    out = simulate("substructure", tmp_path / "sub", n=31, seed=1, workers=2)
    assert sorted(p.name for p in out.iterdir()) == ["train", "val"]
    expected = {"train": {"no": 9, "sphere": 8, "vort": 8},
                "val": {"no": 2, "sphere": 2, "vort": 2}}
    for split, per_class in expected.items():
        assert sorted(p.name for p in (out / split).iterdir()) == ["no", "sphere", "vort"]
        for name, count in per_class.items():
            files = sorted(p.name for p in (out / split / name).iterdir())
            assert files == sorted(f"{k}.npy" for k in range(count))
            for path in sorted((out / split / name).iterdir())[:3]:
                image = np.load(path)
                assert image.shape == (1, 150, 150) and image.dtype == np.float32
                assert image.min() == 0.0 and image.max() == 1.0


def test_real_set_sizes_split_like_deeplense():
    counts = substructure.split_counts(substructure.REAL_N)
    assert counts == {"train": {c: 10000 for c in substructure.CLASSES},
                      "val": {c: 2500 for c in substructure.CLASSES}}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_same_seed_same_bytes_whatever_the_workers(tmp_path, kind):
    one = _hashes(simulate(kind, tmp_path / "a", n=12, seed=7, workers=1))
    two = _hashes(simulate(kind, tmp_path / "b", n=12, seed=7, workers=2))
    assert one == two and len(one) >= 12
    other = _hashes(simulate(kind, tmp_path / "c", n=12, seed=8, workers=2))
    assert one.keys() == other.keys()
    image_names = [name for name in one if not name.endswith(".csv")]
    assert all(one[name] != other[name] for name in image_names)


def test_classes_differ_in_substructure_only():
    # Same image index and seed but another class: the smooth system is the same draw, so the
    # images differ (substructure) yet stay close (same lens, source and noise level).
    renderer = substructure.SubstructureRenderer()
    images = {name: renderer.render(name, np.random.default_rng([0, 1]))[0][0]
              for name in substructure.CLASSES}
    assert not np.array_equal(images["no"], images["sphere"])
    assert not np.array_equal(images["no"], images["vort"])
    for name in ("sphere", "vort"):
        assert np.corrcoef(images["no"].ravel(), images[name].ravel())[0, 1] > 0.5


def test_orientations_are_random():
    # A fixed lens orientation (as in the public DeepLenseSim) would make flips and rotations a
    # false symmetry: the mass position angles drawn must cover the half circle.
    angles = [galaxies.macro_lens(np.random.default_rng([0, i]), 1.0)[1]
              for i in range(200)]
    assert np.histogram(angles, bins=6, range=(0, np.pi))[0].min() > 10


@pytest.mark.parametrize("kind,n", [("lens_finding", 1), ("substructure", 5), ("substructure", 0)])
def test_too_few_images(tmp_path, kind, n):
    with pytest.raises(UserError, match=r"^--n "):
        simulate(kind, tmp_path / "out", n=n, workers=1)
    assert not any(tmp_path.iterdir())


def test_unknown_kind_lists_the_known_ones(tmp_path):
    with pytest.raises(UserError, match="lens_finding, substructure"):
        simulate("lensing", tmp_path / "out", n=10)


def test_non_empty_out_is_refused_and_untouched(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(UserError, match=r"^--out .*not empty"):
        simulate("lens_finding", out, n=10, workers=1)
    assert _hashes(tmp_path) == {"mine/notes.txt": hashlib.sha256(b"keep me").hexdigest()}


def test_empty_out_folder_is_used(tmp_path):
    (tmp_path / "out").mkdir()
    simulate("substructure", tmp_path / "out", n=6, workers=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert len(list((tmp_path / "out").rglob("*.npy"))) == 6


def test_unwritable_out(tmp_path):
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(UserError, match=r"^--out .*a_file/out: cannot write"):
        simulate("substructure", tmp_path / "a_file" / "out", n=6, workers=1)


def test_failed_run_leaves_nothing(tmp_path, monkeypatch):
    def broken(rng, sie):
        raise RuntimeError("renderer broke")

    monkeypatch.setitem(substructure.SUBSTRUCTURE, "vort", broken)
    with pytest.raises(RuntimeError, match="renderer broke"):
        simulate("substructure", tmp_path / "out", n=9, workers=1)
    assert not any(tmp_path.iterdir())


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "trainable.simulate", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def test_cli_writes_a_set(tmp_path):
    result = _cli("substructure", "--out", str(tmp_path / "sub"), "--n", "9", "--seed", "2",
                  "--workers", "2")
    assert result.returncode == 0, result.stderr
    assert "no: 3, sphere: 3, vort: 3" in result.stderr
    assert _hashes(tmp_path / "sub") == _hashes(
        simulate("substructure", tmp_path / "again", n=9, seed=2, workers=1))


def test_cli_refuses_a_non_empty_out(tmp_path):
    (tmp_path / "data.csv").write_text("ID,is_lens\n1,0\n")
    before = _hashes(tmp_path)
    result = _cli("lens_finding", "--out", str(tmp_path), "--n", "10")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"error: --out {tmp_path}: folder is not empty")
    assert _hashes(tmp_path) == before
    assert sorted(p.name for p in tmp_path.parent.iterdir() if ".partial-" in p.name) == []


def test_cli_unknown_kind_is_a_usage_error(tmp_path):
    result = _cli("weak_lensing", "--out", str(tmp_path / "x"))
    assert result.returncode == 2 and "invalid choice" in result.stderr
    assert not (tmp_path / "x").exists()
