//! Reading a DICOM file's pixels as float32 grey frames: decoding the Pixel Data (PS3.5 8 and
//! A.4, encapsulated transfer syntaxes through dicom-pixeldata, 12-bit JPEG Extended through
//! [`super::jpeg12`]), stored values as PS3.3 C.7.6.3.1 describes them (Bits Stored, Pixel
//! Representation, Planar Configuration), the Modality LUT (step 1 of models/MANIFEST.md) and
//! colour to grey with BT.601 luma.
//!
//! Grey images in a native little-endian syntax (PS3.5 8.1.1, A.1 and A.2) take a shorter
//! path: the file is read once, its header parsed up to the Pixel Data, and the pixel bytes
//! converted in place to float32, with neither a parsed copy of the Pixel Data nor a float64
//! frame in between. Every other image goes through dicom-pixeldata.
//!
//! Every error names the file and its transfer syntax.

use std::path::{Path, PathBuf};

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_encoding::transfer_syntax::TransferSyntaxIndex;
use dicom_object::{DefaultDicomObject, InMemDicomObject, OpenFileOptions};
use dicom_pixeldata::{DecodedPixelData, PixelDecoder, PixelRepresentation, PlanarConfiguration};
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use ndarray::Array2;

use super::voi::{ModalityLut, ModalityTransform};
use crate::store::guard::CheckedFile;
use crate::store::tags::text_of;

/// JPEG Extended (Process 2 and 4), the transfer syntax of 12-bit lossy JPEG.
pub const JPEG_EXTENDED: &str = "1.2.840.10008.1.2.4.51";

/// RLE Lossless (PS3.5 Annex G).
pub const RLE_LOSSLESS: &str = "1.2.840.10008.1.2.5";

/// Why a file's pixels could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    #[error("cannot read DICOM file {path}: {reason}")]
    Open { path: PathBuf, reason: String },

    #[error("{path} has no Pixel Data (SOP Class {sop_class})")]
    NoPixels { path: PathBuf, sop_class: String },

    #[error("cannot decode pixel data of {path} (transfer syntax {transfer_syntax}): {reason}")]
    Pixels { path: PathBuf, transfer_syntax: String, reason: String },

    #[error("{path} (transfer syntax {transfer_syntax}): {what} is not supported: {reason}")]
    Unsupported { path: PathBuf, transfer_syntax: String, what: &'static str, reason: String },
}

/// The header facts of one instance that preparation, volumes and reports need.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImageMeta {
    pub sop_class_uid: String,
    pub sop_instance_uid: String,
    pub series_uid: String,
    pub study_uid: String,
    pub modality: String,
    /// UID and name, for errors.
    pub transfer_syntax: String,
    pub rows: usize,
    pub columns: usize,
    /// Image Position (Patient), mm.
    pub position: Option<[f64; 3]>,
    /// Image Orientation (Patient): row then column direction cosines.
    pub orientation: Option<[f64; 6]>,
    /// Pixel Spacing: between rows, then between columns (mm).
    pub pixel_spacing: Option<[f64; 2]>,
    /// Per-frame Image Position (Patient) of enhanced multi-frame objects (PS3.3 C.7.6.16.2.3);
    /// empty for single-frame objects.
    pub frame_positions: Vec<Option<[f64; 3]>>,
}

impl ImageMeta {
    /// The position of frame `index` (0-based): its own in an enhanced object, else the image's.
    pub fn position_of(&self, index: usize) -> Option<[f64; 3]> {
        self.frame_positions.get(index).copied().flatten().or(self.position)
    }
}

/// A decoded image: grey float32 frames after the Modality LUT when asked for.
#[derive(Debug, Clone)]
pub struct DicomImage {
    pub path: PathBuf,
    pub meta: ImageMeta,
    pub frames: Vec<Array2<f32>>,
    pub monochrome1: bool,
    /// The first Window Center and Width of the file.
    pub window: Option<(f64, f64)>,
}

/// Reads only the header of a DICOM file (up to the Pixel Data).
pub fn read_header(path: &Path) -> Result<(DefaultDicomObject, ImageMeta), DecodeError> {
    let obj = OpenFileOptions::new()
        .read_until(tags::PIXEL_DATA)
        .open_file(path)
        .map_err(|e| DecodeError::Open { path: path.into(), reason: e.to_string() })?;
    let meta = meta_of(&obj);
    Ok((obj, meta))
}

