"""Architecture and hyperparameter search on Optuna: space from YAML, trials as ordinary fits, Pareto outputs.

``resnet-lightning search --config SEARCH.yaml`` (:mod:`.command`) reads the search
file (:mod:`.config`, :mod:`.space`, :mod:`.objectives`, :mod:`.algorithms`), opens
the study's storage (:mod:`.storage`), runs each trial as a ``resnet-lightning
fit`` in a process of its own (:mod:`.trial`, reporting through
:mod:`.reporter`) and writes trials.csv, the Pareto front and best.yaml
(:mod:`.outputs`), with the parameter importances and the hypervolume
(:mod:`.importance`). ``confirm:`` retrains the Pareto points with further seeds
as a comparison (:mod:`.confirm`) and gives each point its interval (:mod:`.intervals`).
"""
