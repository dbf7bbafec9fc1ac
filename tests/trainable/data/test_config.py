"""The data: block is checked against every registered format's own options."""

import pytest

from trainable.data import FORMATS, DataConfig
from trainable.errors import DataError


@pytest.mark.parametrize("name", list(FORMATS))
def test_each_format_accepts_its_options_and_rejects_unknown_keys(name, tmp_path):
    fmt = FORMATS[name]
    block = {"format": name, **({"path": str(tmp_path)} if fmt.needs_path else {})}
    config = DataConfig.from_mapping({**block, **fmt.options})
    assert config.options == fmt.options and config.format == name
    with pytest.raises(DataError) as info:
        DataConfig.from_mapping({**block, "bogus": 1}, where="spaces/x.yaml: data")
    message = str(info.value)
    assert message.startswith("spaces/x.yaml: data.bogus: unknown key for format")
    for key in [*fmt.options, "normalization", "image_size"]:
        assert key in message


@pytest.mark.parametrize("name", [n for n, f in FORMATS.items() if f.needs_path])
def test_formats_that_read_folders_need_a_path(name):
    with pytest.raises(DataError, match=r"data\.path: missing"):
        DataConfig.from_mapping({"format": name})


def test_image_size_becomes_height_width():
    assert DataConfig.from_mapping({"format": "digits", "image_size": 32}).image_size == (32, 32)
    assert DataConfig.from_mapping({"format": "digits", "image_size": [32, 16]}).image_size == (32, 16)
    with pytest.raises(DataError, match="data.image_size"):
        DataConfig.from_mapping({"format": "digits", "image_size": [0, 16]})
