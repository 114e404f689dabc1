"""The study loop: a study, its trials, the promotion of its best candidates, and the sequence of a run.

search composes spaces (what a network is) and evaluators (how it is measured); neither knows of it.
Its own rooms, one job each (imports only go down this list, never up):
- search/ (this package): settings, tracks, constraints, records, candidate (the study's definitions and the
  measurement of one candidate); study, objective, trial_gate, trial_loop, workers, progress, promotion, runner
  (the loop).
- search.report: tables, plots and report.html of a finished study.
- search.export: the NTIRE-layout export of a finished study's trials.
- search.verdict: the PSNR verdict (calibration, known quality, measurement cache, fidelity).
report and export read a stored study through the definitions (records, tracks, constraints, settings,
candidate) and never import the loop (study, objective, trial_gate, trial_loop, workers, promotion, runner);
verdict imports nothing of search outside itself. tests/test_search_layout.py reads the imports to hold this.
"""