/// Reads and decodes a DICOM file; `rescale` applies the Modality LUT (manifest step 1).
pub fn read_dicom(path: &Path, rescale: bool) -> Result<DicomImage, DecodeError> {
    let open_error = |reason: String| DecodeError::Open { path: path.into(), reason };
    let bytes = std::fs::read(path).map_err(|e| open_error(e.to_string()))?;
    // A file may declare values far larger than itself; refuse it before memory is reserved.
    let checked = crate::store::guard::check_part10(&bytes).map_err(open_error)?;

    // Uncompressed grey images, the common case, skip the copies of the general path.
    if let Some(pixels) = checked.as_ref().and_then(native_pixels)
        && let Some(image) = read_native(&bytes, pixels, path, rescale)?
    {
        return Ok(image);
    }
    let obj =
        OpenFileOptions::new().from_reader(&bytes[..]).map_err(|e| open_error(e.to_string()))?;
    decode_object(&obj, path, rescale)
}

/// The general path: any transfer syntax dicom-pixeldata or Argus's fallbacks decode.
fn decode_object(
    obj: &DefaultDicomObject,
    path: &Path,
    rescale: bool,
) -> Result<DicomImage, DecodeError> {
    let meta = meta_of(obj);
    if obj.get(tags::PIXEL_DATA).is_none() {
        return Err(DecodeError::NoPixels { path: path.into(), sop_class: meta.sop_class_uid });
    }

    let stored = stored_frames(obj, path, &meta)?;
    let monochrome1 = stored.photometric == "MONOCHROME1";
    let transforms = if rescale && stored.channels == 1 {
        modality_transforms(obj, &stored.rescale)
    } else {
        Vec::new()
    };
    let frames = stored
        .frames
        .into_iter()
        .enumerate()
        .map(|(i, f)| to_f32(f, transforms.get(i).or(transforms.first())))
        .collect();

    Ok(DicomImage { path: path.into(), window: first_window(obj), monochrome1, frames, meta })
}

/// The fast path, for a grey image without functional groups whose Pixel Data is native and
/// little endian: the header is parsed up to the Pixel Data, and the frames are converted
/// from the file's bytes straight to float32 with the Modality LUT. `None` sends the file
/// down the general path, which also reports whatever is wrong with it.
fn read_native(
    bytes: &[u8],
    pixels: &[u8],
    path: &Path,
    rescale: bool,
) -> Result<Option<DicomImage>, DecodeError> {
    let obj = OpenFileOptions::new()
        .read_until(tags::PIXEL_DATA)
        .from_reader(bytes)
        .map_err(|e| DecodeError::Open { path: path.into(), reason: e.to_string() })?;
    let Some((layout, count)) = native_layout(&obj, pixels.len()) else { return Ok(None) };

    let transforms = if rescale { modality_transforms(&obj, &[]) } else { Vec::new() };
    let frame_bytes = layout.rows * layout.columns * (layout.bits_allocated as usize / 8);
    let frames = pixels
        .chunks_exact(frame_bytes)
        .take(count)
        .map(|frame| layout.grey_f32(frame, transforms.first()))
        .collect();
    let monochrome1 = text_of(&obj, tags::PHOTOMETRIC_INTERPRETATION) == "MONOCHROME1";
    let (window, meta) = (first_window(&obj), meta_of(&obj));
    Ok(Some(DicomImage { path: path.into(), meta, frames, monochrome1, window }))
}

/// The top-level Pixel Data value of a PS3.10 file in a native little-endian syntax.
fn native_pixels<'a>(checked: &CheckedFile<'a>) -> Option<&'a [u8]> {
    if checked.encoding.big_endian {
        return None;
    }
    checked.native_pixel_data()
}

/// The layout of a native grey image and its frame count, when the fast path applies: one
/// sample, 8, 16 or 32 bits, no functional groups (whose per-frame rescale dicom-pixeldata
/// reads), and a Pixel Data length that matches the header (an even-length pad allowed).
fn native_layout(obj: &InMemDicomObject, length: usize) -> Option<(Layout, usize)> {
    // TODO(#3): Read the per-frame rescale of enhanced objects and the samples of colour images here too, so that they skip the general path's two copies of the Pixel Data and its float64 frame.
    let functional =
        [tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE, tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE];
    if functional.into_iter().any(|tag| sequence(obj, tag).is_some()) {
        return None;
    }
    if !text_of(obj, tags::PHOTOMETRIC_INTERPRETATION).starts_with("MONOCHROME") {
        return None;
    }
    let layout = layout_of(obj);
    if layout.samples != 1 || !matches!(layout.bits_allocated, 8 | 16 | 32) {
        return None;
    }
    let frame_bytes = layout.rows * layout.columns * (layout.bits_allocated as usize / 8);
    let count = float_of(obj, tags::NUMBER_OF_FRAMES).unwrap_or(1.0) as usize;
    let expected = frame_bytes.checked_mul(count).filter(|&e| e > 0)?;
    (length == expected || length == expected + 1).then_some((layout, count))
}

