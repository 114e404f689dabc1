"""The NTIRE-layout export of a finished study: one plain model file (torch only), weights, config, metrics.

writer: the files of one architecture; source: the model file's pruned source; metrics: a trial's figures under
an edition's rules; trials: a study's trials exported. Like search.report, it reads a stored study and never
imports the study loop (study, objective, trial_loop, workers, promotion, runner).
"""
