"""NIfTI voxels as nibabel reads them, for tests/nifti_reference.rs.

Usage: nifti_reference.py FILE OUT.f32

Writes the first volume of FILE, scaled by scl_slope/scl_inter (nibabel's get_fdata), as float32
planes of the third axis, each transposed to (dim2 rows, dim1 columns).
"""

import sys

import nibabel as nib
import numpy as np

data = np.asarray(nib.load(sys.argv[1]).get_fdata(dtype=np.float32))
while data.ndim > 3:
    data = data[..., 0]
if data.ndim == 2:
    data = data[..., None]
planes = np.stack([data[..., k].T for k in range(data.shape[2])])
planes.astype("<f4").tofile(sys.argv[2])
