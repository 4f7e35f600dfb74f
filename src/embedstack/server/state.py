"""Everything a running server holds, built from its `ServerConfig` and closed at shutdown."""

from __future__ import annotations

from embedstack.server.config import ServerConfig
from embedstack.server.jobs import IngestJobs
from embedstack.server.llm import LazyChatModel
from embedstack.server.metrics import Metrics
from embedstack.server.models import ModelPool
from embedstack.server.registry import CollectionRegistry


class ServerState:
    def __init__(self, config: ServerConfig) -> None:
        config.check()
        self.config = config
        self.metrics = Metrics()
        self.models = ModelPool(config.model, config.backend, config.max_batch_tokens, self.metrics)
        self.collections = CollectionRegistry(config.collections, self.models)
        self.jobs = IngestJobs()
        self.llm = LazyChatModel(config.llm, config.llm_base_url)

    def close(self) -> None:
        self.jobs.close()
        self.collections.close()
        self.models.close()
