"""What the trials of a search left: their records and ranking, the Pareto set, and the best
trial trained on for what is left of the time budget."""
