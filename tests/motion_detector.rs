//! The motion detector on real footage (issue "Motion detection on the gateway"):
//! `../shared/testdata/vtest.avi` (people walking past a fixed camera), encoded as a camera
//! would (H.264, a key frame every second) and decoded as the recorder's analysis does (key
//! frames only), fed to [`edgerec::motion::detector::Detector`] frame by frame. Fast: no real
//! time; ffmpeg does the encoding and decoding.

mod common;

use std::process::Command;

use edgerec::motion::detector::{Detector, DetectorConfig, Luma, NormBox, Outcome, Sensitivity};

const W: usize = 768;
const H: usize = 576;
const S: i64 = 1_000_000_000;

/// Encodes `input_args` (ffmpeg input options and input) as H.264 with a key frame every
/// second at 10 fps, then decodes the key frames only (`-skip_frame nokey`, as the analysis
/// branch does) to 8-bit luma planes of W×H, one per second.
fn keyframes(name: &str, input_args: &[&str]) -> Vec<Vec<u8>> {
    common::require("ffmpeg");
    let dir = std::env::temp_dir().join(format!("edgerec-motion-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let enc = dir.join("enc.mp4");
    let st = Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args(input_args)
        .args([
            "-an",
            "-r",
            "10",
            "-s",
            &format!("{W}x{H}"),
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "10",
            "-keyint_min",
            "10",
            "-sc_threshold",
            "0",
            "-b:v",
            "800k",
        ])
        .arg(&enc)
        .status()
        .unwrap();
    assert!(st.success(), "ffmpeg encode failed");
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-skip_frame", "nokey", "-i"])
        .arg(&enc)
        .args([
            "-fps_mode",
            "passthrough",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "gray",
            "-",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "ffmpeg decode failed");
    let _ = std::fs::remove_dir_all(&dir);
    out.stdout.chunks(W * H).map(|c| c.to_vec()).collect()
}

/// Runs a detector over the frames (one per second); returns each frame's regions (empty: none).
fn detect(frames: &[Vec<u8>], cfg: DetectorConfig) -> Vec<Vec<edgerec::motion::detector::Region>> {
    let mut d = Detector::new(cfg);
    frames
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let l = Luma {
                width: W,
                height: H,
                stride: W,
                data: f,
            };
            match d.analyse(&l, i as i64 * S) {
                Outcome::Motion(r) => r,
                _ => Vec::new(),
            }
        })
        .collect()
}

/// People marked by hand on key frames 20 and 52 (second 20 and 52 of the footage), as boxes
/// normalised to the picture.
const PEOPLE: [(usize, [NormBox; 6]); 2] = [
    (
        20,
        [
            nb(0.105, 0.26, 0.04, 0.11),
            nb(0.285, 0.33, 0.04, 0.13),
            nb(0.635, 0.25, 0.04, 0.135),
            nb(0.885, 0.17, 0.055, 0.10),
            nb(0.80, 0.46, 0.04, 0.18),
            nb(0.915, 0.44, 0.055, 0.17),
        ],
    ),
    (
        52,
        [
            nb(0.29, 0.31, 0.04, 0.12),
            nb(0.635, 0.36, 0.05, 0.16),
            nb(0.865, 0.37, 0.045, 0.15),
            nb(0.815, 0.47, 0.045, 0.17),
            nb(0.955, 0.57, 0.045, 0.21),
            nb(0.65, 0.72, 0.08, 0.28),
        ],
    ),
];

/// The two people who walk onto the lawn from second 51 on (key frame 52).
const LAWN_WALKERS: NormBox = nb(0.65, 0.72, 0.08, 0.28);

const fn nb(l: f32, t: f32, w: f32, h: f32) -> NormBox {
    NormBox { l, t, w, h }
}

/// The lawn in front, a little way off the walkway's lower edge (which runs from the left at
/// 42 % of the height to the right at 85 %).
fn lawn() -> Vec<[f32; 2]> {
    vec![
        [0.0, 0.55],
        [0.4, 0.62],
        [0.7, 0.78],
        [1.0, 0.95],
        [1.0, 1.0],
        [0.0, 1.0],
    ]
}

/// Everything people walk on: the back path, the walkway, the road and the lawns, that is, all
/// but the building fronts.
fn walkways() -> Vec<[f32; 2]> {
    vec![
        [0.0, 0.08],
        [0.40, 0.08],
        [0.40, 0.19],
        [0.78, 0.19],
        [0.78, 0.0],
        [1.0, 0.0],
        [1.0, 1.0],
        [0.0, 1.0],
    ]
}

fn with(s: Sensitivity) -> DetectorConfig {
    DetectorConfig {
        sensitivity: Some(s),
        ..Default::default()
    }
}

fn area(b: NormBox) -> f32 {
    b.w * b.h
}

#[test]
fn boxes_cover_the_people_and_little_else() {
    let frames = keyframes("people", &["-i", common::footage().to_str().unwrap()]);
    assert_eq!(
        frames.len(),
        80,
        "one key frame per second of the 79.5 s footage"
    );
    let found = detect(&frames, with(Sensitivity::Medium));
    for (frame, people) in PEOPLE {
        let regions = &found[frame];
        for p in people {
            assert!(
                regions.iter().any(|r| r.bbox.overlaps(p)),
                "frame {frame}: nobody found at {p:?}; regions {regions:?}"
            );
        }
        let total: f32 = regions.iter().map(|r| area(r.bbox)).sum();
        let on_people: f32 = regions
            .iter()
            .filter(|r| people.iter().any(|p| r.bbox.overlaps(*p)))
            .map(|r| area(r.bbox))
            .sum();
        println!(
            "frame {frame}: {} regions, {:.0} % of their area on people",
            regions.len(),
            100.0 * on_people / total
        );
        assert!(on_people >= 0.8 * total, "frame {frame}: {regions:?}");
    }
    // The calibration frame aside, people walk through every second of the footage.
    let moving = found.iter().filter(|r| !r.is_empty()).count();
    assert!(moving >= 75, "motion in {moving} of 80 key frames");
}

#[test]
fn a_mask_over_the_walkways_leaves_no_motion_at_any_sensitivity() {
    let frames = keyframes("mask", &["-i", common::footage().to_str().unwrap()]);
    for s in Sensitivity::ALL {
        let found = detect(
            &frames,
            DetectorConfig {
                sensitivity: Some(s),
                mask: vec![walkways()],
                zones: Vec::new(),
            },
        );
        let moving: Vec<usize> = (0..found.len()).filter(|i| !found[*i].is_empty()).collect();
        assert!(
            moving.is_empty(),
            "{s:?}: motion in key frames {moving:?}: {:?}",
            moving.first().map(|i| &found[*i])
        );
    }
}

#[test]
fn events_name_the_zone_a_person_walks_into() {
    let frames = keyframes("zone", &["-i", common::footage().to_str().unwrap()]);
    let found = detect(
        &frames,
        DetectorConfig {
            sensitivity: Some(Sensitivity::Medium),
            mask: Vec::new(),
            zones: vec![("lawn".into(), vec![lawn()])],
        },
    );
    let in_lawn: Vec<usize> = (0..found.len())
        .filter(|i| found[*i].iter().any(|r| r.zones == ["lawn"]))
        .collect();
    println!("lawn in key frames {in_lawn:?}");
    // Nobody is on the lawn before second 50; at 52 two people are, and their region says so.
    assert!(in_lawn.first().is_some_and(|f| *f >= 50), "{in_lawn:?}");
    let r = found[52]
        .iter()
        .find(|r| r.bbox.overlaps(LAWN_WALKERS))
        .expect("the lawn walkers are found");
    assert_eq!(r.zones, ["lawn"]);
    // Regions elsewhere in that frame do not name it.
    for r in &found[52] {
        if r.bbox.t + r.bbox.h < 0.5 {
            assert!(r.zones.is_empty(), "{r:?}");
        }
    }
}

#[test]
fn higher_sensitivity_detects_at_least_as_often() {
    let frames = keyframes("sensitivity", &["-i", common::footage().to_str().unwrap()]);
    let stats: Vec<(usize, usize, f32)> = Sensitivity::ALL
        .iter()
        .map(|s| {
            let found = detect(&frames, with(*s));
            (
                found.iter().filter(|r| !r.is_empty()).count(),
                found.iter().map(|r| r.len()).sum(),
                found.iter().flatten().map(|r| r.area).sum(),
            )
        })
        .collect();
    println!("(frames with motion, regions, moving area) low, medium, high: {stats:?}");
    let [low, medium, high] = [stats[0], stats[1], stats[2]];
    assert!(low.0 > 0);
    assert!(high.0 >= medium.0 && medium.0 >= low.0, "{stats:?}");
    assert!(high.2 > medium.2 && medium.2 > low.2, "{stats:?}");
}

/// A still frame of the scene for two minutes with sensor-like temporal noise (ffmpeg `noise`,
/// a new draw every frame), and the same with a step in brightness half way.
#[test]
fn a_still_noisy_scene_and_a_brightness_step_give_no_motion() {
    let dir = std::env::temp_dir().join(format!("edgerec-still-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let still = common::footage_still(&dir);
    let still = still.to_str().unwrap().to_owned();
    for (name, filter) in [
        ("noise", "noise=alls=12:allf=t"),
        (
            "step",
            "noise=alls=12:allf=t,eq=brightness=0.08:enable='gte(t,60)'",
        ),
    ] {
        let frames = keyframes(
            name,
            &[
                "-loop",
                "1",
                "-framerate",
                "10",
                "-t",
                "120",
                "-i",
                &still,
                "-vf",
                filter,
            ],
        );
        assert_eq!(frames.len(), 120);
        for s in Sensitivity::ALL {
            let found = detect(&frames, with(s));
            let moving: Vec<usize> = (0..found.len()).filter(|i| !found[*i].is_empty()).collect();
            assert!(
                moving.is_empty(),
                "{name} {s:?}: motion in key frames {moving:?}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
