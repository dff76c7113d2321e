//! `cargo xtask test-postgres`: the Postgres conformance suite and Postgres-only tests,
//! against `KB_TEST_PG_URL` / `DATABASE_URL` when set, otherwise against a throwaway
//! server provisioned here (pgvector built from source when missing) and always stopped.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::{cargo, project_root};

pub fn test_postgres(extra: &[String]) -> Result<(), String> {
    let given = std::env::var("KB_TEST_PG_URL")
        .or_else(|_| std::env::var("DATABASE_URL"))
        .ok()
        .filter(|u| !u.is_empty());
    match given {
        Some(url) => {
            check_reachable(&url)?;
            // Never restart a server this task did not start: the restart test is left out.
            let targets = ["--lib", "--test", "conformance", "--test", "postgres_only"];
            run_tests(&url, None, &targets, extra)
        }
        None => {
            let server = TempServer::start(false)?;
            eprintln!("xtask: throwaway Postgres at {}", server.url);
            // The server is stopped when `server` drops, whether the tests pass or not.
            run_tests(&server.url, Some(&server.restart_command()), &[], extra)
        }
    }
}

/// The backend's own tests (restricted to `targets` when given), then, unless the caller
/// passed extra arguments (a test filter), the cross-backend tests of the crates above the
/// protocol on the same server.
fn run_tests(
    url: &str,
    restart: Option<&str>,
    targets: &[&str],
    extra: &[String],
) -> Result<(), String> {
    let mut args = vec![
        "test",
        "-p",
        "storage-postgres",
        "--features",
        "postgres-tests",
    ];
    args.extend(targets);
    args.extend(extra.iter().map(String::as_str));
    cargo_test(url, restart, &args)?;
    if extra.is_empty() {
        cargo_test(
            url,
            None,
            &[
                "test",
                "-p",
                "embed",
                "-p",
                "search-hybrid",
                "-p",
                "kb-cli",
                "-p",
                "kb-server",
                "--features",
                "embed/postgres-tests,search-hybrid/postgres-tests,kb-cli/postgres-tests,kb-server/postgres-tests",
            ],
        )?;
    }
    Ok(())
}

