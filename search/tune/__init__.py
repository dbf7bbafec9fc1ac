"""The Ray Tune stage: the tuner, the Optuna searcher, the schedulers, the trial table, the W&B
callback, the cluster helpers, and the one adapter to Ray's and Optuna's private names."""
