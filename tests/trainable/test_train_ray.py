"""The training function runs as a real Ray Tune trainable: metrics and checkpoints reach Tune."""

import tempfile
from pathlib import Path

import torch

from trainable.report import RayReporter
from trainable.checkpoint import CHECKPOINT_FILE
from trainable.train import train


def test_train_reports_metrics_and_checkpoints_through_ray_tune(local_ray, three_digits, tmp_path):
    from ray import tune

    def trainable(config, dataset):
        train(config, dataset, RayReporter())

    tuner = tune.Tuner(
        tune.with_resources(tune.with_parameters(trainable, dataset=three_digits), {"cpu": 1}),
        param_space={"backbone": "simple_cnn", "epochs": 2, "batch_size": 32,
                     "lr": tune.grid_search([3e-3, 1e-3])},
        tune_config=tune.TuneConfig(metric="val_auc", mode="max"),
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="trainable",
                                  checkpoint_config=tune.CheckpointConfig(num_to_keep=1)),
    )
    results = tuner.fit()
    assert results.num_errors == 0 and len(results) == 2
    best = results.get_best_result()
    assert best.metrics["epoch"] == 2 and best.metrics["val_auc"] > 0.9
    with best.checkpoint.as_directory() as folder:
        state = torch.load(f"{folder}/{CHECKPOINT_FILE}", weights_only=True)
    assert state["epoch"] == 1 and state["config"]["lr"] == best.config["lr"]
    assert state["class_names"] == ["0", "1", "7"]


def test_a_failed_trial_resumes_from_its_ray_checkpoint(local_ray, three_digits, tmp_path):
    from ray import tune

    marker = tmp_path / "crashed-once"

    class CrashOnce(RayReporter):
        """Dies once after the second epoch's report, as a trial on a lost node would."""

        def report(self, metrics, checkpoint_dir):
            super().report(metrics, checkpoint_dir)
            if metrics["epoch"] == 2 and not marker.exists():
                marker.touch()
                raise RuntimeError("node lost")

    def trainable(config, dataset):
        scratch = Path(tempfile.gettempdir())  # the worker's: where a restored copy would be left
        before = set(scratch.glob("checkpoint_tmp_*"))
        try:
            train(config, dataset, CrashOnce())
        finally:
            left = sorted(str(p) for p in set(scratch.glob("checkpoint_tmp_*")) - before)
            with open(tmp_path / "left-behind.txt", "a") as out:
                out.write("".join(f"{p}\n" for p in left) + "attempt\n")

    tuner = tune.Tuner(
        tune.with_resources(tune.with_parameters(trainable, dataset=three_digits), {"cpu": 1}),
        param_space={"backbone": "simple_cnn", "epochs": 4, "batch_size": 32, "lr": 3e-3},
        tune_config=tune.TuneConfig(metric="val_auc", mode="max"),
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="resume",
                                  failure_config=tune.FailureConfig(max_failures=1)),
    )
    result = tuner.fit().get_best_result()
    assert marker.exists() and result.error is None
    epochs = result.metrics_dataframe["epoch"].tolist()
    # Continued at 3 after the crash, not from 1 again. (Epoch 2's row may be lost with the actor
    # that raised right after reporting it; its checkpoint was kept, which is what counts.)
    assert epochs[0] == 1 and epochs[-2:] == [3, 4] and sorted(set(epochs)) == epochs, epochs
    # The restore read the checkpoint where Tune keeps it and left no copy in the node's /tmp.
    assert (tmp_path / "left-behind.txt").read_text() == "attempt\nattempt\n"
