"""Seconds into a recording as people write them: "12:31", "1:02:05"."""

from __future__ import annotations


def timecode(seconds: float) -> str:
    """m:ss under an hour, h:mm:ss from then on (whole seconds, rounded down)."""
    whole = max(0, int(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
