"""Audio ingest: Whisper base's word error rate and speed on speech, then search by time stamp.

1. Transcription: 50 known sentences spoken by Debian's espeak-ng (six voices, three speeds),
   each transcribed by the loader ingest uses (PyAV + faster-whisper, int8, beam 1). Word error
   rate (jiwer, on lowercased words without punctuation) and real-time factor (seconds of
   compute per second of audio: wall and CPU).
2. Search: the same sentences joined into 10 clips of 5 (0.8 s of silence between, so each
   sentence's span in its clip is known), ingested into a collection with 32-token chunks, then
   each sentence searched: is the top hit the right clip, and does its time stamp fall in that
   sentence's span (the hit's start within the sentence, 0.5 s of slack)?
3. Real recorded speech, where installed: the voice prompts of Debian's alsa-utils
   (/usr/share/sounds/alsa/*.wav, GPL-2; "Front Left", "Rear Center", …).

    python bench/audio_transcribe.py [--sentences 50] [--threads 2] [--real-speech DIR]
"""

from __future__ import annotations

import argparse
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np
from machine import cpu_line

SENTENCES = [
    "The quarterly budget meeting has moved to Thursday afternoon.",
    "Please water the tomato plants before the sun gets too strong.",
    "Our new office is next to the railway station in the old town.",
    "The museum opens late on Fridays during the summer months.",
    "She repaired the broken bicycle chain with a small pair of pliers.",
    "Heavy rain is expected along the northern coast tonight.",
    "The bakery on the corner sells fresh bread every morning.",
    "A vaccine trains the immune system to recognise a virus.",
    "The children built a sandcastle with towers and a deep moat.",
    "Remember to back up your laptop before installing the update.",
    "The orchestra rehearsed the symphony for three long hours.",
    "Glaciers in the mountains are melting faster than expected.",
    "He ordered a cup of black coffee and a slice of apple pie.",
    "The library will be closed for renovation until next spring.",
    "Solar panels on the roof now supply most of our electricity.",
    "The football match was cancelled because the pitch was flooded.",
    "Our customer support team answers emails within one day.",
    "The old lighthouse guided ships safely into the harbour.",
    "Wolves hunt in packs and communicate with howls.",
    "The chef added fresh basil and garlic to the tomato sauce.",
    "Train tickets are cheaper when you book them in advance.",
    "The surgeon washed her hands carefully before the operation.",
    "A strong password mixes letters, numbers and symbols.",
    "The farmers harvested the wheat before the storm arrived.",
    "Astronomers discovered a planet orbiting a distant star.",
    "The printer on the second floor is out of paper again.",
    "Honey bees pollinate flowers while collecting nectar.",
    "The committee approved the plan to build a new bridge.",
    "Drink plenty of water when you run in hot weather.",
    "The detective found a muddy footprint near the window.",
    "Our flight to Lisbon was delayed by two hours.",
    "The teacher explained how volcanoes form under the ocean.",
    "Fresh snow covered the village during the night.",
    "The company will hire twenty engineers next year.",
    "A good night of sleep improves memory and concentration.",
    "The violin was made by hand from maple and spruce wood.",
    "Turn off the lights when you leave the meeting room.",
    "The river flooded the fields after a week of rain.",
    "Elephants can recognise themselves in a mirror.",
    "The bank raised its interest rates for the third time.",
    "My grandmother grows roses and lavender in her garden.",
    "The software crashed when the disk ran out of space.",
    "Thousands of runners took part in the city marathon.",
    "The pharmacist explained how often to take the medicine.",
    "A thick fog delayed the ferry across the channel.",
    "The kitten chased a ball of wool under the sofa.",
    "Electric cars need charging stations along the highway.",
    "The students presented their research on coral reefs.",
    "The castle walls were built to withstand long sieges.",
    "Wind turbines turn slowly on the hills above the valley.",
]
VOICES = ("en-us", "en-gb", "en+f3", "en-gb-scotland", "en-us+m3", "en+f2")
SPEEDS = (140, 170, 200)  # words per minute (espeak-ng's default is 175)
PAUSE_SECONDS = 0.8
CLIP_SENTENCES = 5
SEARCH_CHUNK_TOKENS = 32
TIME_SLACK = 0.5


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def speak(espeak: str, text: str, voice: str, speed: int, path: Path) -> Path:
    subprocess.run([espeak, "-v", voice, "-s", str(speed), "-w", str(path), text], check=True)
    return path


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path)) as source:
        frames = source.readframes(source.getnframes())
        return np.frombuffer(frames, dtype=np.int16), source.getframerate()


