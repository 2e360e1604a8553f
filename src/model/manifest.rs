//! `model.toml`, the manifest of a model package (models/MANIFEST.md).
//!
//! Reading happens in two phases, like the settings: [`RawManifest`] mirrors the TOML and refuses
//! unknown keys; [`Manifest::from_raw`] then checks every value once and names the key that is
//! wrong. Modalities are the defined terms of PS3.3 C.7.3.1.1.1.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::findings::Code;

/// The modalities a model may serve (PS3.3 C.7.3.1.1.1 defined terms).
pub const MODALITIES: [&str; 6] = ["CT", "MR", "PT", "MG", "CR", "DX"];

/// Why a manifest was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    #[error("cannot read manifest {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },

    #[error("manifest {path} is not valid: {source}")]
    Parse { path: PathBuf, source: Box<toml::de::Error> },

    #[error("manifest {path}: key `{key}` is invalid: {reason}")]
    Invalid { path: PathBuf, key: &'static str, reason: String },
}

/// The manifest as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawManifest {
    model: RawModel,
    input: RawInput,
    preparation: RawPreparation,
    output: RawOutput,
    labels: Vec<RawLabel>,
    thresholds: Thresholds,
    gradcam: Option<Gradcam>,
    /// How the weights were made; kept by the kit, not used here.
    #[serde(default)]
    #[serde(rename = "training")]
    _training: Option<toml::Table>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModel {
    id: String,
    version: String,
    name: String,
    description: String,
    intended_use: String,
    modalities: Vec<String>,
    kind: String,
    #[serde(default)]
    validated: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInput {
    name: String,
    layout: String,
    channels: usize,
    height: usize,
    width: usize,
    depth: Option<usize>,
    dtype: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPreparation {
    rescale: bool,
    window: Option<RawWindow>,
    voi: Option<String>,
    percentiles: Option<Vec<f64>>,
    invert_monochrome1: bool,
    mean: Vec<f32>,
    std: Vec<f32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWindow {
    center: f64,
    width: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOutput {
    name: String,
    activation: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLabel {
    name: String,
    finding: bool,
    code: RawCode,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCode {
    scheme: String,
    value: String,
    meaning: String,
}

/// `[thresholds]`: probabilities at which a finding is present, and flagged for priority.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    pub positive: f32,
    pub priority: f32,
}

/// `[gradcam]`: the two extra outputs that make the class activation map.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Gradcam {
    pub activations: String,
    pub weights: String,
}

/// Whether a model sees one image at a time or a whole series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Slice,
    Volume,
}

/// How scores become probabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Softmax,
    Sigmoid,
}

/// The one VOI source of `[preparation]` (MANIFEST.md step 2).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Voi {
    /// A fixed window, in rescaled units.
    Window { center: f64, width: f64 },
    /// The file's first Window Center/Width, else min-max.
    File,
    /// The image's own minimum and maximum.
    MinMax,
    /// Lower and upper percentile of the image, numpy's linear method.
    Percentiles { low: f64, high: f64 },
}

/// `[preparation]` and the input geometry, everything `prepare` needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Preparation {
    pub rescale: bool,
    pub voi: Voi,
    pub invert_monochrome1: bool,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    /// Slices after resampling, for volume models only.
    pub depth: Option<usize>,
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

/// One output class.
#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    pub name: String,
    pub finding: bool,
    pub code: Code,
}

/// A checked manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub id: String,
    pub version: String,
    pub name: String,
    pub description: String,
    pub intended_use: String,
    /// Whether the weights were validated for clinical use on real patient data; only then
    /// may their findings raise priority (unless `inference.priority_from_unvalidated`).
    pub validated: bool,
    pub modalities: Vec<String>,
    pub kind: Kind,
    pub input_name: String,
    pub preparation: Preparation,
    pub output_name: String,
    pub activation: Activation,
    pub labels: Vec<Label>,
    pub thresholds: Thresholds,
    pub gradcam: Option<Gradcam>,
}

