"""The rule both Paxos referees check on every new ballot a node starts:
ballots are unique to one proposer, and each proposer's only grow (also
across its crashes)."""

from __future__ import annotations

from labkit.errors import InvariantViolation


def check_new_ballot(owner: dict[int, str], started: dict[str, int], src: str,
                     ballot: object, kind: str) -> None:
    """`src` starts `ballot` with a message of `kind` (prepare, p1a): raise
    InvariantViolation unless it is a positive int no one else started and
    not below a ballot `src` started; then record it in `owner` and
    `started`."""
    if type(ballot) is not int or ballot <= 0:
        raise InvariantViolation(f"ballots: {src} sent a {kind} with ballot "
                                 f"{ballot!r}; ballots are positive ints")
    first = owner.setdefault(ballot, src)
    if first != src:
        raise InvariantViolation(
            f"ballot uniqueness: {src} started ballot {ballot}, which {first} "
            "started already; no two proposers may share a ballot (proposer i "
            "of n owns i, i + n, i + 2n, ...)")
    last = started.get(src, 0)
    if ballot < last:
        raise InvariantViolation(
            f"ballot freshness: {src} started ballot {ballot} after ballot {last}; "
            "each new ballot must exceed every ballot this proposer used, also "
            f"across a crash (persist it before sending the {kind})")
    started[src] = ballot
