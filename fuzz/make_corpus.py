#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets (fuzz/corpus/<reader>/), reproducibly.

Standard library only; the output is committed, so CI never runs this. Seeds are small valid
inputs and near-valid ones (truncated, one field wrong), each a few hundred bytes at most, so that
the fuzzer starts next to the interesting code. Run: python3 fuzz/make_corpus.py
"""
import gzip
import json
import shutil
import struct
from pathlib import Path

ROOT = Path(__file__).resolve().parent / "corpus"


def write(reader, name, data):
    d = ROOT / reader
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def gz(data, level):
    # mtime=0: the same bytes on every run.
    return gzip.compress(data, compresslevel=level, mtime=0)


def json_seeds():
    texts = {
        "object": '{"a": 1, "b": [1, -2, {"c": "d"}], "e": {}}',
        "escapes": '["\\u00e9\\n\\t\\"\\\\\\/", "\\ud83d\\ude00", ""]',
        "integers": "[0, -0, 9223372036854775807, -9223372036854775808]",
        "nested": "[[[[[[[[[[{}]]]]]]]]]]",
        "header": '{"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}}',
        "bad_duplicate": '{"a": 1, "a": 2}',
        "bad_overflow": "[9223372036854775808]",
        "bad_surrogate": '["\\ud800"]',
        "bad_trailing": '{"a": 1},',
        "bad_float": "[1.5e3]",
    }
    for name, t in texts.items():
        write("json", name, t.encode())


def safetensors(header, data=b"", pad=True):
    h = json.dumps(header, separators=(",", ":")).encode()
    if pad:  # the format pads the header with spaces to a multiple of 8
        h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


def safetensors_seeds():
    f32 = struct.pack("<6f", 1, 2, 3, 4, 5, 6)
    write("safetensors", "f32", safetensors(
        {"__metadata__": {"format": "pt"}, "w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}}, f32))
    mixed = {
        "a": {"dtype": "F16", "shape": [2], "data_offsets": [0, 4]},
        "b": {"dtype": "BF16", "shape": [2], "data_offsets": [4, 8]},
        "c": {"dtype": "I64", "shape": [1], "data_offsets": [8, 16]},
        "d": {"dtype": "F64", "shape": [1], "data_offsets": [16, 24]},
        "e": {"dtype": "I32", "shape": [1], "data_offsets": [24, 28]},
        "f": {"dtype": "U8", "shape": [2, 2], "data_offsets": [28, 32]},
        "g": {"dtype": "F32", "shape": [0, 5], "data_offsets": [32, 32]},
        "s": {"dtype": "F32", "shape": [], "data_offsets": [32, 36]},
    }
    write("safetensors", "mixed", safetensors(mixed, bytes(range(36))))
    write("safetensors", "empty", safetensors({}))
    write("safetensors", "bad_truncated", safetensors(
        {"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}}, f32[:20]))
    write("safetensors", "bad_overlap", safetensors({
        "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
        "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, bytes(12)))
    write("safetensors", "bad_shape", safetensors(
        {"w": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 8]}}, bytes(8)))
    write("safetensors", "bad_header_len", struct.pack("<Q", 1 << 40) + b"{}")


def idx(magic_type, dims, data):
    return bytes([0, 0, magic_type, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + data


def idx_seeds():
    # The first byte is the target's mode: 0 labels, 1 images, 2 load_idx (images, unlabelled).
    labels = idx(8, [5], bytes([0, 1, 2, 9, 3]))
    images = idx(8, [2, 3, 4], bytes(range(24)))
    write("idx", "labels", b"\x00" + labels)
    write("idx", "images", b"\x01" + images)
    write("idx", "load", b"\x02" + images)
    # level 0 keeps the header bytes literal inside the gzip stream, so mutations reach them.
    write("idx", "labels_gz0", b"\x00" + gz(labels, 0))
    write("idx", "images_gz0", b"\x02" + gz(images, 0))
    write("idx", "images_gz9", b"\x01" + gz(images, 9))
    write("idx", "bad_truncated", b"\x01" + images[:-5])
    write("idx", "bad_truncated_gz", b"\x01" + gz(images, 6)[:-12])
    write("idx", "bad_type", b"\x00" + idx(0x0D, [5], bytes(20)))
    write("idx", "bad_dims", b"\x02" + idx(8, [1, 0, 4], b""))


def cifar_seeds():
    # The first byte picks the variant: even CIFAR-10 (1 label byte), odd CIFAR-100 (2).
    pixels = bytes((i * 7) % 256 for i in range(3072))
    write("cifar", "cifar10", b"\x00" + bytes([3]) + pixels + bytes([9]) + pixels)
    write("cifar", "cifar100", b"\x01" + bytes([2, 57]) + pixels)
    write("cifar", "bad_label", b"\x00" + bytes([10]) + pixels)
    write("cifar", "bad_truncated", b"\x00" + bytes([3]) + pixels[:-1])
    write("cifar", "bad_variant", b"\x01" + bytes([3]) + pixels)


if __name__ == "__main__":
    shutil.rmtree(ROOT, ignore_errors=True)
    json_seeds()
    safetensors_seeds()
    idx_seeds()
    cifar_seeds()
    print("wrote", sum(1 for p in ROOT.rglob("*") if p.is_file()), "seeds under", ROOT)
