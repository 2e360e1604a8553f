"""Makes `argus_kit` importable from models/kit/tests and keeps torch to one thread."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

torch.set_num_threads(1)
