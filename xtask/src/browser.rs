//! Headless Chromium for the search page's browser test (`kb-server/tests/api.rs`):
//! Debian's `chromium`, installed with apt when missing (browsers cannot be downloaded
//! any other way on the machines this runs on).

use std::path::PathBuf;

use crate::util::Cmd;

fn on_path() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("chromium"))
        .find(|c| c.is_file())
}

/// The browser's path, installing the `chromium` package first if it is absent.
pub(crate) fn chromium() -> Result<PathBuf, String> {
    if let Some(path) = on_path() {
        return Ok(path);
    }
    if !crate::postgres::is_root() {
        return Err(
            "the search page test needs chromium: install it (Debian: apt-get install chromium)"
                .into(),
        );
    }
    eprintln!("xtask: installing chromium (apt) for the search page test");
    let install = || {
        Cmd::new("apt-get")
            .args([
                "install",
                "-y",
                "-qq",
                "--no-install-recommends",
                "chromium",
            ])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .run()
    };
    // A fresh machine may have no package lists yet.
    install().or_else(|_| {
        Cmd::new("apt-get").args(["update", "-qq"]).run()?;
        install()
    })?;
    on_path().ok_or_else(|| "apt-get installed chromium but it is not on PATH".into())
}
