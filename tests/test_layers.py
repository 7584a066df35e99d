"""Receptive fields computed from the model, against values checked by hand."""
from __future__ import annotations

import pytest

from mnist_iter.layers import layer_table
from mnist_iter.models import ARCHITECTURES, build_model, count_params

# rf after each conv / pool layer, worked out by hand: rf += (k - 1) * jump; jump *= stride
HAND_CHECKED = {
    # 3 'same' 3x3 convs, MP, five 3x3 valid convs, GAP over 4x4 at jump 2, 1x1
    "writeup002_it3": [3, 5, 7, 8, 12, 16, 20, 24, 28, 28 + 3 * 2, 34],
    # 3x3 x3 valid, MP, 1x1, 3x3 x2 valid, GAP over 7x7 at jump 2, 1x1
    "writeup004": [3, 5, 7, 8, 8, 12, 16, 16 + 6 * 2, 28],
}


@pytest.mark.parametrize("arch, expected", HAND_CHECKED.items())
def test_receptive_fields(arch, expected):
    table = layer_table(build_model(arch, 0.05))
    spatial = table[table["layer"].str.contains("Conv|Pool")]
    assert spatial["rf"].tolist() == expected


def test_writeup002_it3_shapes_and_jumps():
    table = layer_table(build_model("writeup002_it3", 0.0)).set_index("name")
    assert table.loc["4", "output"] == "8x14x14" and table.loc["4", "jump"] == 2
    assert table.loc["9.0", "output"] == "12x4x4"
    assert table.iloc[-1]["output"] == "10"  # after log_softmax: 10 log-probabilities


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_table_params_add_up(arch):
    model = build_model(arch, 0.05)
    assert layer_table(model)["params"].sum() == count_params(model)
