"""How much training a search gives its trials, settled before they start: ASHA's rungs from the
set's size (:mod:`search.plan.rungs`), a training step's cost (:mod:`search.plan.cost`), the
epochs, trials and image size that fill a time budget (:mod:`search.plan.sizing`), the data
(:mod:`search.plan.data`) and the dry run's estimate (:mod:`search.plan.estimate`).
The rule, for users: ``docs/time-budget.md``."""

from search.plan.cost import EPOCH_EXTRA_S, IMAGE_SIZES, TRIAL_START_S, Cost, image_sizes, measure, resized, small_copy
from search.plan.rungs import (MAX_PROMOTIONS, MIN_FULL_EPOCHS, MIN_PROMOTIONS, MIN_PROMOTIONS_TRAIN_ON, MIN_RUNG_STEPS,
                               asha_epochs, full_epochs, grace_epochs, rungs, steps_per_epoch)
from search.plan.sizing import (MIN_TRIALS, MIN_TRIALS_AT_FLOOR, SAFETY, TRAIN_ON, Sizing, apply, size_search,
                                train_on_share)
