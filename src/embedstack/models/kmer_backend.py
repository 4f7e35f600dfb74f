"""How `load_model` finds k-mer profiles: catalog entries, `kmer-<alphabet>-k<k>` names, and
folders saved by `KmerProfile.save`.

Kept apart from `kmer.py` so that registering them imports neither scikit-learn nor the
counting code: `import embedstack` stays light, and the model module loads on first use.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from embedstack.errors import ModelNotFoundError
from embedstack.models.catalog import ModelSpec, find_spec
from embedstack.models.registry import LoadRequest

if TYPE_CHECKING:
    from embedstack.models.kmer import KmerModel

BACKEND = "kmer"
CONFIG_FILE = "kmer_profile.json"  # kmer.CONFIG_FILE, named here without importing it
DEFAULT_K = {"dna": 5, "protein": 2}
NAME = re.compile(r"kmer-(?P<alphabet>dna|protein)(?:-k(?P<k>\d{1,2}))?(?P<canonical>-canonical)?")


def from_spec(spec: ModelSpec, backend: str) -> KmerModel:
    """A catalog entry: plain sublinear counts (no IDF, so nothing to fit or ship)."""
    model = model_for_name(spec.name)
    if model is None:
        raise ModelNotFoundError(f"{spec.name!r} is not a kmer-<dna|protein>[-k<k>] name")
    return model


def is_kmer_name(name: str) -> bool:
    """Whether `name` is a k-mer model name (`kmer-dna-k6`…), which no catalog entry lists."""
    return NAME.fullmatch(name) is not None


def model_for_name(name: str) -> KmerModel | None:
    """`kmer-dna`, `kmer-dna-k6`, `kmer-dna-k6-canonical`, `kmer-protein-k3`…, or None."""
    match = NAME.fullmatch(name)
    if match is None:
        return None
    from embedstack.models.kmer import KmerModel, KmerProfile

    alphabet = match["alphabet"]
    k = int(match["k"]) if match["k"] else DEFAULT_K[alphabet]
    profile = KmerProfile(alphabet, k, idf=False, canonical=bool(match["canonical"]))
    profile.dim  # noqa: B018 - checks k (too large for the dimension cap) before any encode
    return KmerModel(name, profile)


def resolve_name(request: LoadRequest) -> KmerModel | None:
    """A k-mer name that is not a catalog entry (those go through the catalog)."""
    if NAME.fullmatch(request.name) is None or _in_catalog(request.name):
        return None
    _check_backend(request)
    return model_for_name(request.name)


def resolve_folder(request: LoadRequest) -> KmerModel | None:
    """A folder holding `kmer_profile.json` (a fitted TF-IDF profile)."""
    folder = Path(request.name).expanduser()
    if not (folder / CONFIG_FILE).is_file():
        return None
    _check_backend(request)
    from embedstack.models.kmer import KmerModel, KmerProfile

    profile, name = KmerProfile._load(folder)
    return KmerModel(name, profile)


def _check_backend(request: LoadRequest) -> None:
    if request.backend not in (None, BACKEND):
        raise ModelNotFoundError(f"{request.name} runs on {BACKEND}, not {request.backend!r}")


def _in_catalog(name: str) -> bool:
    try:
        find_spec(name)
    except ModelNotFoundError:
        return False
    return True
