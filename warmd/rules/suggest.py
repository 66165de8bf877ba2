"""Did-you-mean: the nearest known name to a misspelt one (pure)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def nearest(word: str, candidates: Iterable[str]) -> str | None:
    """The known name closest to `word`, or None when nothing is close enough.

    difflib's ratio handles transpositions and dropped letters well enough for
    names of a few to twenty characters, which is all a rule file holds.
    """
    pool = sorted(set(candidates))
    if not word or not pool:
        return None
    folded = {name.lower(): name for name in pool}
    if word.lower() in folded and folded[word.lower()] != word:
        return folded[word.lower()]
    matches = difflib.get_close_matches(word.lower(), list(folded), n=1, cutoff=0.6)
    return folded[matches[0]] if matches else None


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """A "did you mean 'x'?" sentence, or "" when no candidate is near."""
    found = nearest(word, candidates)
    return f"did you mean '{found}'?" if found else ""
