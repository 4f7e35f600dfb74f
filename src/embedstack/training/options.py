"""The knobs of a fine-tune, checked before anything heavy loads."""

from __future__ import annotations

from dataclasses import dataclass

from embedstack.errors import InvalidInputError

LOSSES = ("mnrl", "cached-mnrl", "gist")


@dataclass(frozen=True)
class FinetuneOptions:
    epochs: int = 1
    batch_size: int = 32
    learning_rate: float = 5e-5  # the trainer's default; few steps on small data need it
    warmup_ratio: float = 0.1
    loss: str = "mnrl"
    matryoshka: tuple[int, ...] = ()
    hard_negatives: int = 1  # one mined negative: SciFact dense nDCG@10 0.649 -> 0.699
    max_pairs: int | None = None
    max_steps: int | None = None
    pseudo_sources: tuple[str, ...] = ("title", "ict")
    llm_limit: int = 200
    checkpoint_minutes: float = 5.0
    seed: int = 0

    def check(self, base_dim: int) -> None:
        if self.loss not in LOSSES:
            raise InvalidInputError(f"loss must be one of {', '.join(LOSSES)}, not {self.loss!r}")
        whole = [("epochs", self.epochs, 1), ("batch_size", self.batch_size, 2),
                 ("hard_negatives", self.hard_negatives, 0), ("llm_limit", self.llm_limit, 0),
                 ("max_pairs", self.max_pairs, 1), ("max_steps", self.max_steps, 1)]  # fmt: skip
        for name, value, least in whole:
            if value is not None and (not isinstance(value, int) or value < least):
                raise InvalidInputError(f"{name} must be a whole number ≥ {least}, got {value!r}")
        if not 0 < self.learning_rate < 1:
            raise InvalidInputError(f"learning_rate must be in (0, 1), got {self.learning_rate}")
        if not 0 <= self.warmup_ratio < 1:
            raise InvalidInputError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if not self.checkpoint_minutes > 0:
            raise InvalidInputError(
                f"checkpoint_minutes must be above 0, got {self.checkpoint_minutes}"
            )
        for dim in self.matryoshka:
            if not 0 < dim <= base_dim:
                raise InvalidInputError(
                    f"matryoshka dimensions must be between 1 and the model's {base_dim}, got {dim}"
                )
