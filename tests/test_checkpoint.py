"""Checkpoint files: safetensors written and read by hand, atomic folders and pointers, validation of
truncated, bit-flipped and mismatched checkpoints. (Resume end to end is in test_resume.py.)"""

from __future__ import annotations

import json
import os
import struct
import time

import numpy as np
import pytest

from trainc.runtime import checkpoint as ck

TENSORS = {"a.W": np.arange(12, dtype=np.float32).reshape(3, 4), "a.b": np.array([1.5, -2.0], np.float32),
           "step_count": np.array([7], np.int32), "rng": np.array([3, 0], np.uint32)}


def test_safetensors_round_trip_and_layout_follow_the_format():
    raw = ck.encode_safetensors(TENSORS, {"who": "trainc"})
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    assert n % 8 == 0 and header["__metadata__"] == {"who": "trainc"}
    assert header["a.W"] == {"dtype": "F32", "shape": [3, 4], "data_offsets": [0, 48]}  # sorted names, packed
    back = ck.decode_safetensors(raw)
    assert set(back) == set(TENSORS)
    for k, v in TENSORS.items():
        assert back[k].dtype == v.dtype and np.array_equal(back[k], v)


def test_tinygrad_reads_what_we_write(tmp_path):
    from tinygrad.nn.state import safe_load

    (tmp_path / "m.safetensors").write_bytes(ck.encode_safetensors(TENSORS))
    loaded = safe_load(str(tmp_path / "m.safetensors"))
    assert np.array_equal(loaded["a.W"].numpy(), TENSORS["a.W"])
    assert np.array_equal(loaded["step_count"].numpy(), TENSORS["step_count"])


@pytest.mark.parametrize("cut", [0, 5, 8, 40, -1])
def test_a_truncated_safetensors_file_is_an_error_not_a_crash(cut):
    raw = ck.encode_safetensors(TENSORS)
    with pytest.raises(ck.CheckpointError, match="truncated|corrupted"):
        ck.decode_safetensors(raw[:cut] if cut >= 0 else raw[:-3])


def test_a_corrupted_header_is_an_error():
    raw = bytearray(ck.encode_safetensors(TENSORS))
    raw[9] = ord("}")  # breaks the JSON: `{}a.W"...`
    with pytest.raises(ck.CheckpointError, match="corrupted header"):
        ck.decode_safetensors(bytes(raw))
    lying = ck.encode_safetensors({"w": np.zeros(4, np.float32)}).replace(b'"shape":[4]', b'"shape":[9]')
    with pytest.raises(ck.CheckpointError, match="outside the file or has the wrong size"):
        ck.decode_safetensors(lying)


def save_one(ckpt_dir, name="step-00000001", epoch=1):
    return ck.save(ckpt_dir, name, {"a.W": TENSORS["a.W"] * epoch}, {"step_count": TENSORS["step_count"]},
                   {"epoch": epoch, "step": 10 * epoch})


def test_save_load_point_and_find(tmp_path):
    ckpt = tmp_path / "checkpoints"
    folder = save_one(ckpt)
    ck.point(ckpt, "latest", folder.name)
    model, opt, state = ck.load(ck.find(tmp_path))
    assert state["epoch"] == 1 and state["format_version"] == ck.FORMAT_VERSION
    assert np.array_equal(model["a.W"], TENSORS["a.W"]) and np.array_equal(opt["step_count"], [7])
    assert ck.find(ckpt / "latest") == folder and ck.find(folder) == folder
    with pytest.raises(ck.CheckpointError, match="no checkpoint"):
        ck.find(tmp_path / "elsewhere")


def test_a_bit_flip_in_the_weights_is_caught_by_the_checksum(tmp_path):
    folder = save_one(tmp_path)
    raw = bytearray((folder / "model.safetensors").read_bytes())
    raw[-2] ^= 0x10
    (folder / "model.safetensors").write_bytes(bytes(raw))
    with pytest.raises(ck.CheckpointError, match="does not match the checksum"):
        ck.load(folder)


def test_a_folder_without_state_json_is_incomplete(tmp_path):
    folder = save_one(tmp_path)
    (folder / "state.json").unlink()
    with pytest.raises(ck.CheckpointError, match="not a complete checkpoint"):
        ck.load(folder)


def test_a_failed_write_leaves_the_previous_checkpoint_whole(tmp_path, monkeypatch):
    ckpt = tmp_path / "checkpoints"
    first = save_one(ckpt)
    ck.point(ckpt, "latest", first.name)

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space"):
        save_one(ckpt, "step-00000002", 2)
    with pytest.raises(OSError, match="No space"):
        ck.point(ckpt, "latest", "step-00000002")
    monkeypatch.undo()
    assert sorted(p.name for p in ckpt.iterdir()) == ["latest", "step-00000001"]  # no temp left behind
    model, _, state = ck.load(ck.find(tmp_path))
    assert state["epoch"] == 1 and np.array_equal(model["a.W"], TENSORS["a.W"])


def test_rewriting_an_epoch_replaces_it_whole(tmp_path):
    save_one(tmp_path, "step-00000003", 1)
    save_one(tmp_path, "step-00000003", 2)  # after a roll-back, the same step again
    model, _, state = ck.load(tmp_path / "step-00000003")
    assert state["epoch"] == 2 and np.array_equal(model["a.W"], TENSORS["a.W"] * 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-00000003"]


def test_prune_keeps_the_last_n_and_the_best(tmp_path):
    for e in (1, 2, 5, 6, 3):  # written in this order: 3 after a roll-back from 6
        save_one(tmp_path, f"step-{e:08d}", e)
        time.sleep(0.01)
    ck.point(tmp_path, "best", "step-00000002")
    ck.point(tmp_path, "latest", "step-00000003")
    (tmp_path / ".step-00000007.tmp-99").mkdir()  # a write killed half-way
    ck.prune(tmp_path, keep_last=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best", "latest", "step-00000002", "step-00000003",
                                                          "step-00000006"]


def test_check_tensors_names_the_tensor_and_both_shapes():
    saved = {"a.W": np.zeros((3, 4), np.float32)}
    ck.check_tensors("model", saved, {"a.W": ((3, 4), "float32")})
    with pytest.raises(ck.CheckpointError, match=r"'a.W': the checkpoint has shape \[3, 4\], the model \[4, 4\]"):
        ck.check_tensors("model", saved, {"a.W": ((4, 4), "float32")})
    with pytest.raises(ck.CheckpointError, match="missing b.W"):
        ck.check_tensors("model", saved, {"a.W": ((3, 4), "float32"), "b.W": ((1,), "float32")})
    with pytest.raises(ck.CheckpointError, match="dtype"):
        ck.check_tensors("model", saved, {"a.W": ((3, 4), "float16")})
