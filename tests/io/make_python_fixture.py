# Writes tests/io/data/python_written.safetensors with the pip package `safetensors` (torch API),
# so the C++ reader is checked against the reference writer. Run from the repository root:
#   python3 tests/io/make_python_fixture.py
import torch
from safetensors.torch import save_file

tensors = {
    "blocks.0.attn.qkv.weight": torch.arange(6, dtype=torch.float32).reshape(2, 3) * 0.5 - 1.0,
    "f64": torch.tensor([1.5, -2.25, 1e-300], dtype=torch.float64),
    "i64": torch.tensor([[1, -2], [3, 1 << 40]], dtype=torch.int64),
    "i32": torch.tensor([7, -8, 9, 10], dtype=torch.int32),
    "u8": torch.tensor([0, 1, 254, 255, 128], dtype=torch.uint8),
    "f16": torch.tensor([1.0, -0.5, 65504.0, 6e-8], dtype=torch.float16),
    "bf16": torch.tensor([1.0, -3.0, 0.15625, 1e30], dtype=torch.bfloat16),
    "scalar": torch.tensor(3.25, dtype=torch.float32),
    "empty": torch.zeros((0, 4), dtype=torch.float32),
    "name with \"quotes\" and \u00e9": torch.tensor([42.0], dtype=torch.float32),
}
save_file(tensors, "tests/io/data/python_written.safetensors", metadata={"creator": "safetensors-python", "k": "v\"\n"})
