//! The `argus` command: `serve` runs the node, `analyze` runs a model on files and prints JSON,
//! `models` lists the model packages the node would load.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio::sync::watch;

use argus::config::Settings;

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
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging(&cli.log_format)?;
    let settings = Settings::load(cli.config.as_deref()).context("invalid settings")?;

    match cli.command {
        Command::Serve => serve(settings),
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
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        "json" => builder.json().init(),
        "text" => builder.init(),
        other => anyhow::bail!("--log-format must be text or json, not `{other}`"),
    }
    Ok(())
}

/// The inference and report engines for the node.
fn engines(_settings: &Settings) -> anyhow::Result<argus::node::Engines> {
    // TODO(#3): Wire the ONNX Runtime analyzer and the SR writer once they land.
    struct NoModels;
    impl argus::pipeline::Analyzer for NoModels {
        fn route(&self, _: &argus::store::index::SeriesRecord) -> Option<String> {
            None
        }
        fn analyze(
            &self,
            _: &str,
            _: &str,
            _: &[PathBuf],
        ) -> Result<argus::findings::Analysis, String> {
            Err("no models".into())
        }
    }
    impl argus::pipeline::Reporter for NoModels {
        fn write(
            &self,
            _: &argus::findings::Analysis,
            _: &dicom_object::InMemDicomObject,
            _: Option<&argus::pipeline::jobs::SrRef>,
        ) -> Result<Vec<argus::pipeline::ReportObject>, String> {
            Err("no report writer".into())
        }
    }
    Ok(argus::node::Engines {
        analyzer: std::sync::Arc::new(NoModels),
        reporter: std::sync::Arc::new(NoModels),
    })
}
