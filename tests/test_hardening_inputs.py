"""Inputs bounded before allocation and refused in one line: image sizes, LLM folder configs,
decode lengths (hardening, third round)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from accelsim.errors import AccelsimError, DataError


def test_thin_png_is_refused_before_resizing(tmp_path):
    from PIL import Image

    from accelsim.imagefolder import load_image

    path = tmp_path / "thin.png"
    Image.fromarray(np.zeros((1, 20000, 3), dtype=np.uint8)).save(path)
    assert path.stat().st_size < 2000
    with pytest.raises(DataError, match="aspect ratio") as err:
        load_image(path, 256, 224)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_image_of_another_format_is_not_decoded(tmp_path):
    from accelsim.imagefolder import load_image

    path = tmp_path / "a.jpg"
    path.write_text("%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\nshowpage\n")
    with pytest.raises(DataError, match="cannot read image"):
        load_image(path, 8, 8)


@pytest.mark.parametrize("option", ["crop=100000", "resize=100000"])
def test_crop_and_resize_are_bounded(option):
    from accelsim.imagefolder import parse_spec

    with pytest.raises(DataError, match="limit"):
        parse_spec("imagenet:x," + option, "x," + option)


@pytest.mark.parametrize("text", ['{"hidden_size": NaN}', '{"rope_theta": Infinity}',
                                  '{"auto_map": {"AutoModel": "m.M"}}', "[1, 2]", "{"])
def test_llm_folder_configs_are_data(tmp_path, text):
    from accelsim.trace.llm import check_folder_configs

    (tmp_path / "config.json").write_text(text)
    with pytest.raises(AccelsimError) as err:
        check_folder_configs(tmp_path)
    assert "config.json" in str(err.value) and "\n" not in str(err.value)


def test_tokenizer_config_naming_code_is_refused(tmp_path):
    from accelsim.trace.llm import check_folder_configs

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"auto_map": {"AutoTokenizer": ["a.T", None]}}))
    with pytest.raises(AccelsimError, match="tokenizer_config.json: auto_map"):
        check_folder_configs(tmp_path)


def test_decode_length_bounded_whatever_the_config_claims():
    from accelsim.trace.capture import CaptureOptions
    from accelsim.trace.llm import MAX_POSITIONS, capture_decoder
    from accelsim.zoo import get_model

    model = get_model("llama_tiny", seed=0)
    model.config.max_position_embeddings = 10 ** 12
    with pytest.raises(AccelsimError, match="positions a capture traces"):
        capture_decoder(model, torch.zeros((1, 4), dtype=torch.long), MAX_POSITIONS,
                        CaptureOptions(samples=1))
