"""Many runs on Dask, and automatic tuning: the layer above the scenarios that
fans runs out to worker processes, like `labkit.real` the only simulated-side
code that uses Dask (and Optuna).

    runs.py    `sweep(scenario, grid, seeds)`: every (params, seed) run, in
               batches on a Dask cluster (a LocalCluster it starts and stops,
               or a given client), back as a DataFrame of rows (`row`)
    tuning.py  `tune(scenario, space, slo, trials=, seeds=)`: Optuna's seeded
               TPE sampler searching knobs for the best setting that meets an
               SLO, each setting over several seeds, one at a time, stopped
               once they prove it misses (`reachable_ends`); `Tuning.plot()`

Nothing below this layer imports it; the simulations stay single-process and
free of the wall clock. The package's name is plural so that `labkit.sweep`
and `labkit.tune` can be the functions (a package named `sweep` would replace
the function `labkit.sweep` as soon as it was imported).
"""

from .runs import RunFailed, local_client, row, sweep
from .tuning import Tuning, interval, pareto, reachable_ends, slo_bounds, tune

__all__ = ["RunFailed", "Tuning", "interval", "local_client", "pareto",
           "reachable_ends", "row", "slo_bounds", "sweep", "tune"]
