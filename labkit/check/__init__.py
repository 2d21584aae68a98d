"""Linearizability: could a recorded history of operations have come from one
copy of the data, each operation taking effect at one instant between its call
and its return?

`linearizable(history)` answers with Wing & Gong's search, memoised as in Lowe's
and Porcupine's checkers (labkit.check.search). The history is split by key first
(a history is linearizable iff each key's sub-history is: P-compositionality),
and the keys are checked smallest first; a key whose search outgrows its budget
does not stop the others, so one failing key is found behind any number of
undecidable ones. On failure the result names the key and a window: a few of its
operations that on their own are already impossible (labkit.check.window).

Models: `KV` (get, put, append) and `REGISTER` (read, write, cas), or your own
`Model` (labkit.check.models). Histories published by other checkers (Jepsen's
EDN) are read by labkit.check.jepsen.

An operation that never returned (`ret=None`, e.g. its client timed out) may
have taken effect at any moment after its call, or never; a read (`Model.reads`:
"get", "read") that never returned is ignored.
"""

from labkit.check.checker import CheckResult, linearizable
from labkit.check.models import KINDS, KV, REGISTER, Model, Op
from labkit.check.search import SearchTooLarge

__all__ = ["KINDS", "KV", "REGISTER", "CheckResult", "Model", "Op", "SearchTooLarge",
           "linearizable"]
