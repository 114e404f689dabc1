"""The report of a finished study: tables (trials, references, leaderboard), plots, report.html.

It reads what a study stored (search.records, search.tracks, search.constraints, search.settings,
search.candidate, search.verdict) and never imports the study loop (study, objective, trial_loop, workers,
promotion, runner): a report can be written from storage alone.
"""
