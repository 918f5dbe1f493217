"""Command-line options of the offline Pipecat bot, importable without Pipecat (for ``moq-audio
--help``, which must not load Pipecat)."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_arguments"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options :func:`moq_audio.pipecat.demo.run_pipecat_demo` reads to ``parser``,
    those it does not have yet (it shares ``moq-audio demo``'s ``--addr``, ``--lead-ms``,
    ``--first-delay``, ``--events``)."""
    options: list[tuple[str, dict[str, Any]]] = [
        ("--addr", {"default": "127.0.0.1:4443", "help": "address to serve the page and MoQ on"}),
        ("--lead-ms", {"type": float, "default": 60.0, "help": "pacing lead in ms (default %(default)s)"}),
        (
            "--first-delay",
            {"type": float, "default": 2.0, "metavar": "SECONDS", "help": "pause before the first reply"},
        ),
        ("--events", {"metavar": "FILE", "help": "append JSON-lines events (barge-ins, heard text) here"}),
        (
            "--log-level",
            {"default": "INFO", "help": "with --pipecat: Pipecat's log level on stderr (DEBUG shows every frame)"},
        ),
    ]
    for flag, kwargs in options:
        try:
            parser.add_argument(flag, **kwargs)
        except argparse.ArgumentError:
            pass  # the parser already has it
