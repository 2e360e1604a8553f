//! Benchmarks of Argus's inference and preparation paths, driven by bench/inference.sh.
//!
//! `argus-bench infer MODEL.onnx --threads N --runs R`: Argus's session (the same code as
//! `argus analyze`) on random input at batch 1 and 8, warm-up excluded; prints JSON with the
//! median seconds per run and images per second, like bench/ort_python_bench.py.
//!
//! `argus-bench prepare --runs R FOLDER...`: reads, decodes, orders and prepares every slice of
//! each series folder to a 1x128x128 tensor (window -600/1500) and prints the median seconds.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use argus::analysis::load_series;
use argus::config::{InferenceSettings, Provider};
use argus::infer::{ModelSession, Runtime};
use argus::model::Manifest;
use argus::prepare;
use clap::{Parser, Subcommand};
use ndarray::{ArrayD, IxDyn};

#[derive(Parser)]
#[command(name = "argus-bench", about = "Times Argus's inference and preparation")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Times a 3x224x224 classifier at batch 1 and 8.
    Infer {
        model: PathBuf,
        #[arg(long, default_value_t = 1)]
        threads: usize,
        #[arg(long, default_value_t = 20)]
        runs: usize,
        #[arg(long, default_value_t = 3)]
        warmup: usize,
        /// Folder of `input-b1.f32` and `input-b8.f32` (raw float32 inputs, so that both sides
        /// run on the same tensor); pseudo-random values when absent.
        #[arg(long)]
        inputs: Option<PathBuf>,
    },
    /// Times preparation of series folders.
    Prepare {
        folders: Vec<PathBuf>,
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
}

/// A manifest for a 3x224x224 network with `image` in and `logits` out, for timing only.
const BENCH_MANIFEST: &str = r#"
[model]
id = "bench"
version = "0.0.0"
name = "Benchmark network"
description = "Random weights, timing only."
intended_use = "Benchmarks only; random weights; not for any use."
modalities = ["CT"]
kind = "slice"
[input]
name = "image"
layout = "NCHW"
channels = 3
height = 224
width = 224
dtype = "float32"
[preparation]
rescale = true
window = { center = -600.0, width = 1500.0 }
invert_monochrome1 = true
mean = [0.5, 0.5, 0.5]
std = [0.5, 0.5, 0.5]
[output]
name = "logits"
activation = "softmax"
[[labels]]
name = "a"
finding = true
code = { scheme = "99TEST", value = "1", meaning = "a" }
[thresholds]
positive = 0.5
priority = 0.9
"#;

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Infer { model, threads, runs, warmup, inputs } => {
            infer(&model, threads, runs, warmup, inputs.as_deref())
        }
        Command::Prepare { folders, runs } => prepare_series(&folders, runs),
    }
}

fn infer(
    model: &Path,
    threads: usize,
    runs: usize,
    warmup: usize,
    inputs: Option<&Path>,
) -> anyhow::Result<()> {
    let manifest = Manifest::parse(Path::new("bench.toml"), BENCH_MANIFEST, None)?;
    let settings = InferenceSettings {
        models_dir: PathBuf::new(),
        ort_library: None,
        providers: vec![Provider::Cpu],
        intra_threads: threads,
        inter_threads: 1,
        batch_size: 8,
        priority_from_unvalidated: false,
    };
    let runtime = Runtime::init(None)?;
    let session = ModelSession::open(runtime, &manifest, model, &settings, Path::new("."))?;

    let results: Vec<serde_json::Value> = [1usize, 8]
        .iter()
        .map(|&batch| time_batch(&session, input(batch, inputs)?, runs, warmup))
        .collect::<anyhow::Result<_>>()?;
    let doc = serde_json::json!({"model": model, "argus": env!("CARGO_PKG_VERSION"),
        "threads": threads, "results": results});
    println!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(())
}

/// The benchmark input of one batch size: read from `inputs`, else pseudo-random.
fn input(batch: usize, inputs: Option<&Path>) -> anyhow::Result<ArrayD<f32>> {
    let shape = IxDyn(&[batch, 3, 224, 224]);
    if let Some(dir) = inputs {
        let path = dir.join(format!("input-b{batch}.f32"));
        let bytes =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let values = bytes.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap()));
        return Ok(ArrayD::from_shape_vec(shape, values.collect())?);
    }
    let mut state = 1u64;
    Ok(ArrayD::from_shape_fn(shape, |_| {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
        ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }))
}

fn time_batch(
    session: &ModelSession,
    input: ArrayD<f32>,
    runs: usize,
    warmup: usize,
) -> anyhow::Result<serde_json::Value> {
    let batch = input.shape()[0];
    for _ in 0..warmup {
        session.run(input.clone())?;
    }
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let copy = input.clone();
        let start = Instant::now();
        session.run(copy)?;
        times.push(start.elapsed().as_secs_f64());
    }
    let median = median(&mut times);
    Ok(serde_json::json!({"batch": batch, "median_s": median,
        "images_per_s": batch as f64 / median, "runs": runs}))
}

fn prepare_series(folders: &[PathBuf], runs: usize) -> anyhow::Result<()> {
    let manifest = Manifest::parse(Path::new("bench.toml"), BENCH_MANIFEST, None)?;
    let mut prep = manifest.preparation;
    (prep.channels, prep.height, prep.width) = (1, 128, 128);
    (prep.mean, prep.std) = (vec![0.5], vec![0.5]);

    for folder in folders {
        let mut files: Vec<PathBuf> = std::fs::read_dir(folder)
            .with_context(|| format!("cannot list {}", folder.display()))?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()?;
        files.sort();
        let mut times = Vec::with_capacity(runs);
        for _ in 0..runs {
            let start = Instant::now();
            let study = load_series(&files, true)?;
            let tensors: Vec<_> =
                study.frames.iter().map(|f| prepare::slice_tensor(f, &prep)).collect();
            std::hint::black_box(tensors);
            times.push(start.elapsed().as_secs_f64());
        }
        let doc = serde_json::json!({"folder": folder, "files": files.len(),
            "median_s": median(&mut times), "runs": runs});
        println!("{doc}");
    }
    Ok(())
}

fn median(times: &mut [f64]) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}