fn cargo_test(url: &str, restart: Option<&str>, args: &[&str]) -> Result<(), String> {
    eprintln!("$ KB_TEST_PG_URL=… cargo {}", args.join(" "));
    let mut cmd = Command::new(cargo());
    if let Some(restart) = restart {
        cmd.env("KB_TEST_PG_RESTART", restart);
    }
    let status = cmd
        .args(args)
        .env("KB_TEST_PG_URL", url)
        .current_dir(project_root())
        .status()
        .map_err(|e| format!("could not run cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err("the Postgres tests failed".into())
    }
}

/// A URL that is set must work: fail loudly rather than skip.
fn check_reachable(url: &str) -> Result<(), String> {
    match Command::new("pg_isready")
        .args(["-d", url, "-t", "5"])
        .output()
    {
        Ok(out) if out.status.success() => Ok(()),
        Ok(_) => Err(
            "KB_TEST_PG_URL (or DATABASE_URL) is set but that Postgres server is not \
                      accepting connections — start it, fix the URL, or unset it to let \
                      `cargo xtask test-postgres` provision a throwaway server"
                .into(),
        ),
        // No pg_isready on this machine: the tests themselves report a connection failure.
        Err(_) => Ok(()),
    }
}

pub struct TempServer {
    bindir: PathBuf,
    dir: PathBuf,
    as_postgres_user: bool,
    pub url: String,
}

impl TempServer {
    /// `durable`: keep fsync and full-page writes on (benchmarks), or turn them off (tests).
    pub fn start(durable: bool) -> Result<Self, String> {
        let bindir = find_bindir()?;
        ensure_pgvector(&bindir)?;
        let as_postgres_user = is_root();
        let dir = pick_dir(as_postgres_user)?;
        let data = dir.join("data");
        let port = free_port()?;
        let server = Self {
            bindir,
            dir: dir.clone(),
            as_postgres_user,
            url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
        };
        server.pg(
            "initdb",
            &[
                "-D",
                s(&data),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
            ],
        )?;
        // synchronous_commit=off is the analogue of SQLite's WAL + synchronous=NORMAL
        // (commits do not wait for fsync); tests also drop fsync altogether.
        let durability = if durable {
            ""
        } else {
            " -c fsync=off -c full_page_writes=off"
        };
        let opts = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c max_connections=300 \
             -c synchronous_commit=off -c shared_buffers=512MB -c maintenance_work_mem=1GB \
             -c max_wal_size=4GB{durability}",
            s(&dir)
        );
        let log = dir.join("postgres.log");
        server
            .pg(
                "pg_ctl",
                &[
                    "-D",
                    s(&data),
                    "-l",
                    s(&log),
                    "-w",
                    "-t",
                    "60",
                    "-o",
                    &opts,
                    "start",
                ],
            )
            .map_err(|e| {
                format!(
                    "{e}\n--- postgres.log ---\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            })?;
        Ok(server)
    }

    /// A shell command that restarts this server (same options) and waits until it is up.
    pub fn restart_command(&self) -> String {
        let data = self.dir.join("data");
        let log = self.dir.join("postgres.log");
        let pg_ctl = self.bindir.join("pg_ctl");
        let prefix = if self.as_postgres_user {
            "runuser -u postgres -- "
        } else {
            ""
        };
        format!(
            "{prefix}'{}' -D '{}' -l '{}' -m fast -w -t 60 restart >/dev/null",
            s(&pg_ctl),
            s(&data),
            s(&log)
        )
    }

    /// Runs a server binary, as the `postgres` user when we are root (Postgres refuses root).
    fn pg(&self, tool: &str, args: &[&str]) -> Result<(), String> {
        let bin = self.bindir.join(tool);
        let mut cmd = if self.as_postgres_user {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&bin);
            c
        } else {
            Command::new(&bin)
        };
        let out = cmd
            .args(args)
            .output()
            .map_err(|e| format!("could not run {}: {e}", bin.display()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{tool} failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }
}

impl Drop for TempServer {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        if let Err(e) = self.pg("pg_ctl", &["-D", s(&data), "-m", "fast", "-w", "stop"]) {
            eprintln!("xtask: stopping the throwaway Postgres failed: {e}");
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn s(p: &Path) -> &str {
    p.to_str().expect("paths are UTF-8")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

/// The server's bin directory: from `pg_config`, else the newest /usr/lib/postgresql/*/bin.
fn find_bindir() -> Result<PathBuf, String> {
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    candidates.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    if let Some(dir) = candidates
        .into_iter()
        .rev()
        .find(|d| d.join("initdb").exists())
    {
        return Ok(dir);
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return Ok(dir);
        }
    }
    Err("no PostgreSQL server found (initdb); install postgresql (Debian: apt-get install postgresql), \
         or set KB_TEST_PG_URL to an existing server with pgvector"
        .into())
}

fn ensure_pgvector(bindir: &Path) -> Result<(), String> {
    let pg_config = bindir.join("pg_config");
    let share = Command::new(&pg_config)
        .arg("--sharedir")
        .output()
        .map_err(|e| format!("could not run {}: {e}", pg_config.display()))?;
    let share = PathBuf::from(String::from_utf8_lossy(&share.stdout).trim());
    if share.join("extension/vector.control").exists() {
        return Ok(());
    }
    eprintln!("xtask: pgvector is not installed; building it from Debian's source package…");
    let script = project_root().join("xtask/scripts/install-pgvector.sh");
    let status = Command::new("bash")
        .arg(&script)
        .arg(&pg_config)
        .status()
        .map_err(|e| format!("could not run {}: {e}", script.display()))?;
    if status.success() {
        Ok(())
    } else {
        Err("installing pgvector failed (see above)".into())
    }
}

/// A fresh directory under target/ that the server's user can write to.
fn pick_dir(as_postgres_user: bool) -> Result<PathBuf, String> {
    let name = format!("pg-test-{}", std::process::id());
    let under_target = project_root().join("target").join(&name);
    for dir in [
        under_target,
        std::env::temp_dir().join(format!("kb-{name}")),
    ] {
        let _ = std::fs::remove_dir_all(&dir);
        if std::fs::create_dir_all(&dir).is_err() {
            continue;
        }
        if !as_postgres_user {
            return Ok(dir);
        }
        let chown = Command::new("chown")
            .args(["postgres:postgres", s(&dir)])
            .status();
        let writable = Command::new("runuser")
            .args(["-u", "postgres", "--", "test", "-w", s(&dir)])
            .status()
            .map(|st| st.success())
            .unwrap_or(false);
        if chown.map(|st| st.success()).unwrap_or(false) && writable {
            return Ok(dir);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    Err("could not create a data directory the postgres user can write".into())
}

fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}
