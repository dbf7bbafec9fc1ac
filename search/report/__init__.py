"""Figures and one HTML page that review a finished search (``python -m search.report``), and
the search's summary run in W&B. Importable without Ray."""