/// Stored values of every frame, grey, as f64, with what the Modality LUT needs.
struct Stored {
    frames: Vec<Array2<f64>>,
    channels: usize,
    photometric: String,
    rescale: Vec<(f64, f64)>,
}

fn stored_frames(
    obj: &DefaultDicomObject,
    path: &Path,
    meta: &ImageMeta,
) -> Result<Stored, DecodeError> {
    let pixel_error = |reason: String| DecodeError::Pixels {
        path: path.into(),
        transfer_syntax: meta.transfer_syntax.clone(),
        reason,
    };

    // Codec libraries may panic on malformed streams; such a panic becomes a decoding error.
    let decoded =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| obj.decode_pixel_data()))
            .map_err(|_| pixel_error("the decoder panicked".into()))?;
    match decoded {
        Ok(decoded) => from_decoded(&decoded, path, meta),
        Err(e) => {
            tracing::debug!(error = %e, "dicom-pixeldata cannot decode; trying Argus's fallbacks");
            fallback(obj, path, meta).map_err(|fallback| pixel_error(format!("{e}; {fallback}")))
        }
    }
}

/// Decoders for what dicom-pixeldata 0.10 refuses: 12-bit JPEG Extended, RLE of 32-bit
/// samples, and frames spread over fragments without an offset table.
fn fallback(obj: &DefaultDicomObject, path: &Path, meta: &ImageMeta) -> Result<Stored, String> {
    let photometric = text_of(obj, tags::PHOTOMETRIC_INTERPRETATION);
    if meta.transfer_syntax.starts_with(JPEG_EXTENDED) {
        let frames =
            super::jpeg12::decode_object(obj).map_err(|e| format!("12-bit decoder: {e}"))?;
        return Ok(Stored { frames, channels: 1, photometric, rescale: Vec::new() });
    }
    if meta.transfer_syntax.starts_with(RLE_LOSSLESS) {
        return rle(obj, photometric);
    }
    let regrouped = super::fallback::regroup_fragments(obj).ok_or("no fragments to regroup")?;
    let decoded = regrouped.decode_pixel_data().map_err(|e| format!("after regrouping: {e}"))?;
    from_decoded(&decoded, path, meta).map_err(|e| e.to_string())
}

