//! The `argus` command: `serve` runs the node, `analyze` runs a model on files and prints JSON,
//! `models` lists the model packages the node would load.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio::sync::watch;

use argus::analysis;
use argus::config::Settings;
use argus::explain::{self, gradcam};
use argus::model::Registry;
use ndarray::Axis;

#[derive(Parser)]
#[command(name = "argus", version, about = "AI imaging node: DICOM in, AI findings out as DICOM")]
struct Cli {
    /// Settings file (TOML) applied over the built-in defaults.
    #[arg(long, global = true)]
    config: Option<PathBuf>,

    /// Log format: "text" for people, "json" for log collectors.
    #[arg(long, global = true, default_value = "text")]
    log_format: String,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the node: DICOM listener, pipeline and HTTP endpoints.
    Serve,
    /// Run a model on files and print one JSON document per input (AI-generated, unverified).
    Analyze {
        /// DICOM files and folders (one study per series), NIfTI (.nii, .nii.gz), PNG or JPEG.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// The model to use; by default the one serving the input's Modality.
        #[arg(long)]
        model: Option<String>,
        /// Writes the class activation map over the image as PNG (numbered for several inputs).
        #[arg(long)]
        heatmap: Option<PathBuf>,
    },
    /// List the model packages the node loads, with the execution provider of each.
    Models,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging(&cli.log_format)?;
    let settings = Settings::load(cli.config.as_deref()).context("invalid settings")?;

    match cli.command {
        Command::Serve => serve(settings),
        Command::Analyze { paths, model, heatmap } => {
            analyze(&settings, &paths, model.as_deref(), heatmap.as_deref())
        }
        Command::Models => models(&settings),
    }
}

fn serve(settings: Settings) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let (stop, shutdown) = watch::channel(false);
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("stop requested: finishing in-flight work");
            let _ = stop.send(true);
        });
        let engines = engines(&settings)?;
        argus::node::run(settings, engines, shutdown).await.context("node stopped with an error")
    })
}

fn load_models(settings: &Settings) -> anyhow::Result<Registry> {
    Registry::load(&settings.inference, &settings.data_dir).context("cannot load the models")
}

fn analyze(
    settings: &Settings,
    paths: &[PathBuf],
    model: Option<&str>,
    heatmap: Option<&Path>,
) -> anyhow::Result<()> {
    let registry = load_models(settings)?;
    let inputs = analysis::group_inputs(paths);
    for (i, input) in inputs.iter().enumerate() {
        let path = input.first();
        let chosen = choose(&registry, model, path)?;
        let study = input
            .load(chosen.manifest.preparation.rescale)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let result = analysis::analyze_study(chosen, &study)
            .with_context(|| format!("cannot analyse {}", path.display()))?;
        println!("{}", analysis::summary_json(&result));

        if let Some(out) = heatmap {
            write_heatmap(&result, &numbered(out, i, inputs.len()))?;
        }
    }
    Ok(())
}

/// The model named with --model, else the one serving the input's Modality.
fn choose<'r>(
    registry: &'r Registry,
    model: Option<&str>,
    path: &Path,
) -> anyhow::Result<&'r argus::model::LoadedModel> {
    let (modality, sop_class) = match model {
        Some(_) => Default::default(),
        None => analysis::input_modality(path)
            .with_context(|| format!("cannot read {}", path.display()))?,
    };
    analysis::model_for(registry, model, &modality, &sop_class)
        .with_context(|| format!("no model for {}", path.display()))
}

/// `OUT.png` for one input; `OUT-1.png`, `OUT-2.png`... for several.
fn numbered(out: &Path, index: usize, count: usize) -> PathBuf {
    if count == 1 {
        return out.to_path_buf();
    }
    let stem = out.file_stem().unwrap_or_default().to_string_lossy();
    out.with_file_name(format!("{stem}-{}.png", index + 1))
}

fn write_heatmap(result: &argus::findings::Analysis, out: &Path) -> anyhow::Result<()> {
    let map = result.heatmap.as_ref().context("the model has no [gradcam] outputs; no heatmap")?;
    let (plane, _, _) = gradcam::peak(&map.maps);
    let rgb = explain::overlay(
        map.windowed.index_axis(Axis(0), plane.min(map.windowed.dim().0 - 1)),
        map.maps.index_axis(Axis(0), plane),
    );
    let (rows, cols, _) = rgb.dim();
    let image =
        image::RgbImage::from_raw(cols as u32, rows as u32, rgb.into_raw_vec_and_offset().0)
            .context("heatmap size")?;
    image.save(out).with_context(|| format!("cannot write {}", out.display()))
}

fn models(settings: &Settings) -> anyhow::Result<()> {
    let registry = load_models(settings)?;
    println!(
        "{:<20} {:<8} {:<8} {:<7} {:<14} {:<9} intended use",
        "id", "version", "modality", "kind", "input", "provider"
    );
    for model in registry.models() {
        let m = &model.manifest;
        let input: Vec<String> = m.input_shape().iter().map(|d| d.to_string()).collect();
        println!(
            "{:<20} {:<8} {:<8} {:<7} {:<14} {:<9} {}",
            m.id,
            m.version,
            m.modalities.join(","),
            format!("{:?}", m.kind).to_lowercase(),
            input.join("x"),
            model.provider().name(),
            m.intended_use
        );
    }
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler can be installed");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

fn init_logging(format: &str) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,ort=warn"));
    // Colours only for a person at a terminal, never in a log file.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    match format {
        "json" => builder.json().init(),
        "text" => builder.init(),
        other => anyhow::bail!("--log-format must be text or json, not `{other}`"),
    }
    Ok(())
}

/// The inference and report engines for the node: the model registry and the report writers.
fn engines(settings: &Settings) -> anyhow::Result<argus::node::Engines> {
    let registry = load_models(settings)?;
    for model in registry.models() {
        tracing::info!(model = %model.manifest.id, version = %model.manifest.version, provider = model.provider().name(), "model loaded");
    }
    Ok(argus::node::Engines {
        analyzer: std::sync::Arc::new(argus::engines::ModelAnalyzer::new(registry)),
        reporter: std::sync::Arc::new(argus::engines::DicomReporter::new(&settings.uid_root)),
    })
}
