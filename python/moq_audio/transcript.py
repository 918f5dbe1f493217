"""Turning ``heard_ms`` into the text the listener actually heard.

After a barge-in an agent truncates its own transcript to what was played, so the language
model does not believe it said things the user never heard. TTS engines either give word
timings (ms from the start of the utterance) or nothing; for the latter a speaking rate in
characters per second is a usable estimate (espeak-ng's default 175 words/min is about 14.6
characters/s of English text, which is the default here).
"""

from __future__ import annotations

from collections.abc import Sequence

#: espeak-ng's default rate is 175 words per minute (``espeak-ng --help``: "-s <integer> Speed in
#: approximate words per minute. The default is 175"); at ~5 characters per English word plus a
#: space that is 175 * 5 / 60 = 14.6 characters per second.
DEFAULT_CHARS_PER_SECOND = 14.6


def truncate_text(
    text: str,
    heard_ms: float,
    *,
    word_timings: Sequence[tuple[str, float, float]] | None = None,
    chars_per_second: float = DEFAULT_CHARS_PER_SECOND,
) -> str:
    """Return the prefix of ``text`` that had been heard after ``heard_ms`` ms of playout.

    Args:
        text: the utterance as sent to TTS.
        heard_ms: ms of the utterance rendered by the listener (``FlushReport.heard_ms``).
        word_timings: optional ``(word, start_ms, end_ms)`` for each word in order, as TTS
            engines report them; a word counts as heard once its midpoint was played.
        chars_per_second: speaking rate used when there are no word timings.

    Returns:
        Whole words only, never a partial word; ``""`` when nothing was heard.

    Raises:
        ValueError: for a negative ``heard_ms`` or a non-positive ``chars_per_second``.
    """
    if heard_ms < 0:
        raise ValueError(f"heard_ms must be >= 0, got {heard_ms}")
    if word_timings is not None:
        heard = [w for (w, start, end) in word_timings if (start + end) / 2 <= heard_ms]
        return " ".join(heard)
    if chars_per_second <= 0:
        raise ValueError(f"chars_per_second must be > 0, got {chars_per_second}")
    budget = heard_ms / 1000.0 * chars_per_second
    words = text.split()
    out = []
    used = 0.0
    for word in words:
        # A word is heard once the rate says we got past its middle.
        if used + len(word) / 2 > budget:
            break
        out.append(word)
        used += len(word) + 1
    return " ".join(out)
