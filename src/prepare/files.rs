//! Inputs that are not DICOM, for `argus analyze`: NIfTI-1 and NIfTI-2 volumes (.nii, .nii.gz;
//! the headers of the two NIfTI standards, gunzipped with flate2) and PNG or JPEG
//! pictures (one grey frame, BT.601 luma for colour).

use std::io::Read;
use std::path::{Path, PathBuf};

use ndarray::Array2;

/// Why a NIfTI or picture file could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },

    #[error("{path} is not a NIfTI file Argus reads: {reason}")]
    Nifti { path: PathBuf, reason: String },

    #[error("cannot decode picture {path}: {reason}")]
    Picture { path: PathBuf, reason: String },
}

/// Grey frames of a NIfTI volume, one per index of the third axis (the first volume of a 4-D
/// file), each (dim2 rows, dim1 columns), scaled by scl_slope/scl_inter when the slope is set.
pub fn read_nifti(path: &Path) -> Result<Vec<Array2<f32>>, FileError> {
    let bytes = read_maybe_gzip(path)?;
    let nifti_error = |reason: String| FileError::Nifti { path: path.into(), reason };
    let header = Header::parse(&bytes).map_err(nifti_error)?;
    let (nx, ny, nz) = (header.dims[0], header.dims[1], header.dims[2]);
    let count = nx * ny * nz;
    let values = header.values(&bytes, count).map_err(nifti_error)?;
    Ok((0..nz)
        .map(|k| {
            let plane = &values[k * nx * ny..(k + 1) * nx * ny];
            Array2::from_shape_fn((ny, nx), |(r, c)| plane[r * nx + c])
        })
        .collect())
}

/// One grey frame of a PNG or JPEG picture.
pub fn read_picture(path: &Path) -> Result<Array2<f32>, FileError> {
    let image = image::open(path)
        .map_err(|e| FileError::Picture { path: path.into(), reason: e.to_string() })?;
    let grey: Vec<f32> = if image.color().has_color() {
        image.to_rgb32f().pixels().map(|p| 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2]).collect()
    } else {
        image.to_luma32f().pixels().map(|p| p[0]).collect()
    };
    let (w, h) = (image.width() as usize, image.height() as usize);
    // to_*32f maps the full range to [0, 1]; scale back to stored units of the picture.
    let full = if image.color().bytes_per_pixel() / image.color().channel_count() as u8 > 1 {
        65535.0
    } else {
        255.0
    };
    Ok(Array2::from_shape_vec((h, w), grey.into_iter().map(|v| v * full).collect())
        .expect("sizes agree"))
}

fn read_maybe_gzip(path: &Path) -> Result<Vec<u8>, FileError> {
    let read_error = |source| FileError::Read { path: path.into(), source };
    let raw = std::fs::read(path).map_err(read_error)?;
    if raw.starts_with(&[0x1F, 0x8B]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..]).read_to_end(&mut out).map_err(read_error)?;
        return Ok(out);
    }
    Ok(raw)
}

/// The NIfTI-1 header fields used here (offsets of the 348-byte header).
struct Header {
    big_endian: bool,
    dims: [usize; 3],
    datatype: i16,
    vox_offset: usize,
    slope: f32,
    intercept: f32,
}

impl Header {
    fn parse(b: &[u8]) -> Result<Header, String> {
        if b.len() < 348 {
            return Err("shorter than the 348-byte header".into());
        }
        let size = b[0..4].try_into().expect("4 bytes");
        match (i32::from_le_bytes(size), i32::from_be_bytes(size)) {
            (348, _) => Ok(Header::nifti1(Reader { b, big_endian: false })),
            (_, 348) => Ok(Header::nifti1(Reader { b, big_endian: true })),
            (540, _) if b.len() >= 540 => Ok(Header::nifti2(Reader { b, big_endian: false })),
            (_, 540) if b.len() >= 540 => Ok(Header::nifti2(Reader { b, big_endian: true })),
            _ => Err("sizeof_hdr is neither 348 (NIfTI-1) nor 540 (NIfTI-2)".into()),
        }
    }

    /// NIfTI-1: dim int16[8] at 40, datatype at 70, vox_offset float at 108, scl_* at 112.
    fn nifti1(h: Reader) -> Header {
        let rank = h.i16(40).clamp(1, 7) as usize;
        let dim = |i: usize| if i <= rank { h.i16(40 + 2 * i).max(1) as usize } else { 1 };
        Header {
            big_endian: h.big_endian,
            dims: [dim(1), dim(2), dim(3)],
            datatype: h.i16(70),
            vox_offset: h.f32(108).max(348.0) as usize,
            slope: h.f32(112),
            intercept: h.f32(116),
        }
    }

    /// NIfTI-2: datatype at 12, dim int64[8] at 16, vox_offset int64 at 168, scl_* at 176.
    fn nifti2(h: Reader) -> Header {
        let rank = h.i64(16).clamp(1, 7) as usize;
        let dim = |i: usize| if i <= rank { h.i64(16 + 8 * i).max(1) as usize } else { 1 };
        Header {
            big_endian: h.big_endian,
            dims: [dim(1), dim(2), dim(3)],
            datatype: h.i16(12),
            vox_offset: h.i64(168).max(540) as usize,
            slope: h.f64(176) as f32,
            intercept: h.f64(184) as f32,
        }
    }

    fn values(&self, b: &[u8], count: usize) -> Result<Vec<f32>, String> {
        let r = Reader { b, big_endian: self.big_endian };
        let (size, read): (usize, Box<dyn Fn(usize) -> f32>) = match self.datatype {
            2 => (1, Box::new(|o| b[o] as f32)),
            256 => (1, Box::new(|o| b[o] as i8 as f32)),
            4 => (2, Box::new(|o| r.i16(o) as f32)),
            512 => (2, Box::new(|o| r.i16(o) as u16 as f32)),
            8 => (4, Box::new(|o| r.i32(o) as f32)),
            768 => (4, Box::new(|o| r.i32(o) as u32 as f32)),
            16 => (4, Box::new(|o| r.f32(o))),
            64 => (8, Box::new(|o| r.f64(o) as f32)),
            other => return Err(format!("datatype {other} is not supported")),
        };
        if b.len() < self.vox_offset + count * size {
            return Err("voxel data shorter than the header says".into());
        }
        let scale = |v: f32| {
            if self.slope != 0.0 && self.slope.is_finite() {
                v * self.slope + self.intercept
            } else {
                v
            }
        };
        Ok((0..count).map(|i| scale(read(self.vox_offset + i * size))).collect())
    }
}

struct Reader<'a> {
    b: &'a [u8],
    big_endian: bool,
}

impl Reader<'_> {
    fn bytes<const N: usize>(&self, o: usize) -> [u8; N] {
        let mut a: [u8; N] = self.b[o..o + N].try_into().expect("in bounds");
        if self.big_endian {
            a.reverse();
        }
        a
    }
    fn i16(&self, o: usize) -> i16 {
        i16::from_le_bytes(self.bytes(o))
    }
    fn i32(&self, o: usize) -> i32 {
        i32::from_le_bytes(self.bytes(o))
    }
    fn f32(&self, o: usize) -> f32 {
        f32::from_le_bytes(self.bytes(o))
    }
    fn i64(&self, o: usize) -> i64 {
        i64::from_le_bytes(self.bytes(o))
    }
    fn f64(&self, o: usize) -> f64 {
        f64::from_le_bytes(self.bytes(o))
    }
}
