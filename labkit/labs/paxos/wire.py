"""What both Paxos referees share: the rule they check on every new ballot a
node starts (ballots are unique to one proposer, and each proposer's only
grow, also across its crashes), and how they name the cause of a broken
promise."""

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



class PromiseLedger:
    """What both referees keep to name the cause of a broken promise: per
    acceptor, the ballot it is bound by (`promised`: promised or accepted),
    the highest it promised in so many words (`pledged`), and how often it
    crashed, in all (`crashes`) and when it became bound (`crashes_then`; for
    a proposer, when its last ballot started)."""

    def __init__(self) -> None:
        self.promised: dict[str, int] = {}
        self.pledged: dict[str, int] = {}
        self.crashes: dict[str, int] = {}
        self.crashes_then: dict[str, int] = {}

    def crashed(self, name: str) -> None:
        self.crashes[name] = self.crashes.get(name, 0) + 1

    def crashed_since(self, src: str) -> bool:
        """Whether `src` crashed after it became bound by its `promised` ballot."""
        return self.crashes.get(src, 0) > self.crashes_then.get(src, 0)

    def _bound(self, src: str, b: int) -> None:
        """`src` promised or accepted ballot b: no ballot below b from now on."""
        self.promised[src], self.crashes_then[src] = b, self.crashes.get(src, 0)

    def cause(self, src: str, rule: str, held: object) -> str:
        """Which promise `src` broke, as the rule that names its cause: `rule`
        if its disk still `held` its promised ballot (it broke it knowingly);
        else one a crash since undid ("forgotten promise"), or one it made only
        by accepting that ballot ("promise on accept"). The disk only picks the
        words: the wire alone decided that a rule was broken."""
        promised = self.promised.get(src, 0)
        if type(held) is int and held >= promised:
            return rule
        if self.crashed_since(src):
            return "forgotten promise"
        if self.pledged.get(src, 0) < promised:
            return "promise on accept"
        return rule

    def _how(self, src: str) -> str:
        """How `src` came to be bound by its `promised` ballot, in words."""
        b = self.promised.get(src, 0)
        how = f"promised ballot {b}" if self.pledged.get(src, 0) >= b \
            else f"accepted ballot {b} (without promising it)"
        return how + (", then crashed" if self.crashed_since(src) else "")
