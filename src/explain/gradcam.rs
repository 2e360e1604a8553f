//! Grad-CAM without gradients, for models whose head is global average pooling and one linear
//! layer (models/MANIFEST.md, `[gradcam]`): the channel weights of class c are the head weights
//! w[c, k], so the map is ReLU(Σ_k w[c,k]·A_k). It is scaled to [0, 1] the way pytorch-grad-cam
//! does (subtract the minimum, divide by the maximum plus 1e-7), then resampled bilinearly to
//! the source image.

use ndarray::{Array2, Array3, ArrayView1, ArrayViewD, Axis, Ix3, Ix4};

use crate::prepare::resize::{resize_depth, resize2};

/// pytorch-grad-cam's guard against dividing by zero.
const EPSILON: f32 = 1e-7;

/// The share of the peak above which a pixel belongs to the region around it.
pub const REGION_LEVEL: f32 = 0.5;

/// Why a map could not be computed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GradcamError {
    #[error("activations have shape {shape:?}; expected (K, h, w) or (K, d, h, w)")]
    ActivationShape { shape: Vec<usize> },

    #[error("head weights have {weights} channels but the activations {channels}")]
    Channels { weights: usize, channels: usize },
}

/// The class activation map of one sample's activations, (K, h, w) or (K, d, h, w), for the
/// class whose head weights are `weights`; returned as (d, h, w), d = 1 for 2D, in [0, 1].
pub fn class_map(
    activations: ArrayViewD<f32>,
    weights: ArrayView1<f32>,
) -> Result<Array3<f32>, GradcamError> {
    let shape = activations.shape().to_vec();
    let volume = match shape.len() {
        3 => activations.into_dimensionality::<Ix3>().expect("rank 3").insert_axis(Axis(1)),
        4 => activations.into_dimensionality::<Ix4>().expect("rank 4"),
        _ => return Err(GradcamError::ActivationShape { shape }),
    };
    if volume.dim().0 != weights.len() {
        let channels = volume.dim().0;
        return Err(GradcamError::Channels { weights: weights.len(), channels });
    }

    let (_, d, h, w) = volume.dim();
    let mut map = Array3::<f32>::zeros((d, h, w));
    for (a, wk) in volume.axis_iter(Axis(0)).zip(weights) {
        map.scaled_add(*wk, &a);
    }
    map.mapv_inplace(|v| v.max(0.0));
    scale(&mut map);
    Ok(map)
}

/// Subtracts the minimum and divides by the maximum (plus 1e-7), as pytorch-grad-cam does.
pub fn scale(map: &mut Array3<f32>) {
    let min = map.iter().copied().fold(f32::INFINITY, f32::min);
    map.mapv_inplace(|v| v - min);
    let max = map.iter().copied().fold(0.0, f32::max);
    map.mapv_inplace(|v| v / (max + EPSILON));
}

/// A map resampled to `depth` planes of `rows` by `columns`, bilinear as in step 4.
pub fn upsample(map: &Array3<f32>, depth: usize, rows: usize, columns: usize) -> Array3<f32> {
    let stacked = if map.dim().0 == depth { map.clone() } else { resize_depth(map.view(), depth) };
    let planes: Vec<Array2<f32>> =
        stacked.axis_iter(Axis(0)).map(|p| resize2(p, rows, columns)).collect();
    let views: Vec<_> = planes.iter().map(|p| p.view()).collect();
    ndarray::stack(Axis(0), &views).expect("planes share a size")
}

/// The (plane, row, column) of the highest value; the first one on ties.
pub fn peak(map: &Array3<f32>) -> (usize, usize, usize) {
    let mut best = ((0, 0, 0), f32::NEG_INFINITY);
    for (index, &v) in map.indexed_iter() {
        if v > best.1 {
            best = (index, v);
        }
    }
    best.0
}

/// The box (left, top, right, bottom) of the connected pixels at or above
/// [`REGION_LEVEL`] of the peak's value, around the peak of a plane.
pub fn region(plane: &Array2<f32>, peak: (usize, usize)) -> [f32; 4] {
    let level = plane[peak] * REGION_LEVEL;
    let (rows, cols) = plane.dim();
    let mut seen = Array2::from_elem((rows, cols), false);
    let mut stack = vec![peak];
    let mut bbox = [peak.1, peak.0, peak.1, peak.0];
    seen[peak] = true;
    while let Some((r, c)) = stack.pop() {
        bbox = [bbox[0].min(c), bbox[1].min(r), bbox[2].max(c), bbox[3].max(r)];
        for (dr, dc) in [(0isize, 1isize), (0, -1), (1, 0), (-1, 0)] {
            let (nr, nc) = (r as isize + dr, c as isize + dc);
            if nr < 0 || nc < 0 || nr as usize >= rows || nc as usize >= cols {
                continue;
            }
            let next = (nr as usize, nc as usize);
            if !seen[next] && plane[next] >= level {
                seen[next] = true;
                stack.push(next);
            }
        }
    }
    bbox.map(|v| v as f32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array, array};

    #[test]
    fn map_is_relu_of_weighted_sum_scaled_to_one() {
        // Two channels: the weighted sum is [[-1, 1], [3, 0]]; ReLU gives [[0, 1], [3, 0]].
        let a =
            Array::from_shape_vec((2, 2, 2), vec![1.0, 0.0, 0.0, 0.0, 0.0, 0.5, 1.5, 0.0]).unwrap();
        let w = array![-1.0f32, 2.0];
        let map = class_map(a.into_dyn().view(), w.view()).unwrap();
        let plane = map.index_axis(Axis(0), 0);
        assert!((plane[[1, 0]] - 1.0).abs() < 1e-6);
        assert!((plane[[0, 1]] - 1.0 / 3.0).abs() < 1e-6);
        assert_eq!(plane[[0, 0]], 0.0);
    }

    #[test]
    fn region_grows_from_the_peak_only_over_connected_pixels() {
        let plane = array![[0.0f32, 0.0, 0.0, 0.9], [0.0, 0.6, 1.0, 0.0], [0.0, 0.7, 0.0, 0.0],];
        assert_eq!(peak(&plane.clone().insert_axis(Axis(0))), (0, 1, 2));
        assert_eq!(region(&plane, (1, 2)), [1.0, 1.0, 2.0, 2.0]);
    }

    #[test]
    fn wrong_channel_count_is_an_error() {
        let a = Array::<f32, _>::zeros((3, 2, 2)).into_dyn();
        let err = class_map(a.view(), array![1.0f32].view()).unwrap_err();
        assert!(matches!(err, GradcamError::Channels { weights: 1, channels: 3 }));
    }
}
