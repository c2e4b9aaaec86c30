//! The motion detector: pure code from a luma plane to moving regions, no GStreamer, no clock.
//!
//! One analysed frame goes through these steps (the design follows Frigate's
//! `frigate/motion/improved_motion.py`, written anew):
//! 1. **Downscale** the luma plane by box averaging to [`ANALYSIS_HEIGHT`] rows (aspect kept).
//!    Averaging over a box of k×k source pixels divides sensor noise by k, so noise never reaches
//!    the threshold on a 720p or 1080p picture.
//! 2. **Blur** with a 3×3 box filter.
//! 3. **Compare** with a running background average. The median difference over the unmasked
//!    picture is taken off first, so a uniform drift in brightness is not motion; a median step
//!    of [`BRIGHTNESS_STEP`] or more (auto exposure, a cloud, a light) recalibrates (step 5),
//!    since bright and dark parts of the picture clip differently and would look like motion.
//! 4. **Threshold** the absolute difference at the sensitivity's luma step; masked pixels never
//!    count.
//! 5. **Recalibrate** instead of reporting after a brightness step, or when more than
//!    [`RECALIBRATE_FRACTION`] of the unmasked picture changed at once (lights switched, the camera's IR filter flipped): the background
//!    becomes the current frame.
//! 6. **Dilate** the changed pixels (3×3) and find 8-connected regions; keep those of at least the
//!    sensitivity's area. Each region carries its box (normalised to the frame, 0..1) and the
//!    zones its changed pixels touch.
//! 7. The first [`WARMUP_FRAMES`] frames after a start only set the background (encoders start
//!    a stream with coarse key frames).
//! 8. **Update** the background towards the frame with a time constant of
//!    [`BACKGROUND_TIME_CONSTANT_NS`] of media time, so the result does not depend on how often
//!    frames are sampled (key frames every 2 s or a substream at 5 fps).
//!
//! Polygon rasterisation lives in [`super::raster`]; when to report lives in [`super::reporter`].

use super::raster::{rasterise, Polygon};

/// Rows of the analysis picture; its width follows the frame's aspect ratio.
pub const ANALYSIS_HEIGHT: usize = 96;

/// Share of the unmasked picture that, changed at once, means the scene's lighting changed
/// (recalibrate) rather than something moved.
pub const RECALIBRATE_FRACTION: f32 = 0.5;

/// Frames that only set the background after a (re)start: a camera's encoder starts a stream with
/// coarse key frames and sharpens them over the next few, which would look like motion on every
/// textured surface.
pub const WARMUP_FRAMES: u32 = 3;

/// A change of the whole picture's median luma (0..255) that recalibrates instead of being
/// compared.
pub const BRIGHTNESS_STEP: f32 = 4.0;

/// Time constant of the running background average, ns of media time: something that stops
/// moving becomes background after about this long.
pub const BACKGROUND_TIME_CONSTANT_NS: i64 = 8_000_000_000;

/// How readily motion is reported (LVA motion detection `sensitivity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Sensitivity {
    /// Large, clear changes only.
    Low,
    /// The default.
    Medium,
    /// Small or faint changes too.
    High,
}

impl Sensitivity {
    /// Every level, least sensitive first.
    pub const ALL: [Sensitivity; 3] = [Sensitivity::Low, Sensitivity::Medium, Sensitivity::High];

    /// Parses `low`, `medium` or `high`.
    pub fn parse(s: &str) -> Option<Sensitivity> {
        match s {
            "low" => Some(Sensitivity::Low),
            "medium" => Some(Sensitivity::Medium),
            "high" => Some(Sensitivity::High),
            _ => None,
        }
    }

    /// The luma step (0..255, after blur and brightness compensation) at which a pixel changed.
    pub fn threshold(self) -> f32 {
        match self {
            Sensitivity::Low => 30.0,
            Sensitivity::Medium => 20.0,
            Sensitivity::High => 12.0,
        }
    }

    /// The smallest region that is motion, as a share of the frame's area.
    pub fn min_area(self) -> f32 {
        match self {
            Sensitivity::Low => 0.004,
            Sensitivity::Medium => 0.0015,
            Sensitivity::High => 0.0005,
        }
    }
}

