//! Pixel preparation: the steps of models/MANIFEST.md ("Preparation, step by step") that turn
//! stored pixels into a model's input tensor, identically to the Python model kit.
//!
//! [`decode`] and [`files`] read pixels (step 1 and colour to grey); [`voi`] holds steps 1-3,
//! [`resize`] step 4, [`volume`] step 5; this module chains them and applies step 6.

pub mod decode;
pub mod fallback;
pub mod files;
pub mod jpeg12;
pub mod resize;
pub mod voi;
pub mod volume;

use std::sync::Arc;

use ndarray::{Array2, Array3, Array4, ArrayView2, Axis};

pub use decode::{DecodeError, DicomImage, ImageMeta, read_dicom};

use crate::model::manifest::Preparation;

/// One grey 2D frame after step 1, with the header facts steps 2-3 and locations need.
#[derive(Debug, Clone)]
pub struct Frame {
    pub pixels: Array2<f32>,
    pub monochrome1: bool,
    /// The first Window Center/Width of the file, for `voi = "file"`.
    pub window: Option<(f64, f64)>,
    /// The instance the frame came from; `None` for NIfTI and pictures.
    pub source: Option<Arc<ImageMeta>>,
    /// 1-based frame number within its instance.
    pub frame_number: u32,
    /// Image Position (Patient) of the frame, when known.
    pub position: Option<[f64; 3]>,
}

impl Frame {
    /// A frame that carries no DICOM identity (NIfTI, PNG, JPEG).
    pub fn bare(pixels: Array2<f32>) -> Frame {
        Frame {
            pixels,
            monochrome1: false,
            window: None,
            source: None,
            frame_number: 1,
            position: None,
        }
    }

    /// Every frame of a decoded DICOM image.
    pub fn from_dicom(image: DicomImage) -> Vec<Frame> {
        let meta = Arc::new(image.meta);
        image
            .frames
            .into_iter()
            .enumerate()
            .map(|(i, pixels)| Frame {
                pixels,
                monochrome1: image.monochrome1,
                window: image.window,
                position: meta.position_of(i),
                source: Some(meta.clone()),
                frame_number: i as u32 + 1,
            })
            .collect()
    }
}

/// Steps 2-3: the frame at its own size, mapped to [0, 1], MONOCHROME1 inverted.
pub fn windowed(frame: &Frame, prep: &Preparation) -> Array2<f32> {
    frame.pixels.mapv(window_of(frame, prep))
}

/// Steps 2-4: (height, width) in [0, 1]. The window is applied as the resize reads each row,
/// so the windowed frame at full size is never stored.
pub fn prepare_frame(frame: &Frame, prep: &Preparation) -> Array2<f32> {
    resize::resize2_mapped(frame.pixels.view(), prep.height, prep.width, window_of(frame, prep))
}

/// Steps 2-3 for this frame, as a function of one value.
fn window_of(frame: &Frame, prep: &Preparation) -> impl Fn(f32) -> f32 + Copy {
    let (lo, hi) = voi::bounds(prep.voi, &frame.pixels, frame.window);
    voi::window(lo, hi, prep.invert_monochrome1 && frame.monochrome1)
}

/// A slice model's input for one frame: (channels, height, width).
pub fn slice_tensor(frame: &Frame, prep: &Preparation) -> Array3<f32> {
    let y = prepare_frame(frame, prep);
    Array3::from_shape_fn((prep.channels, prep.height, prep.width), |(c, r, k)| {
        normalise(y[[r, k]], prep, c)
    })
}

/// A volume model's input from frames already in slice order: (channels, depth, height, width).
pub fn volume_tensor(frames: &[Frame], prep: &Preparation) -> Array4<f32> {
    let depth = prep.depth.unwrap_or(frames.len()).max(1);
    let planes: Vec<Array2<f32>> = frames.iter().map(|f| prepare_frame(f, prep)).collect();
    let views: Vec<ArrayView2<f32>> = planes.iter().map(|p| p.view()).collect();
    let stack = ndarray::stack(Axis(0), &views).expect("prepared planes share a size");
    let stack = resize::resize_depth(stack.view(), depth);
    Array4::from_shape_fn((prep.channels, depth, prep.height, prep.width), |(c, d, r, k)| {
        normalise(stack[[d, r, k]], prep, c)
    })
}

/// Step 6 for one value of channel `c`.
fn normalise(y: f32, prep: &Preparation, c: usize) -> f32 {
    (y - prep.mean[c]) / prep.std[c]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::manifest::Voi;

    fn prep(voi: Voi) -> Preparation {
        Preparation {
            rescale: true,
            voi,
            invert_monochrome1: true,
            channels: 3,
            height: 2,
            width: 2,
            depth: None,
            mean: vec![0.5, 0.5, 0.0],
            std: vec![0.5, 0.5, 1.0],
        }
    }

    #[test]
    fn monochrome1_frames_are_inverted_before_normalising() {
        let mut frame = Frame::bare(Array2::from_elem((4, 4), 0.0));
        frame.monochrome1 = true;
        let t = slice_tensor(&frame, &prep(Voi::Window { center: 0.5, width: 1.0 }));
        // 0 maps to 0, inverted to 1, normalised to (1 - 0.5) / 0.5 = 1 (channels 0, 1) or 1.
        assert_eq!(t.dim(), (3, 2, 2));
        assert!(t.iter().all(|v| (v - 1.0).abs() < 1e-6), "{t:?}");
    }

    #[test]
    fn volume_is_resampled_to_depth() {
        let frames: Vec<Frame> =
            (0..3).map(|i| Frame::bare(Array2::from_elem((3, 3), i as f32))).collect();
        let mut p = prep(Voi::Window { center: 1.0, width: 2.0 });
        p.depth = Some(6);
        p.channels = 1;
        let t = volume_tensor(&frames, &p);
        assert_eq!(t.dim(), (1, 6, 2, 2));
    }
}
