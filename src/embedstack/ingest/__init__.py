"""Ingest: load files (PDF, DOCX, HTML, Markdown, text, CSV, JSONL), clean, chunk, sync."""
