//! The official MCP Python SDK, in a virtual environment under the target directory, for
//! kb-cli's MCP client tests (`kb-cli/tests/mcp.rs`).

use std::path::PathBuf;
use std::process::Command;

/// The SDK release the tests are written against.
const SDK: &str = "mcp";
const SDK_VERSION: &str = "2.3.0";

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::util::project_root().join("target"))
}

/// The virtual environment's interpreter, with the SDK installed (once; later runs reuse
/// it when the pinned version is already there).
pub fn python_sdk() -> Result<PathBuf, String> {
    let venv = target_dir().join("mcp-venv");
    let python = venv.join("bin").join("python");
    let installed = Command::new(&python)
        .args([
            "-c",
            &format!("import importlib.metadata as m; print(m.version('{SDK}'))"),
        ])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    if installed.as_deref() == Some(SDK_VERSION) {
        return Ok(python);
    }
    let venv_s = venv.to_string_lossy().into_owned();
    crate::util::run("python3", &["-m", "venv", "--clear", &venv_s])?;
    let python_s = python.to_string_lossy().into_owned();
    crate::util::run(
        &python_s,
        &[
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            &format!("{SDK}=={SDK_VERSION}"),
        ],
    )?;
    Ok(python)
}
