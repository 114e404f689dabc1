"""Studies, tracks, constraints, Pareto fronts, reports, plots and export.

search composes spaces (what a network is) and evaluators (how it is measured); neither knows of it.
"""
