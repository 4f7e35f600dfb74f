"""`embedstack words train`: word vectors trained on a collection's own stored text.

Sits above `collection` (it reads the rows) and hands the texts to
`models.word_training.train_word_vectors`. The rows are read from the store in batches on
every pass over the corpus, so a large collection is never copied into memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from embedstack.collection import Collection
from embedstack.errors import CollectionNotFoundError, InvalidInputError
from embedstack.models.word_training import WordTrainingReport, train_word_vectors

READ_ROWS = 1024  # rows fetched from the store at a time


def train_collection_words(path: str | Path, out: str | Path, **options: Any) -> WordTrainingReport:
    """Train word vectors on every stored row of the collection in `path` (see
    `train_word_vectors` for the options); the collection is only read."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise CollectionNotFoundError(f"no collection at {path} (no such folder)")
    with Collection.open(folder, create=False) as kb:
        ids = kb.ids()
        if not ids:
            raise InvalidInputError(f"{path} is empty: ingest or add texts before training")

        def texts() -> Iterator[str]:
            for start in range(0, len(ids), READ_ROWS):
                for chunk in kb.get(ids[start : start + READ_ROWS]):
                    yield chunk.text

        return train_word_vectors(texts, out, corpus=str(folder.resolve()), **options)
