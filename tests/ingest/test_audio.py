"""Audio ingest on real speech: clips spoken by espeak-ng, transcribed by the real Whisper base.

`make test` installs espeak-ng (the Makefile's `speech` target); without the binary, or
without the `audio` extra, these tests skip and say why.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import wave
from pathlib import Path

import pytest

from embedstack import Collection
from embedstack.cli.collection import describe_origin
from embedstack.errors import IngestError
from embedstack.ingest.detect import detect_format
from embedstack.timecode import timecode

ESPEAK = shutil.which("espeak-ng")
pytestmark = [
    pytest.mark.skipif(ESPEAK is None, reason="espeak-ng is not installed (make speech)"),
]

BUDGET = (
    "en-us",
    "The quarterly budget meeting moved to Thursday afternoon. "
    "Marketing will present the new advertising campaign.",
)
LEAVES = ("en-gb", "Photosynthesis turns sunlight into chemical energy inside green leaves.")


def speak(path: Path, voice: str, text: str) -> Path:
    subprocess.run([ESPEAK, "-v", voice, "-s", "150", "-w", str(path), text], check=True)
    return path


def to_flac(wav: Path, flac: Path) -> Path:
    """The same speech in another container and codec (PyAV, the decoder ingest uses)."""
    import av

    with av.open(str(wav)) as source, av.open(str(flac), "w") as target:
        stream = target.add_stream("flac", rate=source.streams.audio[0].rate)
        for frame in source.decode(audio=0):
            for packet in stream.encode(frame):
                target.mux(packet)
        for packet in stream.encode(None):
            target.mux(packet)
    return flac


def write_silence(path: Path, seconds: float) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16_000)
        out.writeframes(b"\0\0" * int(16_000 * seconds))
    return path


def chunks_of(kb: Collection, name: str) -> list:
    """The file's stored chunks in order (the manifest lists their ids)."""
    (source,) = [s for s in kb.sources() if Path(s.path).name == name]
    return kb.get(list(source.chunk_ids))


def words(text: str) -> set[str]:
    return {w.strip(".,!?").lower() for w in text.split()}