fn rle(obj: &DefaultDicomObject, photometric: String) -> Result<Stored, String> {
    let layout = layout_of(obj);
    let bytes = layout.bits_allocated as usize / 8;
    let frames = super::fallback::decode_rle(obj, bytes, layout.samples)
        .map_err(|e| format!("RLE decoder: {e}"))?;
    let expected = layout.rows * layout.columns * layout.samples * bytes;
    let frames = frames
        .iter()
        .map(|f| {
            f.get(..expected).map(|f| layout.grey(f, &photometric)).ok_or("RLE frame too short")
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Stored { frames, channels: layout.samples, photometric, rescale: Vec::new() })
}

fn layout_of(obj: &InMemDicomObject) -> Layout {
    let int = |tag: Tag, default: f64| float_of(obj, tag).unwrap_or(default) as usize;
    let bits_allocated = int(tags::BITS_ALLOCATED, 16.0) as u16;
    Layout {
        rows: int(tags::ROWS, 0.0),
        columns: int(tags::COLUMNS, 0.0),
        samples: int(tags::SAMPLES_PER_PIXEL, 1.0),
        bits_allocated,
        bits_stored: int(tags::BITS_STORED, bits_allocated as f64) as u16,
        signed: int(tags::PIXEL_REPRESENTATION, 0.0) == 1,
        planar: false,
    }
}

fn from_decoded(
    d: &DecodedPixelData,
    path: &Path,
    meta: &ImageMeta,
) -> Result<Stored, DecodeError> {
    let unsupported = |what, reason: String| DecodeError::Unsupported {
        path: path.into(),
        transfer_syntax: meta.transfer_syntax.clone(),
        what,
        reason,
    };
    let layout = Layout {
        rows: d.rows() as usize,
        columns: d.columns() as usize,
        samples: d.samples_per_pixel() as usize,
        bits_allocated: d.bits_allocated(),
        bits_stored: d.bits_stored(),
        signed: d.pixel_representation() == PixelRepresentation::Signed,
        planar: d.planar_configuration() == PlanarConfiguration::PixelFirst,
    };
    let photometric = d.photometric_interpretation().as_str().to_string();
    if !matches!(layout.bits_allocated, 8 | 16 | 32) {
        return Err(unsupported("Bits Allocated", layout.bits_allocated.to_string()));
    }
    if !matches!(layout.samples, 1 | 3) || photometric == "PALETTE COLOR" {
        // TODO(#3): Apply the palette of PALETTE COLOR images instead of refusing them.
        return Err(unsupported("Photometric Interpretation", photometric));
    }

    let frame_bytes =
        layout.rows * layout.columns * layout.samples * (layout.bits_allocated as usize / 8);
    let data = d.data();
    let count = (d.number_of_frames() as usize).min(data.len() / frame_bytes.max(1));
    if count == 0 {
        return Err(unsupported("Pixel Data length", format!("{} bytes", data.len())));
    }
    let frames = (0..count)
        .map(|i| layout.grey(&data[i * frame_bytes..(i + 1) * frame_bytes], &photometric))
        .collect();
    let rescale =
        d.rescale().map(|r| r.iter().map(|r| (r.slope, r.intercept)).collect()).unwrap_or_default();
    Ok(Stored { frames, channels: layout.samples, photometric, rescale })
}

/// How stored samples are laid out in a native frame (PS3.5 8.1.1, PS3.3 C.7.6.3.1.3).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Layout {
    pub rows: usize,
    pub columns: usize,
    pub samples: usize,
    pub bits_allocated: u16,
    pub bits_stored: u16,
    pub signed: bool,
    /// Planar Configuration 1: all reds, then greens, then blues.
    pub planar: bool,
}

impl Layout {
    /// One frame as grey stored values: colour becomes BT.601 luma (Y for YBR_FULL).
    pub(crate) fn grey(&self, bytes: &[u8], photometric: &str) -> Array2<f64> {
        let n = self.rows * self.columns;
        let sample = |i: usize| self.sample(bytes, i);
        let at = |pixel: usize, channel: usize| {
            if self.planar {
                sample(channel * n + pixel)
            } else {
                sample(pixel * self.samples + channel)
            }
        };
        let values: Vec<f64> = match (self.samples, photometric.starts_with("YBR_FULL")) {
            (1, _) => (0..n).map(sample).collect(),
            (_, true) => (0..n).map(|p| at(p, 0)).collect(),
            _ => (0..n).map(|p| 0.299 * at(p, 0) + 0.587 * at(p, 1) + 0.114 * at(p, 2)).collect(),
        };
        Array2::from_shape_vec((self.rows, self.columns), values).expect("frame size checked")
    }

    /// One grey frame (one sample per pixel) as float32 after the Modality LUT, computed in
    /// float64 as [`Layout::grey`] and `to_f32` do, without the float64 frame between them.
    pub(crate) fn grey_f32(
        &self,
        bytes: &[u8],
        transform: Option<&ModalityTransform>,
    ) -> Array2<f32> {
        let values = match transform {
            Some(ModalityTransform::Rescale { slope, intercept }) => {
                let (slope, intercept) = (*slope, *intercept);
                self.samples_to(bytes, |v| (v * slope + intercept) as f32)
            }
            Some(table) => self.samples_to(bytes, |v| table.apply(v) as f32),
            None => self.samples_to(bytes, |v| v as f32),
        };
        Array2::from_shape_vec((self.rows, self.columns), values).expect("frame size checked")
    }

    /// Every stored value of `bytes` through `map`. Bits Stored and the sign are resolved
    /// once, not per sample, so that each loop compiles to vector code.
    fn samples_to(&self, bytes: &[u8], map: impl Fn(f64) -> f32) -> Vec<f32> {
        let unused = 32 - self.bits_stored.clamp(1, self.bits_allocated) as u32;
        match (self.signed, unused) {
            (true, _) => self.raw_to(bytes, |raw| map((((raw << unused) as i32) >> unused) as f64)),
            // Fewer than 32 bits always fit an i32, whose conversion to f64 vectorises.
            (false, 1..) => {
                self.raw_to(bytes, |raw| map(((raw << unused) >> unused) as i32 as f64))
            }
            (false, 0) => self.raw_to(bytes, |raw| map(raw as f64)),
        }
    }