def write_wav(path: Path, samples: np.ndarray, rate: int) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.astype(np.int16).tobytes())


def normalise(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9' ]+", " ", text.lower().replace("-", " ")).split())


def word_error_rate(references: list[str], hypotheses: list[str]) -> float:
    import jiwer

    return float(jiwer.wer(list(map(normalise, references)), list(map(normalise, hypotheses))))


def transcribe(path: Path, threads: int):
    """The loader ingest uses, on one file: (document, wall seconds, CPU seconds)."""
    from embedstack.ingest.loaders.audio import SpeechOptions, load_audio

    wall, cpu_before = time.perf_counter(), cpu_seconds()
    (document,) = load_audio(path, path.read_bytes(), SpeechOptions(threads=threads))
    return document, time.perf_counter() - wall, cpu_seconds() - cpu_before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sentences", type=int, default=len(SENTENCES))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--real-speech", type=Path, default=Path("/usr/share/sounds/alsa"))
    parser.add_argument("--chunk-tokens", type=int, nargs="+", default=[SEARCH_CHUNK_TOKENS])
    parser.add_argument("--only-search", action="store_true", help="skip parts 1 and 3")
    args = parser.parse_args()
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        sys.exit("espeak-ng is not installed (make speech)")
    from embedstack.models.speech import load_whisper

    sentences = SENTENCES[: args.sentences]
    work = Path(tempfile.mkdtemp(prefix="audio-bench-"))
    print(f"{cpu_line()}; {platform.python_version()}; threads {args.threads}")
    started = time.perf_counter()
    load_whisper(args.threads)
    print(f"Whisper base loaded in {time.perf_counter() - started:.1f} s (int8, beam 1)\n")

    clips: list[tuple[Path, str, str, int]] = []
    for i, sentence in enumerate(sentences):
        voice, speed = VOICES[i % len(VOICES)], SPEEDS[i // len(VOICES) % len(SPEEDS)]
        clips.append((speak(espeak, sentence, voice, speed, work / f"s{i:02d}.wav"), sentence,
                      voice, speed))  # fmt: skip
    if not args.only_search:
        transcription_table(clips, args.threads)
    clip_folder, spans, audio_seconds = long_clips(clips, work)
    for chunk_tokens in args.chunk_tokens:
        search_table(sentences, clip_folder, spans, audio_seconds, chunk_tokens, work)
    if not args.only_search:
        real_speech(args.real_speech, args.threads)
    shutil.rmtree(work, ignore_errors=True)


def transcription_table(clips: list[tuple[Path, str, str, int]], threads: int) -> None:
    """Part 1: WER and real-time factor, per voice, per speed and overall."""
    rows: list[tuple[str, int, str, str, float, float, float]] = []
    for path, sentence, voice, speed in clips:
        document, wall, cpu_s = transcribe(path, threads)
        rows.append((voice, speed, sentence, document.text, document.metadata["duration"],
                     wall, cpu_s))  # fmt: skip
    print("| voices | clips | audio s | WER | RTF wall | RTF CPU |")
    print("|---|---|---|---|---|---|")
    groups = [(v, [r for r in rows if r[0] == v]) for v in VOICES]
    groups += [(f"{s} wpm", [r for r in rows if r[1] == s]) for s in SPEEDS]
    groups.append(("all", rows))
    for label, group in groups:
        if not group:
            continue
        audio = sum(r[4] for r in group)
        wer = word_error_rate([r[2] for r in group], [r[3] for r in group])
        wall, cpu_s = sum(r[5] for r in group) / audio, sum(r[6] for r in group) / audio
        print(f"| {label} | {len(group)} | {audio:.1f} | {wer:.3f} | {wall:.3f} | {cpu_s:.3f} |")
    worst = sorted(rows, key=lambda r: -word_error_rate([r[2]], [r[3]]))[:5]
    print("\nWorst transcripts:")
    for voice, speed, sentence, heard, *_ in worst:
        print(f"  [{voice} {speed}] {sentence!r} -> {heard!r}")


def long_clips(clips: list[tuple[Path, str, str, int]], work: Path):
    """Part 2's recordings: the sentences 5 by 5 with pauses; each sentence's (clip, span)."""
    spans: list[tuple[str, float, float]] = []  # (clip name, start, end) per sentence
    clip_folder = work / "clips"
    clip_folder.mkdir()
    audio_seconds = 0.0
    for first in range(0, len(clips), CLIP_SENTENCES):
        name = f"clip{first // CLIP_SENTENCES:02d}.wav"
        parts, offset, rate = [], 0.0, 22050
        for path, *_ in clips[first : first + CLIP_SENTENCES]:
            samples, rate = read_wav(path)
            spans.append((name, offset, offset + len(samples) / rate))
            parts += [samples, np.zeros(int(PAUSE_SECONDS * rate), dtype=np.int16)]
            offset += len(samples) / rate + PAUSE_SECONDS
        write_wav(clip_folder / name, np.concatenate(parts), rate)
        audio_seconds += offset
    return clip_folder, spans, audio_seconds


def search_table(sentences, clip_folder, spans, audio_seconds, chunk_tokens, work) -> None:
    """Part 2: ingest the clips, search each sentence; right clip, and right moment?"""
    from embedstack import Collection

    kb = Collection.open(work / f"kb{chunk_tokens}")
    wall, cpu_before = time.perf_counter(), cpu_seconds()
    report = kb.ingest(clip_folder, chunk_tokens=chunk_tokens)
    ingest_wall, ingest_cpu = time.perf_counter() - wall, cpu_seconds() - cpu_before
    assert not report.failed, report.failed
    right_clip = in_span = overlaps = inside = 0
    offsets = []
    for sentence, (name, start, end) in zip(sentences, spans, strict=True):
        hit = kb.search(sentence, k=1)[0]
        if hit.metadata["file_name"] != name:
            continue
        right_clip += 1
        time_start, time_end = hit.metadata["time_start"], hit.metadata["time_end"]
        in_span += start - TIME_SLACK <= time_start <= end
        overlaps += time_start < end and time_end > start
        inside += time_start - TIME_SLACK <= start and end <= time_end + TIME_SLACK
        offsets.append(time_start - start)
    n = len(sentences)
    print(f"\nSearch: {n} sentences in {len(spans) // CLIP_SENTENCES} clips "
          f"({audio_seconds:.0f} s of audio), {report.chunks_added} chunks of "
          f"≤{chunk_tokens} tokens; ingest {ingest_wall:.1f} s wall, "
          f"{ingest_cpu:.1f} s CPU (RTF {ingest_wall / audio_seconds:.3f})")  # fmt: skip
    print(
        "| chunk tokens | top-1 right clip | hit starts in the sentence (±0.5 s) | sentence "
        "inside the hit's span (±0.5 s) | spans overlap | median hit start − sentence start |"
    )
    print("|---|---|---|---|---|---|")
    median = float(np.median(offsets)) if offsets else float("nan")
    print(f"| {chunk_tokens} | {right_clip}/{n} ({right_clip / n:.0%}) | {in_span}/{n} "
          f"({in_span / n:.0%}) | {inside}/{n} | {overlaps}/{n} | {median:+.2f} s |")  # fmt: skip
    kb.close()


def real_speech(folder: Path, threads: int) -> None:
    """Part 3: recorded human voices, where a package installed them."""
    recordings = sorted(folder.glob("*.wav")) if folder.is_dir() else []
    recordings = [p for p in recordings if p.stem != "Noise"]
    if recordings:
        print(f"\nReal recorded speech ({folder}, Debian alsa-utils, GPL-2):")
        print("| file | expected | heard | WER | RTF wall |")
        print("|---|---|---|---|---|")
        references, heard = [], []
        for path in recordings:
            expected = path.stem.replace("_", " ")
            document, wall, _ = transcribe(path, threads)
            references.append(expected)
            heard.append(document.text)
            wer = word_error_rate([expected], [document.text])
            print(f"| {path.name} | {expected} | {document.text} | {wer:.2f} | "
                  f"{wall / document.metadata['duration']:.3f} |")  # fmt: skip
        print(f"| all | | | {word_error_rate(references, heard):.3f} | |")
    else:
        print(f"\nNo real recordings at {folder} (apt-get install alsa-utils)")


if __name__ == "__main__":
    main()
