//! Step 4 of models/MANIFEST.md: the separable triangle filter, antialiased when shrinking and
//! plain bilinear when enlarging, sampling at pixel centres (what Pillow's BILINEAR resize and
//! torch's `interpolate(mode="bilinear", antialias=True)` compute). Rows first, then columns.

use ndarray::{Array2, Array3, ArrayView2, ArrayView3, Axis};

/// The taps of one output sample: first input index and normalised weights.
#[derive(Debug, Clone, PartialEq)]
pub struct Taps {
    pub start: usize,
    pub weights: Vec<f32>,
}

/// The filter taps for resampling `n_in` samples to `n_out`.
pub fn taps(n_in: usize, n_out: usize) -> Vec<Taps> {
    let scale = n_in as f64 / n_out as f64;
    let support = scale.max(1.0);
    (0..n_out).map(|i| taps_of(i, scale, support, n_in)).collect()
}

fn taps_of(i: usize, scale: f64, support: f64, n_in: usize) -> Taps {
    let centre = (i as f64 + 0.5) * scale;
    let first = ((centre - support - 0.5).floor().max(0.0)) as usize;
    let last = ((centre + support + 0.5).ceil() as usize).min(n_in);
    let raw: Vec<f64> = (first..last)
        .map(|j| (1.0 - ((j as f64 + 0.5 - centre) / support).abs()).max(0.0))
        .collect();
    let sum: f64 = raw.iter().sum();
    let weights = raw.iter().map(|w| (w / sum) as f32).collect();
    Taps { start: first, weights }
}

/// Resizes a (rows, columns) image to `height` by `width`.
pub fn resize2(image: ArrayView2<f32>, height: usize, width: usize) -> Array2<f32> {
    let (rows, cols) = image.dim();
    let vertical = if rows == height { image.to_owned() } else { along_rows(image, height) };
    if cols == width {
        return vertical;
    }
    along_rows(vertical.t(), width).reversed_axes()
}

/// Resamples a stack (slices, rows, columns) to `depth` slices along the first axis.
pub fn resize_depth(stack: ArrayView3<f32>, depth: usize) -> Array3<f32> {
    let (n, rows, cols) = stack.dim();
    let flat = stack.to_shape((n, rows * cols)).expect("a stack is contiguous once reshaped");
    let out = along_rows(flat.view(), depth);
    out.into_shape_with_order((depth, rows, cols)).expect("sizes agree")
}

/// Output row i = Σ_j w_ij · input row j.
fn along_rows(image: ArrayView2<f32>, n_out: usize) -> Array2<f32> {
    let (n_in, cols) = image.dim();
    let mut out = Array2::<f32>::zeros((n_out, cols));
    for (taps, mut row) in taps(n_in, n_out).iter().zip(out.axis_iter_mut(Axis(0))) {
        for (k, w) in taps.weights.iter().enumerate() {
            row.scaled_add(*w, &image.row(taps.start + k));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    fn dense(n_in: usize, n_out: usize) -> Vec<Vec<f32>> {
        taps(n_in, n_out)
            .into_iter()
            .map(|t| {
                let mut row = vec![0.0; n_in];
                row[t.start..t.start + t.weights.len()].copy_from_slice(&t.weights);
                row
            })
            .collect()
    }

    #[test]
    fn halving_averages_pairs_with_neighbours() {
        // scale 2, support 2: centre 1.0 gives inputs at 0.5 and 1.5 weight 0.75 each, and the
        // input at 2.5 weight 0.25, normalised by 1.75.
        let w = dense(4, 2);
        let expected = [0.75 / 1.75, 0.75 / 1.75, 0.25 / 1.75, 0.0];
        for (a, b) in w[0].iter().zip(expected) {
            assert!((a - b).abs() < 1e-6, "{:?}", w[0]);
        }
    }

    #[test]
    fn enlarging_is_bilinear_at_pixel_centres() {
        // 2 -> 4: output centres at 0.25, 0.75, 1.25, 1.75 of the input.
        let w = dense(2, 4);
        assert_eq!(w[0], [1.0, 0.0]);
        assert!((w[1][0] - 0.75).abs() < 1e-6 && (w[1][1] - 0.25).abs() < 1e-6);
        assert!((w[2][0] - 0.25).abs() < 1e-6 && (w[2][1] - 0.75).abs() < 1e-6);
        assert_eq!(w[3], [0.0, 1.0]);
    }

    #[test]
    fn weights_sum_to_one() {
        for (n_in, n_out) in [(512, 128), (7, 3), (3, 7), (100, 100), (1, 5)] {
            for t in taps(n_in, n_out) {
                assert!((t.weights.iter().sum::<f32>() - 1.0).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn constant_image_stays_constant() {
        let image = Array2::from_elem((37, 53), 0.25f32);
        let out = resize2(image.view(), 16, 20);
        assert_eq!(out.dim(), (16, 20));
        assert!(out.iter().all(|v| (v - 0.25).abs() < 1e-6));
    }

    #[test]
    fn rows_then_columns() {
        let image = array![[0.0f32, 1.0], [2.0, 3.0]];
        let out = resize2(image.view(), 1, 1);
        assert!((out[[0, 0]] - 1.5).abs() < 1e-6);
    }

    #[test]
    fn depth_resampling_interpolates_slices() {
        let stack = Array3::from_shape_fn((2, 1, 1), |(s, _, _)| s as f32);
        let out = resize_depth(stack.view(), 4);
        let values: Vec<f32> = out.iter().copied().collect();
        assert_eq!(values, [0.0, 0.25, 0.75, 1.0]);
    }
}
