"""Speech through the HTTP API: an uploaded recording is transcribed, its hits carry the time."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

ESPEAK = shutil.which("espeak-ng")
pytestmark = pytest.mark.skipif(ESPEAK is None, reason="espeak-ng is not installed (make speech)")


def test_uploaded_speech_is_searchable_with_its_time(live_server, tmp_path):
    pytest.importorskip("faster_whisper", reason="the audio extra is not installed")
    clip = tmp_path / "standup.wav"
    text = "The printer on the second floor is out of paper. The fire drill starts at noon."
    subprocess.run([ESPEAK, "-v", "en-us", "-s", "150", "-w", str(clip), text], check=True)
    with live_server.client() as client:
        assert client.post("/collections", json={"name": "speech"}).status_code == 201
        files = [
            ("files", ("standup.wav", clip.read_bytes(), "audio/wav")),
            ("files", ("memo.mp3", b"not audio, just words\n", "audio/mpeg")),
        ]
        started = client.post(
            "/collections/speech/files", files=files, data={"chunk_tokens": 16, "language": "en"}
        )
        assert started.status_code == 202, started.text
        job_id = started.json()["job"]["id"]
        deadline = time.monotonic() + 120
        while (job := client.get(f"/jobs/{job_id}").json())["state"] not in ("done", "failed"):
            assert time.monotonic() < deadline, job
            time.sleep(0.2)
        report = job["report"]
        assert report["added"] == 1, report
        assert report["files"]["failed"] == [
            {"path": "memo.mp3", "reason": "not an audio file despite its name (.mp3)"}
        ]
        hit = client.post(
            "/collections/speech/search", json={"query": "fire drill at noon", "k": 1}
        ).json()["hits"][0]
        meta = hit["metadata"]
        assert Path(meta["file_name"]).name == "standup.wav" and meta["format"] == "audio"
        assert meta["language"] == "en" and 1.0 < meta["time_start"] < meta["time_end"]
        assert "drill" in hit["text"].lower()
        client.delete("/collections/speech")