/// A borrowed 8-bit luma plane: `height` rows of `width` pixels, `stride` bytes apart.
#[derive(Debug, Clone, Copy)]
pub struct Luma<'a> {
    /// Pixels per row.
    pub width: usize,
    /// Rows.
    pub height: usize,
    /// Bytes from one row's start to the next (at least `width`).
    pub stride: usize,
    /// The plane; at least `stride * (height - 1) + width` bytes.
    pub data: &'a [u8],
}

/// A box normalised to the frame: left, top, width, height in 0..1 (LVA's `box`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NormBox {
    /// Left edge.
    pub l: f32,
    /// Top edge.
    pub t: f32,
    /// Width.
    pub w: f32,
    /// Height.
    pub h: f32,
}

impl NormBox {
    /// Whether the two boxes share any area.
    pub fn overlaps(self, o: NormBox) -> bool {
        self.l < o.l + o.w && o.l < self.l + self.w && self.t < o.t + o.h && o.t < self.t + self.h
    }
}

/// One moving region.
#[derive(Debug, Clone, PartialEq)]
pub struct Region {
    /// Where it is.
    pub bbox: NormBox,
    /// Its area after dilation, as a share of the frame.
    pub area: f32,
    /// Names of the configured zones its changed pixels touch, in the order of
    /// [`DetectorConfig::zones`].
    pub zones: Vec<String>,
}

/// What one frame showed.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// One of the first [`WARMUP_FRAMES`] frames (of the detector, of a new size, or after
    /// [`Detector::restart`]): it became the background.
    Calibrating,
    /// Nothing moved.
    Still,
    /// Most of the picture changed at once: the background was reset to this frame.
    Recalibrated,
    /// These regions moved, largest first.
    Motion(Vec<Region>),
}

/// Detector settings.
#[derive(Debug, Clone, Default)]
pub struct DetectorConfig {
    /// How readily motion is reported.
    pub sensitivity: Option<Sensitivity>,
    /// Polygons (normalised) whose pixels never count as motion.
    pub mask: Vec<Polygon>,
    /// Named zones, each one or more polygons (normalised); regions name those they touch.
    pub zones: Vec<(String, Vec<Polygon>)>,
}

/// The analysis grid of one frame size, with mask and zones rasterised onto it.
struct Grid {
    src: (usize, usize),
    w: usize,
    h: usize,
    /// 1 where a pixel may count.
    unmasked: Vec<bool>,
    unmasked_count: usize,
    zones: Vec<Vec<bool>>,
}

/// A motion detector for one camera. Feed it frames in media-time order.
pub struct Detector {
    cfg: DetectorConfig,
    grid: Option<Grid>,
    background: Vec<f32>,
    /// Frames still to take as background only.
    warmup: u32,
    last_t_ns: Option<i64>,
    // Scratch buffers, kept between frames.
    small: Vec<f32>,
    blurred: Vec<f32>,
    changed: Vec<bool>,
    dilated: Vec<bool>,
    label: Vec<u32>,
    stack: Vec<usize>,
}

impl Detector {
    /// A detector that has seen no frame yet.
    pub fn new(cfg: DetectorConfig) -> Detector {
        Detector {
            cfg,
            grid: None,
            background: Vec::new(),
            warmup: 0,
            last_t_ns: None,
            small: Vec::new(),
            blurred: Vec::new(),
            changed: Vec::new(),
            dilated: Vec::new(),
            label: Vec::new(),
            stack: Vec::new(),
        }
    }

    /// Starts over: the next [`WARMUP_FRAMES`] frames only set the background. Called when the
    /// stream (re)starts, since a new encoder session starts with coarse key frames.
    pub fn restart(&mut self) {
        self.background.clear();
    }

    /// The sensitivity in use.
    pub fn sensitivity(&self) -> Sensitivity {
        self.cfg.sensitivity.unwrap_or(Sensitivity::Medium)
    }

