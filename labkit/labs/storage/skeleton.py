"""The quorum lab's skeleton, the class a student derives from: a put, a get,
picking the newest answer and read repair, each raising NotImplementedError
that says what it must do."""

from __future__ import annotations

from .base import QuorumBase


class QuorumSkeleton(QuorumBase):
    """Your quorum client: Dynamo-style writes to W and reads from R of a
    key's N replicas, newest version wins, read repair of stale replicas."""

    def put(self, key: str, value: object):
        """A generator: write `value` under `key` with a new version; return
        the version once W replicas acked it (fail if they cannot)."""
        raise NotImplementedError(
            "not yet implemented: put: self.version += 1; call(r, 'put', "
            "self.kv.timeout, key=, version=, value=) on each of owners(key); "
            "yield first(calls, self.kv.w, 'a write') (it fails with Unavailable "
            "when W acks cannot come); return the version")

    def get(self, key: str):
        """A generator: the newest value among R replicas' answers (None if no
        answer has the key); read repair once every answer is in."""
        raise NotImplementedError(
            "not yet implemented: get: call(r, 'get', self.kv.timeout, key=) on "
            "each of owners(key); replies = yield first(calls, self.kv.r, 'a "
            "read'); once settled(calls) is done, repair(key, owners, calls); "
            "return newest(replies).value")

    def newest(self, answers: list) -> object:
        """The answer (a get_ok message with version and value) with the
        highest version."""
        raise NotImplementedError(
            "not yet implemented: newest: the answer whose .version is highest")

    def repair(self, key: str, targets: list, calls: list) -> None:
        """Read repair: bring every replica that answered an older version up
        to the newest answer."""
        raise NotImplementedError(
            "not yet implemented: repair: of the calls that did not fail, find "
            "the newest answer; send (not call) a 'put' with its key, version "
            "and value to each target whose answer is older")
