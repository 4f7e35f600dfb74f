"""Evaluation on standard data sets (BEIR/MTEB format) with MTEB's metrics."""

from embedstack.evaluation.beir import BeirDataset, load_beir
from embedstack.evaluation.classification import (
    ClassificationData,
    LabelledTexts,
    evaluate_classification,
    load_classification,
    read_labelled,
)
from embedstack.evaluation.clustering import evaluate_clustering, load_clustering
from embedstack.evaluation.metrics import mrr_at_k, retrieval_metrics
from embedstack.evaluation.report import EvalReport
from embedstack.evaluation.retrieval import evaluate_retrieval
from embedstack.evaluation.sts import StsPairs, evaluate_sts, load_sts

__all__ = [
    "BeirDataset",
    "ClassificationData",
    "EvalReport",
    "LabelledTexts",
    "StsPairs",
    "evaluate_classification",
    "evaluate_clustering",
    "evaluate_retrieval",
    "evaluate_sts",
    "load_beir",
    "load_classification",
    "load_clustering",
    "load_sts",
    "mrr_at_k",
    "read_labelled",
    "retrieval_metrics",
]