impl Manifest {
    /// Reads and checks `dir/model.toml`; the model's id must equal the folder's name.
    pub fn load(dir: &Path) -> Result<Manifest, ManifestError> {
        let path = dir.join("model.toml");
        let text = std::fs::read_to_string(&path)
            .map_err(|source| ManifestError::Read { path: path.clone(), source })?;
        let folder = dir.file_name().map(|n| n.to_string_lossy().into_owned());
        Manifest::parse(&path, &text, folder.as_deref())
    }

    /// Parses and checks manifest text; `path` is only used in errors.
    pub fn parse(path: &Path, text: &str, folder: Option<&str>) -> Result<Manifest, ManifestError> {
        let raw: RawManifest = toml::from_str(text)
            .map_err(|e| ManifestError::Parse { path: path.to_path_buf(), source: Box::new(e) })?;
        let manifest = Manifest::from_raw(raw).map_err(|(key, reason)| ManifestError::Invalid {
            path: path.to_path_buf(),
            key,
            reason,
        })?;
        if let Some(folder) = folder.filter(|f| *f != manifest.id) {
            let reason = format!("`{}` differs from the folder name `{folder}`", manifest.id);
            return Err(ManifestError::Invalid {
                path: path.to_path_buf(),
                key: "model.id",
                reason,
            });
        }
        Ok(manifest)
    }

    /// Checks a raw manifest, returning the first wrong key and why.
    pub fn from_raw(raw: RawManifest) -> Result<Manifest, (&'static str, String)> {
        let kind = kind(&raw.model.kind)?;
        check_model(&raw.model)?;
        let preparation = preparation(&raw.preparation, &raw.input, kind)?;
        let labels = labels(raw.labels)?;
        check_thresholds(raw.thresholds)?;

        Ok(Manifest {
            id: raw.model.id,
            version: raw.model.version,
            name: raw.model.name,
            description: raw.model.description,
            intended_use: raw.model.intended_use,
            validated: raw.model.validated,
            modalities: raw.model.modalities,
            kind,
            input_name: non_empty("input.name", raw.input.name)?,
            preparation,
            output_name: non_empty("output.name", raw.output.name)?,
            activation: activation(&raw.output.activation)?,
            labels,
            thresholds: raw.thresholds,
            gradcam: raw.gradcam,
        })
    }

    /// The input shape without the batch axis: (C, H, W) or (C, D, H, W).
    pub fn input_shape(&self) -> Vec<usize> {
        let p = &self.preparation;
        match p.depth {
            Some(depth) => vec![p.channels, depth, p.height, p.width],
            None => vec![p.channels, p.height, p.width],
        }
    }

    /// Whether this model serves images of `modality`.
    pub fn serves(&self, modality: &str) -> bool {
        self.modalities.iter().any(|m| m.eq_ignore_ascii_case(modality.trim()))
    }
}

