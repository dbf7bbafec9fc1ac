"""The names of the files a search leaves in its results folder (``results/<name>/``), in one
place, importable without torch or Ray (the report and the prediction command start fast)."""

SPACE_COPY = "space.yaml"  # the resolved space file a search was started with, for --resume
SUMMARY_FILE = "summary.json"
LEADERBOARD_FILE = "leaderboard.csv"
BEST_CONFIG_FILE = "best_config.yaml"
MODEL_FILE = "best_model.pt"
STUDY_FILE = "optuna.journal"
HISTORY_FILE = "history.csv"
PREDICTIONS_FILE = "test_predictions.csv"  # the final model on the test split, for the report
PREDICT_FILE = "predictions.csv"  # python -m search.predict's default output
MISCLASSIFIED_FILE = "misclassified.npz"
REPORT_FOLDER = "report"
TRAIN_ON_DIR = "train_on"  # the best trial's epochs after the search: checkpoint/, metrics.jsonl, record.json
TRAIN_ON_RECORD = "record.json"
TRAIN_ON_METRICS = "metrics.jsonl"  # trainable.report.METRICS_FILE, as the training on's reporter writes it