    /// Analyses one frame taken at media time `t_ns` (ns, any epoch, increasing). A frame of
    /// another size than the last starts over ([`Outcome::Calibrating`]). An empty or short
    /// plane is [`Outcome::Still`].
    pub fn analyse(&mut self, frame: &Luma, t_ns: i64) -> Outcome {
        if frame.width == 0
            || frame.height == 0
            || frame.stride < frame.width
            || frame.data.len() < frame.stride * (frame.height - 1) + frame.width
        {
            return Outcome::Still;
        }
        if self
            .grid
            .as_ref()
            .is_none_or(|g| g.src != (frame.width, frame.height))
        {
            self.grid = Some(self.make_grid(frame.width, frame.height));
            self.background.clear();
        }
        let (w, h) = {
            let g = self.grid.as_ref().expect("grid set above");
            (g.w, g.h)
        };
        downscale(frame, w, h, &mut self.small);
        blur3(&self.small, w, h, &mut self.blurred);
        let dt = self.last_t_ns.map_or(0, |l| (t_ns - l).max(0));
        self.last_t_ns = Some(t_ns);
        if self.background.len() != w * h {
            self.background.clone_from(&self.blurred);
            self.warmup = WARMUP_FRAMES - 1;
            return Outcome::Calibrating;
        }
        if self.warmup > 0 {
            self.warmup -= 1;
            self.background.clone_from(&self.blurred);
            return Outcome::Calibrating;
        }
        let g = self.grid.as_ref().expect("grid set above");
        let offset = median_difference(&self.blurred, &self.background, &g.unmasked);
        if offset.abs() >= BRIGHTNESS_STEP {
            self.background.clone_from(&self.blurred);
            return Outcome::Recalibrated;
        }
        let sens = self.sensitivity();
        let thr = sens.threshold();
        self.changed.clear();
        let mut n_changed = 0usize;
        for i in 0..w * h {
            let c = g.unmasked[i] && (self.blurred[i] - self.background[i] - offset).abs() >= thr;
            n_changed += c as usize;
            self.changed.push(c);
        }
        // Move the background towards this frame.
        let alpha = 1.0 - (-(dt as f64) / BACKGROUND_TIME_CONSTANT_NS as f64).exp() as f32;
        if g.unmasked_count > 0 && n_changed as f32 > RECALIBRATE_FRACTION * g.unmasked_count as f32
        {
            self.background.clone_from(&self.blurred);
            return Outcome::Recalibrated;
        }
        for (b, f) in self.background.iter_mut().zip(&self.blurred) {
            *b += alpha * (*f - *b);
        }
        if n_changed == 0 {
            return Outcome::Still;
        }
        dilate3(&self.changed, w, h, &mut self.dilated);
        let min_px = (sens.min_area() * (w * h) as f32).max(1.0);
        let mut regions = self.regions(min_px);
        if regions.is_empty() {
            return Outcome::Still;
        }
        regions.sort_by(|a, b| b.area.total_cmp(&a.area));
        Outcome::Motion(regions)
    }

    fn make_grid(&self, width: usize, height: usize) -> Grid {
        let h = ANALYSIS_HEIGHT.min(height);
        let w = ((width * h + height / 2) / height).clamp(1, width);
        let mut unmasked = vec![true; w * h];
        for p in &self.cfg.mask {
            for (u, m) in unmasked.iter_mut().zip(rasterise(p, w, h)) {
                *u &= !m;
            }
        }
        let unmasked_count = unmasked.iter().filter(|u| **u).count();
        let zones = self
            .cfg
            .zones
            .iter()
            .map(|(_, ps)| {
                let mut bits = vec![false; w * h];
                for p in ps {
                    for (b, r) in bits.iter_mut().zip(rasterise(p, w, h)) {
                        *b |= r;
                    }
                }
                bits
            })
            .collect();
        Grid {
            src: (width, height),
            w,
            h,
            unmasked,
            unmasked_count,
            zones,
        }
    }

