"""The quorum lab's worked answer: write to all N owners and return after W
acks; read from all N, return the newest of the first R answers, and repair
the replicas that answered older versions once every answer is in."""

from __future__ import annotations

from labkit.sim import first, settled

from .skeleton import QuorumSkeleton


class QuorumReference(QuorumSkeleton):
    """The worked answer to the quorum lab."""

    def put(self, key, value):
        self.version += 1
        version = self.version
        calls = [self.call(r, "put", self.kv.timeout, key=key, version=version,
                           value=value) for r in self.owners(key)]
        yield first(calls, self.kv.w, f"a write of {key!r}")
        return version

    def get(self, key):
        owners = self.owners(key)
        calls = [self.call(r, "get", self.kv.timeout, key=key) for r in owners]
        replies = yield first(calls, self.kv.r, f"a read of {key!r}")
        settled(calls).add_done_callback(lambda _f: self.repair(key, owners, calls))
        return self.newest(replies).value

    def newest(self, answers):
        return max(answers, key=lambda m: m.version)

    def repair(self, key, targets, calls):
        answered = [(t, f.value) for t, f in zip(targets, calls, strict=True)
                    if not f.failed]
        best = self.newest([m for _, m in answered])
        for target, m in answered:
            if m.version < best.version:
                self.send(target, "put", key=key, version=best.version,
                          value=best.value)
