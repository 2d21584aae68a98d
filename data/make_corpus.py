"""Write data/corpus.txt: documents of made-up words whose frequencies follow
Zipf's law (the word of rank k appears in proportion to 1 / k**S), like
natural text, so word counts have a few very hot keys and a long tail.

One document per line: an id, a tab, then space-separated lowercase words.
Seeded, so running it again writes the same file:

    python data/make_corpus.py            # writes data/corpus.txt
"""

from __future__ import annotations

import random
import sys
from itertools import accumulate
from pathlib import Path

SEED = 2004             # the year of the MapReduce paper
VOCABULARY = 5000       # distinct words
S = 1.0                 # Zipf exponent (about 1 for English)
DOCUMENTS = 400
MEDIAN_WORDS = 80       # words per document: lognormal around this median
SIGMA = 0.6
SYLLABLES = [c + v for c in "bdfghklmnprstvz" for v in "aeiou"]
PATH = Path(__file__).with_name("corpus.txt")


def vocabulary(rng: random.Random, count: int) -> list[str]:
    """`count` distinct made-up words, rank 1 first; frequent words are short,
    as in real languages (one syllable for the top ranks, up to four)."""
    words: list[str] = []
    seen: set[str] = set()
    while len(words) < count:
        syllables = 1 + min(3, len(str(len(words) + 1)) - 1)
        word = "".join(rng.choice(SYLLABLES) for _ in range(syllables))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


def corpus(seed: int = SEED) -> str:
    """The whole corpus as text, a function of the seed only."""
    rng = random.Random(seed)
    words = vocabulary(rng, VOCABULARY)
    weights = list(accumulate(1 / rank**S for rank in range(1, VOCABULARY + 1)))
    lines = []
    for doc in range(DOCUMENTS):
        length = max(5, round(rng.lognormvariate(0.0, SIGMA) * MEDIAN_WORDS))
        text = " ".join(rng.choices(words, cum_weights=weights, k=length))
        lines.append(f"doc{doc:03d}\t{text}\n")
    return "".join(lines)


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else PATH
    target.write_text(corpus())
    print(f"wrote {target} ({target.stat().st_size} bytes)")
