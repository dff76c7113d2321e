//! What every task shares: where the project and its target directory are, the one
//! command runner, the one argument parser, and the one Postgres URL.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root. `cargo run` tells the running xtask its manifest directory, so a
/// second checkout sharing a target directory finds its own root; the path compiled in
/// is the fallback for a binary started by hand.
pub(crate) fn project_root() -> PathBuf {
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .filter(|d| d.join("Cargo.toml").is_file())
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest.parent().map(Path::to_path_buf).unwrap_or(manifest)
}

/// A path the user gave, resolved against the directory they ran `cargo xtask` from
/// (tasks run their commands in the project root, where a relative path would mean
/// something else).
pub(crate) fn from_caller(path: &str) -> Result<PathBuf, String> {
    let p = PathBuf::from(path);
    if p.is_absolute() {
        return Ok(p);
    }
    let cwd = std::env::current_dir().map_err(|e| format!("no current directory: {e}"))?;
    Ok(cwd.join(p))
}

/// Cargo's target directory: `CARGO_TARGET_DIR` (relative to the project root, as
/// cargo reads it) or `target/`.
pub(crate) fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR").filter(|d| !d.is_empty()) {
        Some(d) => project_root().join(d),
        None => project_root().join("target"),
    }
}

/// The cargo that runs this xtask (so toolchain overrides carry over).
pub(crate) fn cargo() -> Cmd {
    Cmd::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// The one way tasks run programs: echoed before it starts, in the project root unless
/// told otherwise, and a failure is an error naming the command. Environment values are
/// never echoed (they may hold a password).
pub(crate) struct Cmd {
    inner: Command,
    shown: String,
    echo: bool,
}

impl Cmd {
    pub(crate) fn new(program: impl AsRef<OsStr>) -> Self {
        let program = program.as_ref();
        let mut inner = Command::new(program);
        inner.current_dir(project_root());
        let shown = Path::new(program)
            .file_name()
            .unwrap_or(program)
            .to_string_lossy()
            .into_owned();
        Self {
            inner,
            shown,
            echo: true,
        }
    }

    pub(crate) fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.shown.push(' ');
        self.shown.push_str(&arg.as_ref().to_string_lossy());
        self.inner.arg(arg);
        self
    }

    pub(crate) fn args<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(mut self, args: I) -> Self {
        for a in args {
            self = self.arg(a);
        }
        self
    }

    /// Sets a variable; the echo shows its name only.
    pub(crate) fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> Self {
        self.shown = format!("{key}=… {}", self.shown);
        self.inner.env(key, value);
        self
    }

    pub(crate) fn env_remove(mut self, key: &str) -> Self {
        self.inner.env_remove(key);
        self
    }

    /// No `$ command` line: for tasks that show their own (the demo).
    pub(crate) fn quiet(mut self) -> Self {
        self.echo = false;
        self
    }

    pub(crate) fn dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.inner.current_dir(dir);
        self
    }

    /// Runs to the end; a non-zero exit is an error.
    pub(crate) fn run(self) -> Result<(), String> {
        let shown = self.shown.clone();
        match self.status()? {
            0 => Ok(()),
            code => Err(format!("`{shown}` failed (exit code {code})")),
        }
    }

    /// Runs to the end and returns its exit code (-1 when a signal ended it), for tasks
    /// that read the code (the demo's lost claim).
    pub(crate) fn status(mut self) -> Result<i32, String> {
        if self.echo {
            eprintln!("$ {}", self.shown);
        }
        let status = self
            .inner
            .status()
            .map_err(|e| format!("could not start `{}`: {e}", self.shown))?;
        Ok(status.code().unwrap_or(-1))
    }

    /// Runs quietly and returns stdout when it succeeds (probes such as `pg_config`).
    pub(crate) fn output(mut self) -> Result<String, String> {
        let out = self
            .inner
            .output()
            .map_err(|e| format!("could not start `{}`: {e}", self.shown))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "`{}` failed: {}{}",
                self.shown,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }
}

/// A task's arguments, checked against the flags it declares: an unknown flag or a
/// missing value is an error, not silently ignored. Arguments after `--` pass through.
///
/// Hand-written because xtask builds from std alone (seconds, no registry): the grammar
/// is `--flag value`, `--switch`, positionals and `--`, nothing more.
pub(crate) struct Args {
    values: Vec<(String, String)>,
    switches: Vec<String>,
    pub positionals: Vec<String>,
    pub passthrough: Vec<String>,
}

