"""embedstack: embed, store, search and evaluate text on your own machine."""

from embedstack.collection import Collection
from embedstack.errors import EmbedstackError
from embedstack.models import Encoder, load_model
from embedstack.types import Chunk, Hit

__all__ = ["Chunk", "Collection", "EmbedstackError", "Encoder", "Hit", "load_model"]
__version__ = "0.1.0"
