"""`embedstack serve`: the HTTP API (OpenAI-compatible embeddings, collections, search, answers)
and the web page. FastAPI and uvicorn are imported here only, never by `import embedstack`."""
