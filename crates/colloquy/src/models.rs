//! `colloquy models list|verify`: which model files are present in `$COLLOQUY_MODELS` and whether
//! each matches its sha256 in `models/manifest.tsv` (built into the binary).

use std::io::Read;
use std::path::Path;

use anyhow::bail;
use colloquy_providers::models::{FETCH_COMMAND, models_dir};
use sha2::Digest;

const MANIFEST: &str = include_str!("../../../models/manifest.tsv");

#[derive(Debug, clap::Subcommand)]
pub enum ModelsCommand {
    /// List the model files and whether each is present.
    List,
    /// Check every model file against its sha256; fails when one is missing or corrupt.
    Verify,
}

/// One manifest row: the set it belongs to, the file and its expected sha256.
struct Entry<'a> {
    /// `default` (needed by the embedded stack) or an optional set the manifest names.
    set: &'a str,
    file: &'a str,
    package: &'a str,
    sha256: &'a str,
}

fn entries() -> Vec<Entry<'static>> {
    MANIFEST
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let fields: Vec<&str> = l.split('\t').collect();
            (fields.len() == 5).then(|| Entry {
                set: fields[0],
                file: fields[1],
                package: fields[2],
                sha256: fields[4],
            })
        })
        .collect()
}

fn sha256(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

pub fn run(command: ModelsCommand) -> anyhow::Result<()> {
    let dir = models_dir();
    println!("model directory: {}", dir.display());
    let mut bad = Vec::new();
    for entry in entries() {
        let path = dir.join(entry.file);
        let optional = entry.set != "default";
        let status = match (&command, std::fs::metadata(&path)) {
            (_, Err(_)) if optional => format!("not fetched (optional: {FETCH_COMMAND} {})", entry.set),
            (_, Err(_)) => {
                bad.push(entry.file);
                "missing".to_owned()
            }
            (ModelsCommand::List, Ok(meta)) => format!("present, {:.1} MB", meta.len() as f64 / 1e6),
            (ModelsCommand::Verify, Ok(_)) => {
                if sha256(&path)? == entry.sha256 {
                    "ok (sha256 matches)".to_owned()
                } else {
                    bad.push(entry.file);
                    "CORRUPT (sha256 differs)".to_owned()
                }
            }
        };
        println!("  {:<34} {:<36} {status}", entry.file, entry.package);
    }
    if !bad.is_empty() {
        bail!("{} model file(s) missing or corrupt ({}); run {FETCH_COMMAND}", bad.len(), bad.join(", "));
    }
    Ok(())
}

/// The LLMs of the models dir, as the HTTP edge checks a request's local model names against
/// them: a name loads when [`LocalLlm::resolve`] finds its file (so a file path works too).
#[derive(Debug, Default)]
pub struct ModelsDir;

impl colloquy_http::fields::LocalModels for ModelsDir {
    fn has_llm(&self, name: &str) -> bool {
        colloquy_providers::embedded::LocalLlm::resolve(name).is_file()
    }

    fn llm_names(&self) -> Vec<String> {
        let default = colloquy_model::LlmProvider::DEFAULT_LOCAL_MODEL;
        let mut names: Vec<String> = self.has_llm(default).then(|| default.to_owned()).into_iter().collect();
        let files = std::fs::read_dir(models_dir()).into_iter().flatten().flatten();
        for file in files {
            let name = file.file_name().to_string_lossy().into_owned();
            if let Some(stem) = name.strip_suffix(".gguf")
                && name != colloquy_providers::models::SMOLLM2_135M
            {
                names.push(stem.to_owned());
            }
        }
        names.sort();
        names
    }
}