    /// Every raw sample of `bytes` (little endian) through `map`, one loop per sample size,
    /// each writing into a buffer of known length so that it compiles to vector code.
    fn raw_to(&self, bytes: &[u8], map: impl Fn(u32) -> f32) -> Vec<f32> {
        let mut out = vec![0.0; self.rows * self.columns * self.samples];
        match self.bits_allocated {
            8 => out.iter_mut().zip(bytes).for_each(|(o, &b)| *o = map(b as u32)),
            16 => out
                .iter_mut()
                .zip(bytes.chunks_exact(2))
                .for_each(|(o, b)| *o = map(u16::from_le_bytes([b[0], b[1]]) as u32)),
            _ => out
                .iter_mut()
                .zip(bytes.chunks_exact(4))
                .for_each(|(o, b)| *o = map(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))),
        }
        out
    }

    /// Sample `i` of a frame: Bits Stored keeps the low bits, signed values are sign-extended.
    fn sample(&self, bytes: &[u8], i: usize) -> f64 {
        let raw: u32 = match self.bits_allocated {
            8 => bytes[i] as u32,
            16 => u16::from_le_bytes([bytes[2 * i], bytes[2 * i + 1]]) as u32,
            _ => u32::from_le_bytes(bytes[4 * i..4 * i + 4].try_into().expect("4 bytes")),
        };
        self.stored_value(raw)
    }

    /// A raw sample as its stored value: Bits Stored keeps the low bits, signed values are
    /// sign-extended (PS3.5 8.1.1).
    #[inline]
    fn stored_value(&self, raw: u32) -> f64 {
        let bits = self.bits_stored.clamp(1, self.bits_allocated) as u32;
        let unused = 32 - bits;
        if self.signed {
            (((raw << unused) as i32) >> unused) as f64
        } else {
            ((raw << unused) >> unused) as f64
        }
    }
}

/// The Modality LUT of each frame: the Modality LUT Sequence when present, else Rescale
/// Slope/Intercept (per frame for enhanced objects).
fn modality_transforms(obj: &InMemDicomObject, rescale: &[(f64, f64)]) -> Vec<ModalityTransform> {
    if let Some(lut) = modality_lut_sequence(obj) {
        return vec![ModalityTransform::Table(lut)];
    }
    if rescale.is_empty() {
        return vec![rescale_of(obj)];
    }
    rescale
        .iter()
        .map(|&(slope, intercept)| ModalityTransform::Rescale { slope, intercept })
        .collect()
}

fn rescale_of(obj: &InMemDicomObject) -> ModalityTransform {
    let slope = float_of(obj, tags::RESCALE_SLOPE).unwrap_or(1.0);
    let intercept = float_of(obj, tags::RESCALE_INTERCEPT).unwrap_or(0.0);
    ModalityTransform::Rescale { slope, intercept }
}

fn modality_lut_sequence(obj: &InMemDicomObject) -> Option<ModalityLut> {
    let item = obj.get(tags::MODALITY_LUT_SEQUENCE)?.items()?.first()?.clone();
    let descriptor = floats_of(&item, tags::LUT_DESCRIPTOR)?;
    let data = floats_of(&item, tags::LUT_DATA)?;
    let first_mapped = *descriptor.get(1)? as i64;
    Some(ModalityLut { first_mapped, data })
}

fn to_f32(frame: Array2<f64>, transform: Option<&ModalityTransform>) -> Array2<f32> {
    match transform {
        Some(t) if !t.is_identity() => frame.mapv(|v| t.apply(v) as f32),
        _ => frame.mapv(|v| v as f32),
    }
}

fn first_window(obj: &InMemDicomObject) -> Option<(f64, f64)> {
    let center = floats_of(obj, tags::WINDOW_CENTER)?.first().copied()?;
    let width = floats_of(obj, tags::WINDOW_WIDTH)?.first().copied()?;
    Some((center, width))
}