    /// 8-connected regions of the dilated mask with at least `min_px` pixels.
    fn regions(&mut self, min_px: f32) -> Vec<Region> {
        let g = self.grid.as_ref().expect("grid set");
        let (w, h) = (g.w, g.h);
        self.label.clear();
        self.label.resize(w * h, 0);
        let mut out = Vec::new();
        let mut next = 0u32;
        for start in 0..w * h {
            if !self.dilated[start] || self.label[start] != 0 {
                continue;
            }
            next += 1;
            let (mut x0, mut y0, mut x1, mut y1) = (w, h, 0, 0);
            let mut area = 0usize;
            let mut in_zone = vec![false; g.zones.len()];
            self.stack.clear();
            self.stack.push(start);
            self.label[start] = next;
            while let Some(i) = self.stack.pop() {
                let (x, y) = (i % w, i / w);
                area += 1;
                (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
                if self.changed[i] {
                    for (z, bits) in in_zone.iter_mut().zip(&g.zones) {
                        *z |= bits[i];
                    }
                }
                for ny in y.saturating_sub(1)..=(y + 1).min(h - 1) {
                    for nx in x.saturating_sub(1)..=(x + 1).min(w - 1) {
                        let j = ny * w + nx;
                        if self.dilated[j] && self.label[j] == 0 {
                            self.label[j] = next;
                            self.stack.push(j);
                        }
                    }
                }
            }
            if (area as f32) < min_px {
                continue;
            }
            out.push(Region {
                bbox: NormBox {
                    l: x0 as f32 / w as f32,
                    t: y0 as f32 / h as f32,
                    w: (x1 + 1 - x0) as f32 / w as f32,
                    h: (y1 + 1 - y0) as f32 / h as f32,
                },
                area: area as f32 / (w * h) as f32,
                zones: self
                    .cfg
                    .zones
                    .iter()
                    .zip(&in_zone)
                    .filter(|(_, z)| **z)
                    .map(|((n, _), _)| n.clone())
                    .collect(),
            });
        }
        out
    }
}

/// Box-averages `f` down to `w`×`h` into `out`.
fn downscale(f: &Luma, w: usize, h: usize, out: &mut Vec<f32>) {
    out.clear();
    out.resize(w * h, 0.0);
    // Column ranges once; rows are summed into a per-column accumulator.
    let xs: Vec<(usize, usize)> = (0..w)
        .map(|x| {
            (
                x * f.width / w,
                ((x + 1) * f.width / w).max(x * f.width / w + 1),
            )
        })
        .collect();
    let mut acc = vec![0u32; w];
    for y in 0..h {
        let (r0, r1) = (
            y * f.height / h,
            ((y + 1) * f.height / h).max(y * f.height / h + 1),
        );
        acc.iter_mut().for_each(|a| *a = 0);
        for r in r0..r1 {
            let row = &f.data[r * f.stride..r * f.stride + f.width];
            for (a, &(c0, c1)) in acc.iter_mut().zip(&xs) {
                *a += row[c0..c1].iter().map(|&p| p as u32).sum::<u32>();
            }
        }
        let rows = (r1 - r0) as f32;
        for (x, (a, &(c0, c1))) in acc.iter().zip(&xs).enumerate() {
            out[y * w + x] = *a as f32 / (rows * (c1 - c0) as f32);
        }
    }
}

/// 3×3 box blur with edges clamped.
fn blur3(src: &[f32], w: usize, h: usize, out: &mut Vec<f32>) {
    out.clear();
    out.resize(w * h, 0.0);
    for y in 0..h {
        for x in 0..w {
            let (mut s, mut n) = (0.0f32, 0.0f32);
            for ny in y.saturating_sub(1)..=(y + 1).min(h - 1) {
                for nx in x.saturating_sub(1)..=(x + 1).min(w - 1) {
                    s += src[ny * w + nx];
                    n += 1.0;
                }
            }
            out[y * w + x] = s / n;
        }
    }
}

/// 3×3 binary dilation.
fn dilate3(src: &[bool], w: usize, h: usize, out: &mut Vec<bool>) {
    out.clear();
    out.resize(w * h, false);
    for y in 0..h {
        for x in 0..w {
            if !src[y * w + x] {
                continue;
            }
            for ny in y.saturating_sub(1)..=(y + 1).min(h - 1) {
                for nx in x.saturating_sub(1)..=(x + 1).min(w - 1) {
                    out[ny * w + nx] = true;
                }
            }
        }
    }
}

/// The median of `a - b` over the unmasked pixels (whole luma steps), 0 when all are masked.
fn median_difference(a: &[f32], b: &[f32], unmasked: &[bool]) -> f32 {
    let mut hist = [0u32; 511];
    let mut n = 0u32;
    for ((x, y), u) in a.iter().zip(b).zip(unmasked) {
        if *u {
            hist[((x - y).round() as i32 + 255).clamp(0, 510) as usize] += 1;
            n += 1;
        }
    }
    if n == 0 {
        return 0.0;
    }
    let mut seen = 0u32;
    for (i, c) in hist.iter().enumerate() {
        seen += c;
        if seen * 2 >= n {
            return i as f32 - 255.0;
        }
    }
    0.0
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: usize = 320;
    const H: usize = 240;

    /// A textured still scene with reproducible noise of amplitude `noise` (luma steps).
    fn scene(seed: u64, noise: i32, brightness: i32) -> Vec<u8> {
        let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
        let mut out = vec![0u8; W * H];
        for y in 0..H {
            for x in 0..W {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let n = ((s >> 33) % (2 * noise as u64 + 1)) as i32 - noise;
                let base = 60 + ((x / 16 + y / 16) % 2) as i32 * 80 + (y as i32 / 8);
                out[y * W + x] = (base + brightness + n).clamp(0, 255) as u8;
            }
        }
        out
    }

    fn with_square(mut f: Vec<u8>, x0: usize, y0: usize, side: usize) -> Vec<u8> {
        for y in y0..y0 + side {
            for x in x0..x0 + side {
                f[y * W + x] = 250;
            }
        }
        f
    }

    fn luma(f: &[u8]) -> Luma<'_> {
        Luma {
            width: W,
            height: H,
            stride: W,
            data: f,
        }
    }

