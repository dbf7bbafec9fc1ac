"""The figures of a search's report, each drawn from the results folder into one PNG.

Each ``plot_*`` function takes the results folder, its summary and the PNG to write, and returns
the figure's caption; it raises :class:`Skipped` with the reason when the results cannot give the
figure. The data behind each figure is prepared by a small function of its own, for the tests.
One module a figure's topic: :mod:`.curves`, :mod:`.importance`, :mod:`.parallel`, :mod:`.pareto`
and :mod:`.final` (the final model on the test split), on what :mod:`.common` shares.
"""

from search.report.figures.common import STYLE, Skipped, is_number, require, saved_figure  # first: Agg
from search.report.figures.curves import (END_MARKERS, LINE_STYLES, Curve, best_point, learning_curves,
                                          plot_learning_curves, read_history)
from search.report.figures.final import (MISCLASSIFIED_GRID, plot_confusion_matrix, plot_misclassified,
                                         plot_reliability, plot_roc, read_predictions, roc_curves)
from search.report.figures.importance import (FANOVA_MIN_TRIALS, FEW_TRIALS, PED_ANOVA_MIN_TRIALS, Importances,
                                              first_rung_study, load_study, param_importances, plot_importance)
from search.report.figures.parallel import (NA_POSITION, PARALLEL_TRIALS, Axis, parallel_axis, parallel_data,
                                            plot_parallel_coordinates, searched_parameters)
from search.report.figures.pareto import pareto_data, plot_pareto

__all__ = ["STYLE", "Skipped", "is_number", "require", "saved_figure",
           "END_MARKERS", "LINE_STYLES", "Curve", "best_point", "learning_curves", "plot_learning_curves",
           "read_history",
           "MISCLASSIFIED_GRID", "plot_confusion_matrix", "plot_misclassified", "plot_reliability", "plot_roc",
           "read_predictions", "roc_curves",
           "FANOVA_MIN_TRIALS", "FEW_TRIALS", "PED_ANOVA_MIN_TRIALS", "Importances", "first_rung_study",
           "load_study", "param_importances", "plot_importance",
           "NA_POSITION", "PARALLEL_TRIALS", "Axis", "parallel_axis", "parallel_data", "plot_parallel_coordinates",
           "searched_parameters",
           "pareto_data", "plot_pareto"]
