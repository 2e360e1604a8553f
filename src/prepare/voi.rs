//! Steps 1 to 3 of models/MANIFEST.md on stored values: the Modality LUT (PS3.3 C.11.1, Rescale
//! Slope/Intercept or the Modality LUT Sequence), the VOI mapping to [0, 1] (PS3.3 C.11.2, here
//! linear and clipped as the manifest specifies), and the inversion of MONOCHROME1 (PS3.3
//! C.7.6.3.1.2).

use ndarray::Array2;

use crate::model::manifest::Voi;

/// A Modality LUT Sequence item (PS3.3 C.11.1.1): first stored value mapped and the table.
#[derive(Debug, Clone, PartialEq)]
pub struct ModalityLut {
    pub first_mapped: i64,
    pub data: Vec<f64>,
}

/// The Modality LUT of an image.
#[derive(Debug, Clone, PartialEq)]
pub enum ModalityTransform {
    Rescale { slope: f64, intercept: f64 },
    Table(ModalityLut),
}

impl ModalityTransform {
    /// Applies the transform to one stored value.
    pub fn apply(&self, stored: f64) -> f64 {
        match self {
            ModalityTransform::Rescale { slope, intercept } => stored * slope + intercept,
            ModalityTransform::Table(lut) => {
                // Values outside the table take its first or last entry (PS3.3 C.11.1.1).
                let last = lut.data.len().saturating_sub(1) as i64;
                let index = (stored as i64 - lut.first_mapped).clamp(0, last);
                lut.data.get(index as usize).copied().unwrap_or(stored)
            }
        }
    }

    pub fn is_identity(&self) -> bool {
        matches!(self, ModalityTransform::Rescale { slope, intercept } if *slope == 1.0 && *intercept == 0.0)
    }
}

/// `lo` and `hi` of step 2 for this image.
pub fn bounds(voi: Voi, pixels: &Array2<f32>, file_window: Option<(f64, f64)>) -> (f32, f32) {
    match (voi, file_window) {
        (Voi::Window { center, width }, _) | (Voi::File, Some((center, width))) => {
            ((center - width / 2.0) as f32, (center + width / 2.0) as f32)
        }
        (Voi::Percentiles { low, high }, _) => {
            let mut values: Vec<f32> = pixels.iter().copied().collect();
            (percentile(&mut values, low), percentile(&mut values, high))
        }
        (Voi::File | Voi::MinMax, _) => min_max(pixels),
    }
}

/// Step 2: `clamp((x - lo) / (hi - lo), 0, 1)`, or zeros when `hi <= lo`.
pub fn apply_window(pixels: &mut Array2<f32>, lo: f32, hi: f32) {
    if hi <= lo {
        pixels.fill(0.0);
        return;
    }
    let range = hi - lo;
    pixels.mapv_inplace(|x| ((x - lo) / range).clamp(0.0, 1.0));
}

/// Steps 2 and 3 as one function of a value: the window of [`apply_window`], then the
/// inversion of [`invert`] when `invert` is set. Both choices are written as selects on
/// values fixed for the frame, so that loops over it can vectorise.
pub fn window(lo: f32, hi: f32, invert: bool) -> impl Fn(f32) -> f32 + Copy {
    let (range, empty) = (hi - lo, hi <= lo);
    move |x| {
        let y = if empty { 0.0 } else { ((x - lo) / range).clamp(0.0, 1.0) };
        if invert { 1.0 - y } else { y }
    }
}

/// Step 3: `y = 1 - y`.
pub fn invert(pixels: &mut Array2<f32>) {
    pixels.mapv_inplace(|y| 1.0 - y);
}

fn min_max(pixels: &Array2<f32>) -> (f32, f32) {
    pixels.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &x| (lo.min(x), hi.max(x)))
}

/// numpy's default percentile: linear interpolation between the order statistics around
/// `q / 100 * (n - 1)`. Reorders `values`.
pub fn percentile(values: &mut [f32], q: f64) -> f32 {
    if values.is_empty() {
        return 0.0;
    }
    let rank = q / 100.0 * (values.len() - 1) as f64;
    let below = rank.floor() as usize;
    let fraction = rank - below as f64;
    let lower = nth(values, below) as f64;
    if fraction == 0.0 || below + 1 >= values.len() {
        return lower as f32;
    }
    // After select_nth_unstable, everything right of `below` is at least `lower`, so the next
    // order statistic is the minimum of that part.
    let upper = values[below + 1..].iter().copied().fold(f32::INFINITY, f32::min) as f64;
    (lower + (upper - lower) * fraction) as f32
}

fn nth(values: &mut [f32], k: usize) -> f32 {
    *values.select_nth_unstable_by(k, |a, b| a.total_cmp(b)).1
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn window_maps_linearly_and_clips() {
        let mut x = array![[-1350.0f32, -600.0, 150.0, 1000.0]];
        let (lo, hi) = bounds(Voi::Window { center: -600.0, width: 1500.0 }, &x, None);
        apply_window(&mut x, lo, hi);
        assert_eq!(x, array![[0.0, 0.5, 1.0, 1.0]]);
    }

    #[test]
    fn file_window_falls_back_to_min_max() {
        let x = array![[2.0f32, 4.0], [6.0, 10.0]];
        assert_eq!(bounds(Voi::File, &x, Some((5.0, 2.0))), (4.0, 6.0));
        assert_eq!(bounds(Voi::File, &x, None), (2.0, 10.0));
    }

    #[test]
    fn empty_range_gives_zeros() {
        let mut x = array![[3.0f32, 3.0]];
        apply_window(&mut x, 3.0, 3.0);
        assert_eq!(x, array![[0.0, 0.0]]);
    }

    #[test]
    fn percentiles_match_numpy_linear() {
        // numpy.percentile([1, 2, 3, 4, 10], [1, 50, 99]) == [1.04, 3.0, 9.76]
        let mut v = [10.0f32, 1.0, 4.0, 2.0, 3.0];
        assert!((percentile(&mut v, 1.0) - 1.04).abs() < 1e-5);
        assert!((percentile(&mut v, 50.0) - 3.0).abs() < 1e-6);
        assert!((percentile(&mut v, 99.0) - 9.76).abs() < 1e-5);
    }

    #[test]
    fn one_pass_equals_window_then_invert() {
        let x = array![[-1350.0f32, -600.0, 150.0, 1000.0, -700.5]];
        for (lo, hi) in [(-1350.0, 150.0), (3.0, 3.0)] {
            for flip in [false, true] {
                let mut steps = x.clone();
                apply_window(&mut steps, lo, hi);
                if flip {
                    invert(&mut steps);
                }
                assert_eq!(x.mapv(window(lo, hi, flip)), steps);
            }
        }
    }

    #[test]
    fn monochrome1_is_inverted() {
        let mut y = array![[0.0f32, 0.25, 1.0]];
        invert(&mut y);
        assert_eq!(y, array![[1.0, 0.75, 0.0]]);
    }

    #[test]
    fn modality_lut_table_clamps_to_its_ends() {
        let lut = ModalityTransform::Table(ModalityLut { first_mapped: 10, data: vec![0.0, 5.0] });
        assert_eq!(lut.apply(9.0), 0.0);
        assert_eq!(lut.apply(11.0), 5.0);
        assert_eq!(lut.apply(50.0), 5.0);
    }
}
