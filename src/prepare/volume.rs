//! Step 5 of models/MANIFEST.md: the slices of a series ordered by their position along the
//! normal of Image Orientation (Patient) (PS3.3 C.7.6.2.1.1), never by Instance Number, and the
//! stack checked for irregular spacing and gantry tilt before it is resampled.

/// What the ordering found about the stack.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StackCheck {
    /// Distances between consecutive slices along the normal (mm).
    pub spacing: Vec<f64>,
    /// Whether the spacing varies by more than 1 % (or 0.01 mm).
    pub irregular: bool,
    /// Angle between the stack direction and the slice normal (degrees); non-zero with tilt.
    pub tilt_degrees: f64,
    /// Slices without a position, kept in input order after the others.
    pub unpositioned: usize,
}

/// The order of the slices along the normal, and the check of their spacing.
pub fn order_by_position(
    positions: &[Option<[f64; 3]>],
    orientation: Option<[f64; 6]>,
) -> (Vec<usize>, StackCheck) {
    let normal = orientation.map(normal_of).unwrap_or([0.0, 0.0, 1.0]);
    let mut keyed: Vec<(usize, f64)> =
        positions.iter().enumerate().filter_map(|(i, p)| p.map(|p| (i, dot(normal, p)))).collect();
    keyed.sort_by(|a, b| a.1.total_cmp(&b.1));

    let mut order: Vec<usize> = keyed.iter().map(|(i, _)| *i).collect();
    let unpositioned: Vec<usize> =
        (0..positions.len()).filter(|i| positions[*i].is_none()).collect();
    let spacing: Vec<f64> = keyed.windows(2).map(|w| w[1].1 - w[0].1).collect();
    let check = StackCheck {
        irregular: is_irregular(&spacing),
        tilt_degrees: tilt(positions, &order, normal),
        unpositioned: unpositioned.len(),
        spacing,
    };
    order.extend(unpositioned);
    (order, check)
}

/// The slice normal: row direction × column direction.
pub fn normal_of(o: [f64; 6]) -> [f64; 3] {
    let (r, c) = ([o[0], o[1], o[2]], [o[3], o[4], o[5]]);
    [r[1] * c[2] - r[2] * c[1], r[2] * c[0] - r[0] * c[2], r[0] * c[1] - r[1] * c[0]]
}

fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn is_irregular(spacing: &[f64]) -> bool {
    let (lo, hi) = spacing
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &s| (lo.min(s), hi.max(s)));
    if spacing.is_empty() {
        return false;
    }
    let mean = spacing.iter().sum::<f64>() / spacing.len() as f64;
    hi - lo > (0.01 * mean.abs()).max(0.01) || lo <= 0.0
}

fn tilt(positions: &[Option<[f64; 3]>], order: &[usize], normal: [f64; 3]) -> f64 {
    let (Some(&first), Some(&last)) = (order.first(), order.last()) else { return 0.0 };
    let (Some(a), Some(b)) = (positions[first], positions[last]) else { return 0.0 };
    let d = [b[0] - a[0], b[1] - a[1], b[2] - a[2]];
    let length = dot(d, d).sqrt() * dot(normal, normal).sqrt();
    if length == 0.0 {
        return 0.0;
    }
    (dot(d, normal) / length).clamp(-1.0, 1.0).acos().to_degrees()
}

#[cfg(test)]
mod tests {
    use super::*;

    const AXIAL: [f64; 6] = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0];

    #[test]
    fn sorted_along_the_normal_not_by_input_order() {
        let positions = [Some([0.0, 0.0, 10.0]), Some([0.0, 0.0, -5.0]), Some([0.0, 0.0, 2.5])];
        let (order, check) = order_by_position(&positions, Some(AXIAL));
        assert_eq!(order, [1, 2, 0]);
        assert_eq!(check.spacing, [7.5, 7.5]);
        assert!(!check.irregular && check.tilt_degrees < 1e-9);
    }

    #[test]
    fn sagittal_stack_sorts_on_x() {
        // Rows along y, columns along -z: the normal is -x.
        let sagittal = [0.0, 1.0, 0.0, 0.0, 0.0, -1.0];
        let positions = [Some([1.0, 50.0, 0.0]), Some([3.0, -20.0, 9.0]), Some([2.0, 0.0, 0.0])];
        let (order, _) = order_by_position(&positions, Some(sagittal));
        assert_eq!(order, [1, 2, 0]);
    }

    #[test]
    fn irregular_spacing_and_tilt_are_reported() {
        let positions = [Some([0.0, 0.0, 0.0]), Some([0.0, 1.0, 1.0]), Some([0.0, 2.0, 3.0])];
        let (_, check) = order_by_position(&positions, Some(AXIAL));
        assert!(check.irregular);
        assert!(check.tilt_degrees > 30.0, "{check:?}");
    }
}
