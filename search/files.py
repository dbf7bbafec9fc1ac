"""The names of the files a search leaves in its results folder (``results/<name>/``), in one
place, importable without torch or Ray (the report and the prediction command start fast)."""

SPACE_COPY = "space.yaml"  # the resolved space file a search was started with, for --resume
SUMMARY_FILE = "summary.json"
LEADERBOARD_FILE = "leaderboard.csv"
BEST_CONFIG_FILE = "best_config.yaml"
MODEL_FILE = "best_model.pt"
STUDY_FILE = "optuna.journal"
HISTORY_FILE = "history.csv"
PREDICTIONS_FILE = "test_predictions.csv"
MISCLASSIFIED_FILE = "misclassified.npz"
REPORT_FOLDER = "report"