@pytest.fixture(scope="module")
def audio_kb(tmp_path_factory, model):
    pytest.importorskip("faster_whisper", reason="the audio extra is not installed")
    folder = tmp_path_factory.mktemp("audio")
    budget = speak(folder / "budget.wav", *BUDGET)
    leaves = to_flac(speak(folder / "leaves.wav", *LEAVES), folder / "leaves.flac")
    (folder / "leaves.wav").unlink()
    (folder / "notes.txt").write_text("The canteen serves soup on Fridays.\n")
    bad = folder / "bad"
    bad.mkdir()
    (bad / "letter.mp3").write_text("Dear team, this is a text file with an audio name.\n")
    write_silence(bad / "silence.wav", 3.0)
    data = budget.read_bytes()
    (bad / "cut.wav").write_bytes(data[: len(data) // 3])  # header promises three times more
    noise = random.Random(0).randbytes(20_000)
    (bad / "broken.flac").write_bytes(b"fLaC" + noise)
    kb = Collection.open(folder / "kb", model=model)
    first = kb.ingest(folder / "notes.txt")
    assert first.to_dict()["added"] == 1
    report = kb.ingest([budget, leaves, bad], chunk_tokens=16)
    yield kb, report, folder
    kb.close()


def test_transcripts_hold_the_spoken_words_with_ordered_times(audio_kb):
    kb, report, folder = audio_kb
    assert sorted(Path(p).name for p in report.added) == ["budget.wav", "leaves.flac"]
    for name, (_, sentence) in (("budget.wav", BUDGET), ("leaves.flac", LEAVES)):
        chunks = chunks_of(kb, name)
        heard = words(" ".join(chunk.text for chunk in chunks))
        expected = words(sentence)
        assert len(heard & expected) >= 0.8 * len(expected), heard
        times = [(c.metadata["time_start"], c.metadata["time_end"]) for c in chunks]
        duration = chunks[0].metadata["duration"]
        assert chunks[0].metadata["language"] == "en"
        assert chunks[0].metadata["format"] == "audio"
        assert all(0 <= start < end <= duration + 0.5 for start, end in times), times
        assert [start for start, _ in times] == sorted(start for start, _ in times)
    budget = chunks_of(kb, "budget.wav")
    assert len(budget) >= 2  # two sentences, 16-token chunks: the second starts later
    assert budget[-1].metadata["time_start"] > 2.0


def test_search_finds_the_clip_and_the_moment(audio_kb):
    kb, _, _ = audio_kb
    hit = kb.search("advertising campaign presented by marketing", k=1)[0]
    assert hit.metadata["file_name"] == "budget.wav"
    assert hit.metadata["time_start"] > 2.0  # the second sentence, not the first
    assert describe_origin(hit.metadata).startswith("budget.wav at 0:0")
    hit = kb.search("how plants make energy from light", k=1)[0]
    assert hit.metadata["file_name"] == "leaves.flac"


def test_bad_audio_is_reported_by_name_and_reason(audio_kb):
    kb, report, _ = audio_kb
    reasons = {Path(problem.path).name: problem.reason for problem in report.failed}
    assert set(reasons) == {"letter.mp3", "silence.wav", "cut.wav", "broken.flac"}
    assert reasons["letter.mp3"] == "not an audio file despite its name (.mp3)"
    assert reasons["silence.wav"].startswith("no speech found in 3.0 s")
    assert reasons["cut.wav"].startswith("truncated WAV")
    assert "audio" in reasons["broken.flac"] or "damaged" in reasons["broken.flac"]
    # the text ingested before is untouched, and nothing of the bad files was stored
    assert [r.text for r in chunks_of(kb, "notes.txt")] == ["The canteen serves soup on Fridays."]
    stored = {Path(source.path).name for source in kb.sources()}
    assert stored == {"notes.txt", "budget.wav", "leaves.flac"}


def test_long_recordings_are_transcribed_in_pieces(tmp_path, monkeypatch):
    """Pieces of 3 s (instead of minutes) on a 7 s clip: cut in a pause, times offset right."""
    pytest.importorskip("faster_whisper", reason="the audio extra is not installed")
    from embedstack.ingest.loaders import audio

    clip = speak(tmp_path / "budget.wav", *BUDGET)
    seen: list[float] = []

    class Progress:
        def add_total(self, seconds: float) -> None:
            seen.append(-seconds)

        def advance(self, seconds: float) -> None:
            seen.append(seconds)

    monkeypatch.setattr(audio, "PIECE_SECONDS", 3)
    monkeypatch.setattr(audio, "QUIET_SEARCH_SECONDS", 1)
    (document,) = audio.load_audio(clip, clip.read_bytes(), progress=Progress())
    expected = words(BUDGET[1])
    assert len(words(document.text) & expected) >= 0.7 * len(expected), document.text
    starts = [span.time_start for span in document.spans]
    assert len(starts) >= 3 and starts == sorted(starts)
    assert any(start > 3.0 for start in starts if start is not None)  # a later piece, offset
    duration = document.metadata["duration"]
    assert -seen[0] == pytest.approx(duration, abs=0.1)  # the total, then the seconds done
    assert sum(seen[1:]) == pytest.approx(duration, abs=0.1)


def test_detect_audio_by_content_and_refuse_misnamed_files(tmp_path):
    assert detect_format(Path("x.bin"), b"RIFF\x00\x00\x00\x00WAVEfmt ") == "audio"
    assert detect_format(Path("x.txt"), b"OggS\x00\x02" + bytes(30)) == "audio"
    assert detect_format(Path("x.mp3"), b"\xff\xfb\x90\x64" + bytes(30)) == "audio"
    with pytest.raises(IngestError, match=r"not an audio file despite its name \(\.ogg\)"):
        detect_format(Path("x.ogg"), b"just some words\n")


def test_timecode():
    assert [timecode(s) for s in (0, 9.99, 751.2, 3600, 3725.5)] == [
        "0:00",
        "0:09",
        "12:31",
        "1:00:00",
        "1:02:05",
    ]
