//! Polygons of a camera's picture (masks and zones) and their rasterisation onto the analysis
//! grid. Pure geometry; what a mask or zone means belongs to [`super::detector`].

/// A polygon as normalised points `[x, y]` (0..1, left to right, top to bottom), at least 3.
pub type Polygon = Vec<[f32; 2]>;

/// Whether the point `(x, y)` lies inside `p` (even-odd rule; a point on an edge may fall on
/// either side).
pub fn contains(p: &[[f32; 2]], x: f32, y: f32) -> bool {
    let mut inside = false;
    let mut j = p.len().wrapping_sub(1);
    for i in 0..p.len() {
        let ([xi, yi], [xj, yj]) = (p[i], p[j]);
        if (yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi {
            inside = !inside;
        }
        j = i;
    }
    inside
}

/// A `w`×`h` grid (row-major) that is true where the pixel's centre lies inside `p`.
pub fn rasterise(p: &[[f32; 2]], w: usize, h: usize) -> Vec<bool> {
    let mut out = Vec::with_capacity(w * h);
    for y in 0..h {
        let cy = (y as f32 + 0.5) / h as f32;
        for x in 0..w {
            out.push(contains(p, (x as f32 + 0.5) / w as f32, cy));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_triangle_covers_half_a_square_grid() {
        let t = [[0.0, 0.0], [0.99, 0.0], [0.0, 0.99]];
        let g = rasterise(&t, 10, 10);
        assert_eq!(g.iter().filter(|b| **b).count(), 45);
        assert!(g[0] && !g[99]);
        let whole = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]];
        assert!(rasterise(&whole, 7, 3).iter().all(|b| *b));
    }

    #[test]
    fn concave_polygons_use_the_even_odd_rule() {
        // A "U": the notch between its arms is outside.
        let u = [
            [0.0, 0.0],
            [0.3, 0.0],
            [0.3, 0.6],
            [0.7, 0.6],
            [0.7, 0.0],
            [1.0, 0.0],
            [1.0, 1.0],
            [0.0, 1.0],
        ];
        assert!(!contains(&u, 0.5, 0.3));
        assert!(contains(&u, 0.1, 0.3) && contains(&u, 0.5, 0.8));
    }
}
