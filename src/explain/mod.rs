//! Explanations of a model's decision: the class activation map (Grad-CAM for a head of global
//! average pooling and one linear layer) and its rendering over the source image.
//!
//! The rendering is shared by the DICOM secondary capture (PS3.3 A.8) and `argus analyze
//! --heatmap`, so a radiologist sees the same picture in the viewer and on the command line.

pub mod gradcam;

use ndarray::{Array3, ArrayView2};

/// How strongly the colour map covers the image where activation is highest.
const MAX_ALPHA: f32 = 0.5;

/// Blends a colour map of `map` (values in [0, 1]) over the grey `windowed` image (values in
/// [0, 1]) and returns RGB bytes shaped (rows, columns, 3). Low activations leave the image
/// visible; high ones tint it from blue through green to red.
pub fn overlay(windowed: ArrayView2<f32>, map: ArrayView2<f32>) -> Array3<u8> {
    assert_eq!(windowed.dim(), map.dim(), "map and image must have the same size");
    let (rows, cols) = windowed.dim();

    Array3::from_shape_fn((rows, cols, 3), |(r, c, channel)| {
        let grey = windowed[[r, c]].clamp(0.0, 1.0);
        let heat = map[[r, c]].clamp(0.0, 1.0);
        let alpha = MAX_ALPHA * heat;
        let colour = jet(heat)[channel];
        (255.0 * ((1.0 - alpha) * grey + alpha * colour)).round() as u8
    })
}

/// The "jet" colour map: blue at 0, green at 0.5, red at 1.
fn jet(x: f32) -> [f32; 3] {
    let band = |centre: f32| (1.5 - (4.0 * x - centre).abs()).clamp(0.0, 1.0);
    [band(3.0), band(2.0), band(1.0)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn no_activation_leaves_the_grey_image() {
        let image = Array2::from_elem((2, 2), 0.5f32);
        let map = Array2::zeros((2, 2));

        let rgb = overlay(image.view(), map.view());

        assert!(rgb.iter().all(|&v| v == 128));
    }

    #[test]
    fn full_activation_tints_red() {
        let image = Array2::zeros((1, 1));
        let map = Array2::from_elem((1, 1), 1.0f32);

        let rgb = overlay(image.view(), map.view());

        assert!(rgb[[0, 0, 0]] > 50 && rgb[[0, 0, 1]] == 0 && rgb[[0, 0, 2]] == 0);
    }
}
