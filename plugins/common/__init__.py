"""Pieces shared by every plugin: option validation and ADA's overfitting heuristic."""
