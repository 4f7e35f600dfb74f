"""Fine-tuning embedding models on your own data (`embedstack finetune`).

Sits above evaluation (it scores models before and after) and below the CLI. Importing it is
light: sentence-transformers, datasets and torch load only when a fine-tune starts.
"""

from embedstack.training.finetune import FinetuneReport, base_model_folder, finetune
from embedstack.training.options import LOSSES, FinetuneOptions
from embedstack.training.pairs import TrainingPair

__all__ = [
    "LOSSES",
    "FinetuneOptions",
    "FinetuneReport",
    "TrainingPair",
    "base_model_folder",
    "finetune",
]
