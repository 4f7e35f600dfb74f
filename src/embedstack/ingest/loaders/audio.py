"""Speech: decode with PyAV, transcribe with Whisper base, one block per Whisper segment.

Each segment keeps its start and end in seconds, so a chunk can say where in the recording it
was said. Long recordings are decoded and transcribed a piece at a time (a few minutes of
16 kHz samples), cut at the quietest moment near each piece's end so no word is split; memory
stays bounded whatever the length. Language is detected on the first piece with speech and
kept for the rest, unless given.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from embedstack.errors import IngestError
from embedstack.ingest.documents import Block, Document
from embedstack.models.speech import INSTALL_HINT, SAMPLE_RATE, load_whisper

PIECE_SECONDS = 300  # audio transcribed per call: 19 MB of float32 samples
QUIET_SEARCH_SECONDS = 10  # where to look for the quietest cut, before the piece's end
QUIET_FRAME_SECONDS = 0.1
TRUNCATED_SLACK = 0.9  # fewer decoded seconds than this share of the declared length: damaged


@dataclass(frozen=True)
class SpeechOptions:
    """How Whisper transcribes: `language` an ISO code ("en", "de") or None to detect it."""

    language: str | None = None
    beam_size: int = 1
    threads: int | None = None  # default: the cores this process may use


class AudioProgress(Protocol):
    """Seconds of audio: `add_total(duration)` once a file is opened, `advance(s)` as it goes."""

    def add_total(self, seconds: float) -> None: ...

    def advance(self, seconds: float) -> None: ...


class _NoProgress:
    def add_total(self, seconds: float) -> None:
        pass

    def advance(self, seconds: float) -> None:
        pass


def load_audio(
    path: Path,
    data: bytes,
    options: SpeechOptions | None = None,
    progress: AudioProgress | None = None,
) -> list[Document]:
    """One document whose blocks are the transcript's segments, timed in seconds."""
    options = options or SpeechOptions()
    progress = progress or _NoProgress()
    _check_wav_length(data)
    model = load_whisper(options.threads)
    blocks: list[Block] = []
    language = options.language
    decoded = 0.0
    with _open(data) as (pieces, declared):
        progress.add_total(declared or 0.0)
        for offset, samples in pieces:
            segments, info = model.transcribe(
                samples, language=language, beam_size=options.beam_size, vad_filter=True
            )
            done = 0.0
            seconds = len(samples) / SAMPLE_RATE
            for segment in segments:
                # Whisper's last time stamp can overshoot the piece's end by a few frames.
                reached = min(segment.end, seconds)
                text = segment.text.strip()
                if text:
                    start, end = offset + min(segment.start, reached), offset + reached
                    blocks.append(Block(text, kind="speech", time_start=round(start, 2),
                                        time_end=round(end, 2)))  # fmt: skip
                    language = language or info.language
                progress.advance(max(0.0, reached - done))
                done = max(done, reached)
            decoded = offset + seconds
            progress.advance(max(0.0, seconds - done))
    if declared and decoded < declared * TRUNCATED_SLACK - 1:
        raise IngestError(
            f"truncated or damaged audio: {decoded:.1f} s decoded of {declared:.1f} s declared"
        )
    if not blocks:
        raise IngestError(f"no speech found in {decoded:.1f} s of audio")
    metadata = {"duration": round(decoded, 2), "language": language or ""}
    return [Document.from_blocks(path, "audio", blocks, metadata=metadata)]


class _open:
    """`with _open(data) as (pieces, declared_seconds)`: the container, closed on exit."""

    def __init__(self, data: bytes) -> None:
        try:
            import av
        except ImportError as exc:
            raise IngestError(f"reading audio needs PyAV: {INSTALL_HINT}") from exc
        self._av = av
        try:
            self.container = av.open(io.BytesIO(data), mode="r", metadata_errors="ignore")
        except av.FFmpegError as exc:
            raise IngestError(f"not a readable audio file: {_reason(exc)}") from exc

    def __enter__(self) -> tuple[Iterator[tuple[float, np.ndarray]], float | None]:
        streams = self.container.streams.audio
        if not streams:
            self.container.close()
            raise IngestError("the file has no audio stream")
        stream = streams[0]
        declared: float | None = None
        if stream.duration is not None and stream.time_base is not None:
            declared = float(stream.duration * stream.time_base)
        elif self.container.duration is not None:
            declared = self.container.duration / 1_000_000
        return _pieces(self._av, self.container, stream), declared

    def __exit__(self, *exc_info: Any) -> None:
        self.container.close()


def _pieces(av: Any, container: Any, stream: Any) -> Iterator[tuple[float, np.ndarray]]:
    """(offset in seconds, float32 mono 16 kHz samples) of about PIECE_SECONDS each."""
    resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    piece_samples = PIECE_SECONDS * SAMPLE_RATE
    buffered: list[np.ndarray] = []
    size = 0
    offset = 0
    for frames in _resampled(av, container, stream, resampler):
        for frame in frames:
            array = frame.to_ndarray().reshape(-1)
            buffered.append(array)
            size += len(array)
        if size >= piece_samples:
            samples = np.concatenate(buffered)
            cut = _quiet_cut(samples[:piece_samples])
            yield offset / SAMPLE_RATE, samples[:cut].astype(np.float32) / 32768.0
            offset += cut
            buffered, size = [samples[cut:]], len(samples) - cut
    if size:
        yield offset / SAMPLE_RATE, np.concatenate(buffered).astype(np.float32) / 32768.0


def _resampled(av: Any, container: Any, stream: Any, resampler: Any) -> Iterator[list[Any]]:
    decoded = 0.0
    try:
        for frame in container.decode(stream):
            if frame.time is not None:
                decoded = float(frame.time)
            yield resampler.resample(frame)
        yield resampler.resample(None)  # flush what the resampler holds
    except av.FFmpegError as exc:
        raise IngestError(f"damaged audio after {decoded:.1f} s: {_reason(exc)}") from exc


def _quiet_cut(samples: np.ndarray) -> int:
    """Where to end a piece: the middle of the quietest 0.1 s in its last 10 s."""
    frame = int(QUIET_FRAME_SECONDS * SAMPLE_RATE)
    search = min(len(samples), QUIET_SEARCH_SECONDS * SAMPLE_RATE) // frame * frame
    if search < frame:
        return len(samples)
    tail = samples[len(samples) - search :].astype(np.float32).reshape(-1, frame)
    quietest = int(np.argmin(np.square(tail).mean(axis=1)))
    return len(samples) - search + quietest * frame + frame // 2


def _check_wav_length(data: bytes) -> None:
    """A WAV cut short (a copy that stopped): FFmpeg trims the length to the bytes there, so
    compare the header's sample-data size with them. Streamed WAVs declare 0 or 0xFFFFFFFF."""
    if not (data.startswith(b"RIFF") and data[8:12] == b"WAVE"):
        return
    position = 12
    while position + 8 <= len(data):
        chunk, size = data[position : position + 4], struct.unpack_from("<I", data, position + 4)[0]
        if chunk == b"data":
            present = len(data) - position - 8
            if 0 < size < 0xFFFFFFFF and present < size * TRUNCATED_SLACK:
                raise IngestError(
                    f"truncated WAV: the header declares {size:,} bytes of samples, "
                    f"the file holds {present:,}"
                )
            return
        position += 8 + size + (size & 1)


def _reason(exc: Exception) -> str:
    """FFmpeg's message without the file-object repr PyAV puts after it."""
    message = getattr(exc, "strerror", None) or str(exc)
    return str(message).split(":")[0].strip() or type(exc).__name__