fn meta_of(obj: &DefaultDicomObject) -> ImageMeta {
    let text = |tag: Tag| text_of(obj, tag);
    let ts_uid = obj.meta().transfer_syntax().trim_end_matches(['\0', ' ']).to_string();
    let ts_name = TransferSyntaxRegistry
        .get(&ts_uid)
        .map(|ts| ts.name().to_string())
        .unwrap_or_else(|| "unknown".into());
    ImageMeta {
        sop_class_uid: text(tags::SOP_CLASS_UID),
        sop_instance_uid: text(tags::SOP_INSTANCE_UID),
        series_uid: text(tags::SERIES_INSTANCE_UID),
        study_uid: text(tags::STUDY_INSTANCE_UID),
        modality: text(tags::MODALITY),
        transfer_syntax: format!("{ts_uid} ({ts_name})"),
        rows: float_of(obj, tags::ROWS).unwrap_or(0.0) as usize,
        columns: float_of(obj, tags::COLUMNS).unwrap_or(0.0) as usize,
        position: fixed(floats_of(obj, tags::IMAGE_POSITION_PATIENT)),
        orientation: fixed(floats_of(obj, tags::IMAGE_ORIENTATION_PATIENT)).or_else(|| {
            functional(obj, tags::PLANE_ORIENTATION_SEQUENCE, tags::IMAGE_ORIENTATION_PATIENT)
        }),
        pixel_spacing: fixed(floats_of(obj, tags::PIXEL_SPACING))
            .or_else(|| functional(obj, tags::PIXEL_MEASURES_SEQUENCE, tags::PIXEL_SPACING)),
        frame_positions: frame_positions(obj),
    }
}

/// Image Position (Patient) of each item of the Per-Frame Functional Groups Sequence.
fn frame_positions(obj: &InMemDicomObject) -> Vec<Option<[f64; 3]>> {
    let Some(items) = sequence(obj, tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE) else {
        return Vec::new();
    };
    items
        .iter()
        .map(|frame| {
            let plane = sequence(frame, tags::PLANE_POSITION_SEQUENCE)?.first()?;
            fixed(floats_of(plane, tags::IMAGE_POSITION_PATIENT))
        })
        .collect()
}

/// A value inside a functional group macro (`group` > `tag`), shared or of the first frame.
fn functional<const N: usize>(obj: &InMemDicomObject, group: Tag, tag: Tag) -> Option<[f64; N]> {
    [tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE, tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE]
        .into_iter()
        .find_map(|groups| {
            let macro_item = sequence(sequence(obj, groups)?.first()?, group)?.first()?;
            fixed(floats_of(macro_item, tag))
        })
}

fn sequence(obj: &InMemDicomObject, tag: Tag) -> Option<&[InMemDicomObject]> {
    obj.get(tag)?.items()
}

fn fixed<const N: usize>(values: Option<Vec<f64>>) -> Option<[f64; N]> {
    values?.get(..N)?.try_into().ok()
}

/// `get` rather than `element_opt`, which captures a backtrace for every absent attribute.
fn floats_of(obj: &InMemDicomObject, tag: Tag) -> Option<Vec<f64>> {
    obj.get(tag)?.to_multi_float64().ok().filter(|v| !v.is_empty())
}

fn float_of(obj: &InMemDicomObject, tag: Tag) -> Option<f64> {
    floats_of(obj, tag)?.first().copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(bits_stored: u16, signed: bool) -> Layout {
        Layout {
            rows: 1,
            columns: 1,
            samples: 1,
            bits_allocated: 16,
            bits_stored,
            signed,
            planar: false,
        }
    }

    #[test]
    fn twelve_bit_signed_is_sign_extended() {
        // 0x0FFF in 12 bits is -1; the high nibble is ignored.
        assert_eq!(layout(12, true).sample(&[0xFF, 0xFF], 0), -1.0);
        assert_eq!(layout(12, true).sample(&[0x0F, 0x07], 0), 0x070F as f64);
    }

    #[test]
    fn unused_high_bits_are_ignored() {
        assert_eq!(layout(12, false).sample(&[0x0F, 0xFF], 0), 0x0F0F as f64);
    }

    #[test]
    fn rgb_becomes_luma() {
        let l = Layout { samples: 3, bits_allocated: 8, bits_stored: 8, ..layout(8, false) };
        let grey = l.grey(&[255, 0, 0], "RGB");
        assert!((grey[[0, 0]] - 0.299 * 255.0).abs() < 1e-9);
    }
}
