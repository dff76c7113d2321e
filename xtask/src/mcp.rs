//! The official MCP Python SDK, in a virtual environment under the target directory, for
//! kb-cli's MCP client tests (`kb-cli/tests/mcp.rs`).

use std::path::PathBuf;

use crate::util::{target_dir, Cmd};

/// The SDK release the tests are written against.
const SDK: &str = "mcp";
const SDK_VERSION: &str = "2.3.0";

/// The virtual environment's interpreter, with the SDK installed (once; later runs reuse
/// it when the pinned version is already there).
pub(crate) fn python_sdk() -> Result<PathBuf, String> {
    let venv = target_dir().join("mcp-venv");
    let python = venv.join("bin").join("python");
    let installed = Cmd::new(&python)
        .arg("-c")
        .arg(format!(
            "import importlib.metadata as m; print(m.version('{SDK}'))"
        ))
        .output();
    if installed.as_deref().map(str::trim) == Ok(SDK_VERSION) {
        return Ok(python);
    }
    Cmd::new("python3")
        .args(["-m", "venv", "--clear"])
        .arg(&venv)
        .run()?;
    Cmd::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .arg(format!("{SDK}=={SDK_VERSION}"))
        .run()?;
    Ok(python)
}
