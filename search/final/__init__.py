"""The final stage of a search: from its best trials to the model it hands back.

A trial's checkpoint is chosen by one validation number; it still decides at an uncalibrated
``argmax``, which a sampling strategy that moved the training prior pushes toward one class
(BENCHMARKS.md, "What does the final stage add to the best trial?"). This stage, on by default
(the ``final:`` block of a space file, :class:`search.space.FinalSettings`):

1. takes the best checkpoints of the top ``final.ensemble`` trials (1: the best trial alone),
   those whose validation value is within one standard error of the best's (:func:`close_to_best`),
   and recomputes each one's BatchNorm statistics on the training images, kept where the
   search's metric on the validation split does not get worse (running statistics left by a
   short training lag its weights and can push its decisions toward one class);
2. corrects each member for the prior its sampling strategy trained under
   (:func:`trainable.decide.prior_log_weights`), averages the members' probabilities, over the
   8 flips and rotations of each image too with ``final.tta`` (``hflip``: over each image and its
   left-right mirror, for photographs);
3. fits one temperature on the validation split (``final.temperature``), then, for a binary
   task, the threshold of ``final.threshold`` on the calibrated validation probabilities, each
   cut scored by expected counts (``final.threshold_counts: expected``: each image counts the
   probability a logistic fit of the labels gives it, steadier on a small split) or by the labels;
4. tests every step on the test split, side by side: the best trial as the search left it
   (argmax), the best trial calibrated, with TTA, the ensemble, with TTA;
5. chooses among the calibrated steps the last (most averaged) whose validation value of the
   search's metric is within one standard error of the best step's, and writes it as ``best_model.pt``
   (:mod:`trainable.export`), which ``search.predict`` uses unchanged; the test metrics reported
   are that file's own predictions';
6. optionally (:mod:`search.final.retrain`, both off by default: they train) checks the candidates with
   other seeds (``final.seeds``), and refits the best configuration on the training and validation
   splits (``final.refit``): the refit is then the final model, deciding with the temperature,
   threshold and TTA of the best trial's step that was chosen or, for an ensemble, of the best
   trial alone, all fitted before the refit.

The validation split chose the trials, so it flatters the single best one; a step that adds
members or TTA is taken unless it scores worse there by more than the split's noise.
"""
