"""embedstack: embed, store, search and evaluate text on your own machine.

The public API: `Collection` and `load_model`, the options they take, and the types their
functions return. Importing embedstack loads no model, parser or LLM runtime.
"""

from embedstack.collection import Collection
from embedstack.errors import EmbedstackError
from embedstack.ingest.options import IngestOptions
from embedstack.ingest.report import IngestReport
from embedstack.models import EmbeddingModel, Encoder, load_model
from embedstack.rag.answer import Answer, Citation
from embedstack.rag.asking import AnswerStream
from embedstack.search.options import SearchOptions
from embedstack.settings import Settings, get_settings
from embedstack.types import Chunk, Hit, SourceRecord

__all__ = [
    "Answer",
    "AnswerStream",
    "Chunk",
    "Citation",
    "Collection",
    "EmbeddingModel",
    "EmbedstackError",
    "Encoder",
    "Hit",
    "IngestOptions",
    "IngestReport",
    "SearchOptions",
    "Settings",
    "SourceRecord",
    "get_settings",
    "load_model",
]
__version__ = "0.1.0"