impl Args {
    /// `flags` take a value, `switches` do not; `positionals` is how many bare words the
    /// task accepts.
    pub(crate) fn parse(
        task: &str,
        args: &[String],
        flags: &[&str],
        switches: &[&str],
        positionals: usize,
    ) -> Result<Self, String> {
        let mut parsed = Self {
            values: Vec::new(),
            switches: Vec::new(),
            positionals: Vec::new(),
            passthrough: Vec::new(),
        };
        let known = || {
            let mut all: Vec<&str> = flags.iter().chain(switches).copied().collect();
            all.sort_unstable();
            if all.is_empty() {
                "it takes no flags".to_owned()
            } else {
                format!("its flags are {}", all.join(", "))
            }
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            if a == "--" {
                parsed.passthrough.extend(it.by_ref().cloned());
            } else if flags.contains(&a.as_str()) {
                let v = it
                    .next()
                    .filter(|v| !v.starts_with("--"))
                    .ok_or_else(|| format!("`cargo xtask {task}`: {a} needs a value"))?;
                parsed.values.push((a.clone(), v.clone()));
            } else if switches.contains(&a.as_str()) {
                parsed.switches.push(a.clone());
            } else if a.starts_with('-') {
                return Err(format!(
                    "`cargo xtask {task}`: unknown flag {a:?}; {}",
                    known()
                ));
            } else if parsed.positionals.len() < positionals {
                parsed.positionals.push(a.clone());
            } else {
                return Err(format!(
                    "`cargo xtask {task}`: unexpected argument {a:?}; {}",
                    known()
                ));
            }
        }
        Ok(parsed)
    }

    pub(crate) fn value(&self, flag: &str) -> Option<&str> {
        self.values
            .iter()
            .rev()
            .find(|(f, _)| f == flag)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn has(&self, switch: &str) -> bool {
        self.switches.iter().any(|s| s == switch)
    }
}

/// The Postgres URL tests, benches and tasks use: `KB_PG_URL`, else `DATABASE_URL`.
/// The names from before there was one (`KB_TEST_PG_URL`, `KB_BENCH_PG_URL`) still
/// work, with a deprecation line. Kept in step with `storage_postgres::test_url` (xtask
/// depends on std only). Children get it as `KB_PG_URL`.
pub(crate) fn pg_url() -> Option<String> {
    let set = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    if let Some(url) = set("KB_PG_URL").or_else(|| set("DATABASE_URL")) {
        return Some(url);
    }
    ["KB_TEST_PG_URL", "KB_BENCH_PG_URL"]
        .iter()
        .find_map(|name| {
            let url = set(name)?;
            eprintln!("xtask: {name} is deprecated; set KB_PG_URL instead");
            Some(url)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn unknown_flags_are_rejected_with_the_known_ones() {
        let err = Args::parse(
            "eval",
            &strings(&["--colection", "x"]),
            &["--collection"],
            &[],
            0,
        )
        .err()
        .unwrap();
        assert!(err.contains("unknown flag \"--colection\""), "{err}");
        assert!(err.contains("--collection"), "{err}");
    }

    #[test]
    fn values_switches_positionals_and_passthrough_are_told_apart() {
        let a = Args::parse(
            "bench",
            &strings(&["hybrid", "--json", "--mode", "keyword", "--", "--x", "y"]),
            &["--mode"],
            &["--json"],
            1,
        )
        .unwrap();
        assert_eq!(a.positionals, ["hybrid"]);
        assert!(a.has("--json"));
        assert_eq!(a.value("--mode"), Some("keyword"));
        assert_eq!(a.passthrough, ["--x", "y"]);
        assert!(Args::parse("demo", &strings(&["extra"]), &[], &[], 0).is_err());
        assert!(Args::parse("eval", &strings(&["--mode"]), &["--mode"], &[], 0).is_err());
    }

    #[test]
    fn relative_paths_resolve_against_the_callers_directory() {
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(from_caller("../x").unwrap(), cwd.join("../x"));
        assert_eq!(from_caller("/abs").unwrap(), PathBuf::from("/abs"));
    }
}
