"""Evaluation on standard data sets (BEIR/MTEB format) with MTEB's metrics."""

from embedstack.evaluation.beir import BeirDataset, load_beir
from embedstack.evaluation.metrics import mrr_at_k, retrieval_metrics
from embedstack.evaluation.retrieval import evaluate_retrieval
from embedstack.evaluation.sts import StsPairs, evaluate_sts, load_sts

__all__ = [
    "BeirDataset",
    "StsPairs",
    "evaluate_retrieval",
    "evaluate_sts",
    "load_beir",
    "load_sts",
    "mrr_at_k",
    "retrieval_metrics",
]
