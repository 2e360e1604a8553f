//! Step 4 of models/MANIFEST.md: the separable triangle filter, antialiased when shrinking and
//! plain bilinear when enlarging, sampling at pixel centres (what Pillow's BILINEAR resize and
//! torch's `interpolate(mode="bilinear", antialias=True)` compute). Rows first, then columns.

use ndarray::{Array2, Array3, ArrayView2, ArrayView3};

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
    resize2_mapped(image, height, width, |x| x)
}

/// Resizes `image` as [`resize2`] does, after passing every input value through `map`, which
/// runs once per value as each row is read.
pub fn resize2_mapped(
    image: ArrayView2<f32>,
    height: usize,
    width: usize,
    map: impl Fn(f32) -> f32,
) -> Array2<f32> {
    let (rows, cols) = image.dim();
    let vertical = if rows == height { image.mapv(map) } else { along_rows(image, height, map) };
    if cols == width {
        return vertical;
    }
    along_columns(vertical.view(), width)
}

/// Resamples a stack (slices, rows, columns) to `depth` slices along the first axis.
pub fn resize_depth(stack: ArrayView3<f32>, depth: usize) -> Array3<f32> {
    let (n, rows, cols) = stack.dim();
    let flat = stack.to_shape((n, rows * cols)).expect("a stack is contiguous once reshaped");
    let out = along_rows(flat.view(), depth, |x| x);
    out.into_shape_with_order((depth, rows, cols)).expect("sizes agree")
}

/// Output row i = Σ_j w_ij · map(input row j). Input rows are visited once, in order, and each
/// is added whole to the output rows that use it: the loops over columns are contiguous and
/// vectorise, and every output row still sums its taps in their order.
fn along_rows(image: ArrayView2<f32>, n_out: usize, map: impl Fn(f32) -> f32) -> Array2<f32> {
    let (n_in, cols) = image.dim();
    let image = image.as_standard_layout();
    let input = image.as_slice().expect("standard layout");
    let mut out = vec![0.0f32; n_out * cols];
    let mut mapped = vec![0.0f32; cols];
    for (j, users) in users_of(&taps(n_in, n_out), n_in).iter().enumerate() {
        let row = &input[j * cols..(j + 1) * cols];
        mapped.iter_mut().zip(row).for_each(|(m, &x)| *m = map(x));
        for &(i, w) in users {
            let target = &mut out[i * cols..(i + 1) * cols];
            target.iter_mut().zip(&mapped).for_each(|(o, &y)| *o += w * y);
        }
    }
    Array2::from_shape_vec((n_out, cols), out).expect("sizes agree")
}

/// For each input sample, the output samples that use it and their weights, in output order.
fn users_of(taps: &[Taps], n_in: usize) -> Vec<Vec<(usize, f32)>> {
    let mut users = vec![Vec::new(); n_in];
    for (i, t) in taps.iter().enumerate() {
        for (k, &w) in t.weights.iter().enumerate() {
            users[t.start + k].push((i, w));
        }
    }
    users
}

/// Output column i = Σ_j w_ij · input column j: the rows pass on the transposed image, so
/// that this pass vectorises as well, and sums in the same order.
fn along_columns(image: ArrayView2<f32>, n_out: usize) -> Array2<f32> {
    let transposed = image.t().as_standard_layout().into_owned();
    along_rows(transposed.view(), n_out, |x| x).t().as_standard_layout().into_owned()
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
    fn equals_the_dense_weight_matrices() {
        // W_rows · image · W_colsᵀ in f64, as the Python reference computes it.
        let image = Array2::from_shape_fn((37, 53), |(r, c)| ((r * 31 + c * 17) % 23) as f32);
        let (rows, cols) = (dense(37, 16), dense(53, 20));
        let out = resize2(image.view(), 16, 20);
        for ((i, j), &v) in out.indexed_iter() {
            let expected: f64 = (0..37)
                .flat_map(|r| (0..53).map(move |c| (r, c)))
                .map(|(r, c)| rows[i][r] as f64 * image[[r, c]] as f64 * cols[j][c] as f64)
                .sum();
            assert!((v as f64 - expected).abs() < 1e-4, "({i}, {j}): {v} vs {expected}");
        }
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
