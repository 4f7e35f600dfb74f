"""Default limits that keep one odd file from stalling an ingest (each can be raised)."""

DEFAULT_MAX_FILE_MB = 200  # bytes on disk
DEFAULT_MAX_CHARS = 20_000_000  # characters of text in one document or CSV/JSONL row