    const S: i64 = 1_000_000_000;

    /// Feeds `f` as the warm-up frames, the last at t = 0.
    fn warm(d: &mut Detector, f: &[u8]) {
        for i in 0..WARMUP_FRAMES as i64 {
            let t = (i + 1 - WARMUP_FRAMES as i64) * S;
            assert_eq!(d.analyse(&luma(f), t), Outcome::Calibrating, "frame {i}");
        }
    }

    #[test]
    fn a_restart_warms_up_again() {
        let mut d = Detector::new(DetectorConfig::default());
        warm(&mut d, &scene(1, 4, 0));
        let f = with_square(scene(2, 4, 0), 200, 100, 30);
        assert!(matches!(d.analyse(&luma(&f), S), Outcome::Motion(_)));
        // A new stream: its first frames only set the background, however different.
        d.restart();
        for i in 0..WARMUP_FRAMES as i64 {
            let f = with_square(scene(3 + i as u64, 4, 0), 40 * i as usize, 100, 30);
            assert_eq!(d.analyse(&luma(&f), (2 + i) * S), Outcome::Calibrating);
        }
    }

    #[test]
    fn a_moving_square_is_found_where_it_is() {
        let mut d = Detector::new(DetectorConfig::default());
        warm(&mut d, &scene(1, 4, 0));
        assert_eq!(d.analyse(&luma(&scene(2, 4, 0)), S), Outcome::Still);
        let f = with_square(scene(3, 4, 0), 200, 100, 30);
        let Outcome::Motion(r) = d.analyse(&luma(&f), 2 * S) else {
            panic!("no motion")
        };
        assert_eq!(r.len(), 1, "{r:?}");
        let b = r[0].bbox;
        let truth = NormBox {
            l: 200.0 / W as f32,
            t: 100.0 / H as f32,
            w: 30.0 / W as f32,
            h: 30.0 / H as f32,
        };
        // The box holds the square and is at most two analysis pixels (dilation) larger.
        let px = 2.0 / ANALYSIS_HEIGHT as f32;
        assert!(b.l <= truth.l && b.t <= truth.t, "{b:?}");
        assert!(b.l + b.w >= truth.l + truth.w && b.t + b.h >= truth.t + truth.h);
        assert!(
            b.w <= truth.w + 2.0 * px && b.h <= truth.h + 2.0 * px,
            "{b:?}"
        );
    }

    #[test]
    fn noise_and_a_brightness_step_are_not_motion_at_any_sensitivity() {
        for s in Sensitivity::ALL {
            let mut d = Detector::new(DetectorConfig {
                sensitivity: Some(s),
                ..Default::default()
            });
            for i in 0..120 {
                let step = if i >= 60 { 25 } else { 0 };
                let o = d.analyse(&luma(&scene(i, 12, step)), i as i64 * S);
                assert!(!matches!(o, Outcome::Motion(_)), "{s:?} frame {i}: {o:?}");
            }
        }
    }