type Checked<T> = Result<T, (&'static str, String)>;

fn non_empty(key: &'static str, value: String) -> Checked<String> {
    if value.trim().is_empty() {
        return Err((key, "must not be empty".into()));
    }
    Ok(value)
}

fn kind(value: &str) -> Checked<Kind> {
    match value {
        "slice" => Ok(Kind::Slice),
        "volume" => Ok(Kind::Volume),
        other => Err(("model.kind", format!("`{other}` is not one of slice, volume"))),
    }
}

fn activation(value: &str) -> Checked<Activation> {
    match value {
        "softmax" => Ok(Activation::Softmax),
        "sigmoid" => Ok(Activation::Sigmoid),
        other => Err(("output.activation", format!("`{other}` is not one of softmax, sigmoid"))),
    }
}

fn check_model(model: &RawModel) -> Checked<()> {
    for (key, value) in [
        ("model.id", &model.id),
        ("model.version", &model.version),
        ("model.name", &model.name),
        ("model.intended_use", &model.intended_use),
    ] {
        non_empty(key, value.clone())?;
    }
    if model.modalities.is_empty() {
        return Err(("model.modalities", "must name at least one modality".into()));
    }
    if let Some(bad) = model.modalities.iter().find(|m| !MODALITIES.contains(&m.as_str())) {
        return Err(("model.modalities", format!("`{bad}` is not one of {MODALITIES:?}")));
    }
    Ok(())
}

fn preparation(prep: &RawPreparation, input: &RawInput, kind: Kind) -> Checked<Preparation> {
    let depth = check_input(input, kind)?;
    let voi = voi(prep)?;
    for (key, values) in [("preparation.mean", &prep.mean), ("preparation.std", &prep.std)] {
        if values.len() != input.channels {
            let reason = format!("has {} values for {} channels", values.len(), input.channels);
            return Err((key, reason));
        }
    }
    if prep.std.iter().any(|s| *s == 0.0 || !s.is_finite()) {
        return Err(("preparation.std", "every value must be finite and non-zero".into()));
    }

    Ok(Preparation {
        rescale: prep.rescale,
        voi,
        invert_monochrome1: prep.invert_monochrome1,
        channels: input.channels,
        height: input.height,
        width: input.width,
        depth,
        mean: prep.mean.clone(),
        std: prep.std.clone(),
    })
}

fn check_input(input: &RawInput, kind: Kind) -> Checked<Option<usize>> {
    let layout = match kind {
        Kind::Slice => "NCHW",
        Kind::Volume => "NCDHW",
    };
    if input.layout != layout {
        let reason = format!("`{}` must be {layout} for a {kind:?} model", input.layout);
        return Err(("input.layout", reason));
    }
    if input.dtype != "float32" {
        return Err(("input.dtype", format!("`{}` is not float32", input.dtype)));
    }
    if !matches!(input.channels, 1 | 3) {
        return Err(("input.channels", format!("{} is not 1 or 3", input.channels)));
    }
    if input.height == 0 || input.width == 0 {
        return Err(("input.height", "height and width must be at least 1".into()));
    }
    match (kind, input.depth) {
        (Kind::Volume, None | Some(0)) => Err(("input.depth", "a volume needs a depth".into())),
        (Kind::Slice, Some(_)) => Err(("input.depth", "only volume models have a depth".into())),
        (_, depth) => Ok(depth),
    }
}

fn voi(prep: &RawPreparation) -> Checked<Voi> {
    match (&prep.window, prep.voi.as_deref(), &prep.percentiles) {
        (Some(w), None, None) if w.width > 0.0 => {
            Ok(Voi::Window { center: w.center, width: w.width })
        }
        (Some(_), None, None) => Err(("preparation.window", "width must be positive".into())),
        (None, Some("file"), None) => Ok(Voi::File),
        (None, Some("minmax"), None) => Ok(Voi::MinMax),
        (None, Some(other), None) => {
            Err(("preparation.voi", format!("`{other}` is not one of file, minmax")))
        }
        (None, None, Some(p)) => percentiles(p),
        _ => Err((
            "preparation.voi",
            "exactly one of window, voi and percentiles must be given".into(),
        )),
    }
}

fn percentiles(values: &[f64]) -> Checked<Voi> {
    match values {
        [low, high] if (0.0..=100.0).contains(low) && low < high && *high <= 100.0 => {
            Ok(Voi::Percentiles { low: *low, high: *high })
        }
        _ => Err((
            "preparation.percentiles",
            "must be [low, high] with 0 <= low < high <= 100".into(),
        )),
    }
}

fn labels(raw: Vec<RawLabel>) -> Checked<Vec<Label>> {
    if !raw.iter().any(|l| l.finding) {
        return Err(("labels.finding", "at least one label must be a finding".into()));
    }
    raw.into_iter()
        .map(|l| {
            Ok(Label {
                name: non_empty("labels.name", l.name)?,
                finding: l.finding,
                code: Code { scheme: l.code.scheme, value: l.code.value, meaning: l.code.meaning },
            })
        })
        .collect()
}

fn check_thresholds(t: Thresholds) -> Checked<()> {
    if !(0.0..=1.0).contains(&t.positive) {
        return Err(("thresholds.positive", format!("{} is not in [0, 1]", t.positive)));
    }
    if !(t.positive..=1.0).contains(&t.priority) {
        return Err(("thresholds.priority", format!("{} is not in [positive, 1]", t.priority)));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A valid slice manifest, as in MANIFEST.md.
    pub(crate) const EXAMPLE: &str = r#"
[model]
id = "ct-test"
version = "0.1.0"
name = "Test"
description = "Test model."
intended_use = "Tests only; not for clinical use."
modalities = ["CT"]
kind = "slice"

[input]
name = "image"
layout = "NCHW"
channels = 1
height = 64
width = 64
dtype = "float32"

[preparation]
rescale = true
window = { center = -600.0, width = 1500.0 }
invert_monochrome1 = true
mean = [0.5]
std = [0.5]

[output]
name = "logits"
activation = "softmax"

[[labels]]
name = "normal"
finding = false
code = { scheme = "SCT", value = "17621005", meaning = "Normal" }

[[labels]]
name = "nodule"
finding = true
code = { scheme = "SCT", value = "27925004", meaning = "Nodule" }

[thresholds]
positive = 0.5
priority = 0.9

[gradcam]
activations = "features"
weights = "head_weights"
"#;

    fn parse(text: &str) -> Result<Manifest, ManifestError> {
        Manifest::parse(Path::new("models/ct-test/model.toml"), text, Some("ct-test"))
    }

    fn error_of(from: &str, to: &str) -> String {
        parse(&EXAMPLE.replace(from, to)).unwrap_err().to_string()
    }

    #[test]
    fn example_is_valid() {
        let m = parse(EXAMPLE).unwrap();

        assert_eq!(m.kind, Kind::Slice);
        assert_eq!(m.preparation.voi, Voi::Window { center: -600.0, width: 1500.0 });
        assert_eq!(m.input_shape(), [1, 64, 64]);
        assert!(m.serves("CT") && !m.serves("MR"));
    }

    #[test]
    fn wrong_values_name_file_and_key() {
        let cases = [
            ("kind = \"slice\"", "kind = \"stack\"", "model.kind"),
            ("modalities = [\"CT\"]", "modalities = [\"US\"]", "model.modalities"),
            ("channels = 1", "channels = 2", "input.channels"),
            ("layout = \"NCHW\"", "layout = \"NCDHW\"", "input.layout"),
            ("mean = [0.5]", "mean = [0.5, 0.5]", "preparation.mean"),
            ("activation = \"softmax\"", "activation = \"relu\"", "output.activation"),
            ("priority = 0.9", "priority = 0.1", "thresholds.priority"),
            ("id = \"ct-test\"", "id = \"other\"", "model.id"),
        ];
        for (from, to, key) in cases {
            let err = error_of(from, to);
            assert!(err.contains(key) && err.contains("models/ct-test/model.toml"), "{err}");
        }
    }

    #[test]
    fn two_voi_sources_are_refused() {
        let err =
            error_of("invert_monochrome1 = true", "voi = \"file\"\ninvert_monochrome1 = true");
        assert!(err.contains("preparation.voi"), "{err}");
    }

    #[test]
    fn unknown_or_missing_keys_are_named() {
        let err = error_of("dtype = \"float32\"", "dtype = \"float32\"\nscale = 2");
        assert!(err.contains("scale"), "{err}");

        let err = error_of("version = \"0.1.0\"\n", "");
        assert!(err.contains("version"), "{err}");
    }

    #[test]
    fn percentiles_are_checked() {
        let text = EXAMPLE
            .replace("window = { center = -600.0, width = 1500.0 }", "percentiles = [99.0, 1.0]");
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("preparation.percentiles"), "{err}");
    }
}
