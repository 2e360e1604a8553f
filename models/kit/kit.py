"""Entry point of the model kit: `python models/kit/kit.py <command>` from anywhere."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from argus_kit.cli import main  # noqa: E402

if __name__ == "__main__":
    main()