    #[test]
    fn lights_switching_recalibrates_instead_of_reporting() {
        let mut d = Detector::new(DetectorConfig::default());
        warm(&mut d, &scene(1, 2, 0));
        // An IR switch: the picture inverts.
        let inverted: Vec<u8> = scene(2, 2, 0).iter().map(|p| 255 - p).collect();
        assert_eq!(d.analyse(&luma(&inverted), S), Outcome::Recalibrated);
        let inverted: Vec<u8> = scene(3, 2, 0).iter().map(|p| 255 - p).collect();
        assert_eq!(d.analyse(&luma(&inverted), 2 * S), Outcome::Still);
    }

    #[test]
    fn a_mask_hides_motion_and_zones_are_named() {
        let square = [[0.5, 0.3], [0.9, 0.3], [0.9, 0.8], [0.5, 0.8]];
        let cfg = DetectorConfig {
            sensitivity: None,
            mask: vec![square.to_vec()],
            zones: vec![
                (
                    "left".into(),
                    vec![vec![[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [0.0, 1.0]]],
                ),
                (
                    "right".into(),
                    vec![vec![[0.5, 0.0], [1.0, 0.0], [1.0, 1.0], [0.5, 1.0]]],
                ),
            ],
        };
        let mut d = Detector::new(cfg);
        warm(&mut d, &scene(1, 4, 0));
        // Inside the mask: nothing.
        let o = d.analyse(&luma(&with_square(scene(2, 4, 0), 200, 100, 30)), S);
        assert_eq!(o, Outcome::Still);
        // Left of it: a region in zone "left" only.
        let Outcome::Motion(r) = d.analyse(&luma(&with_square(scene(3, 4, 0), 40, 100, 30)), 2 * S)
        else {
            panic!("no motion")
        };
        assert_eq!(r[0].zones, ["left"]);
    }

    #[test]
    fn higher_sensitivity_finds_fainter_and_smaller_changes() {
        // A faint small patch: 25 luma steps brighter, 12×12 pixels.
        let faint = |seed| {
            let mut f = scene(seed, 2, 0);
            for y in 100..112 {
                for x in 100..112 {
                    f[y * W + x] = f[y * W + x].saturating_add(25);
                }
            }
            f
        };
        let found: Vec<bool> = Sensitivity::ALL
            .iter()
            .map(|&s| {
                let mut d = Detector::new(DetectorConfig {
                    sensitivity: Some(s),
                    ..Default::default()
                });
                warm(&mut d, &scene(1, 2, 0));
                matches!(d.analyse(&luma(&faint(2)), S), Outcome::Motion(_))
            })
            .collect();
        assert_eq!(found, [false, true, true]);
    }

    #[test]
    fn something_that_stops_becomes_background() {
        let mut d = Detector::new(DetectorConfig::default());
        warm(&mut d, &scene(1, 2, 0));
        let mut moved_at = Vec::new();
        for i in 1..40 {
            let f = with_square(scene(i + 1, 2, 0), 100, 100, 30);
            if matches!(d.analyse(&luma(&f), i as i64 * S), Outcome::Motion(_)) {
                moved_at.push(i);
            }
        }
        assert_eq!(moved_at.first(), Some(&1));
        assert!(moved_at.len() < 30, "{moved_at:?}");
    }

    #[test]
    fn strides_and_odd_sizes_are_read_correctly() {
        let (w, h, stride) = (101, 57, 128);
        let mut data = vec![7u8; stride * h];
        for y in 0..h {
            for x in w..stride {
                data[y * stride + x] = 255; // padding must never be read
            }
        }
        let mut d = Detector::new(DetectorConfig::default());
        let f = Luma {
            width: w,
            height: h,
            stride,
            data: &data,
        };
        for i in 0..WARMUP_FRAMES as i64 {
            assert_eq!(d.analyse(&f, i * S), Outcome::Calibrating);
        }
        assert_eq!(d.analyse(&f, 3 * S), Outcome::Still);
        let short = Luma {
            data: &data[..10],
            ..f
        };
        assert_eq!(d.analyse(&short, 4 * S), Outcome::Still);
    }
}
