"""Times the pydicom + numpy preparation of series folders, the reference Argus is compared with.

The same work as `argus-bench prepare`: read every file, sort along the slice normal, Modality
LUT, window -600/1500, MONOCHROME1 inversion, triangle resize to 128x128, (y - 0.5) / 0.5. The
steps are those of tests/reference/prepare_reference.py. Prints one JSON line per folder.
Usage: python bench/prepare_python.py --runs 5 FOLDER...
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pydicom

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "reference"))
from prepare_reference import position, resize, windowed  # noqa: E402

VOI = {"window": [-600.0, 1500.0]}


def prepare(files: list[Path]) -> list[np.ndarray]:
    datasets = [pydicom.dcmread(f) for f in files]
    if all("ImagePositionPatient" in ds and "ImageOrientationPatient" in ds for ds in datasets):
        datasets.sort(key=position)
    return [((resize(windowed(ds, VOI), 128, 128) - 0.5) / 0.5)[None] for ds in datasets]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folders", nargs="+", type=Path)
    p.add_argument("--runs", type=int, default=5)
    a = p.parse_args()
    for folder in a.folders:
        files = sorted(f for f in folder.iterdir() if f.is_file())
        times = []
        for _ in range(a.runs):
            start = time.perf_counter()
            prepare(files)
            times.append(time.perf_counter() - start)
        print(json.dumps({"folder": str(folder), "files": len(files),
                          "median_s": statistics.median(times), "runs": a.runs}))


if __name__ == "__main__":
    main()
