"""Evaluation on standard data sets (BEIR/MTEB format) with MTEB's metrics."""

from embedstack.evaluation.beir import BeirDataset, load_beir
from embedstack.evaluation.metrics import mrr_at_k, retrieval_metrics
from embedstack.evaluation.retrieval import evaluate_retrieval

__all__ = ["BeirDataset", "evaluate_retrieval", "load_beir", "mrr_at_k", "retrieval_metrics"]
