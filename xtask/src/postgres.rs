//! `cargo xtask test-postgres`: the Postgres conformance suite and Postgres-only tests,
//! against `KB_PG_URL` / `DATABASE_URL` when set, otherwise against a throwaway server
//! provisioned here (pgvector built from source when missing) and always stopped.

use std::net::TcpListener;
use std::path::{Path, PathBuf};

use crate::util::{cargo, pg_url, project_root, Cmd};

/// `cargo xtask test-postgres [FILTER] [-- harness args]`: a filter (or harness
/// arguments) narrows the run to the backend's own tests; without one, the
/// cross-backend tests of the crates above the protocol run too.
pub(crate) fn test_postgres(args: &[String]) -> Result<(), String> {
    let args = crate::util::Args::parse("test-postgres", args, &[], &[], 1)?;
    let mut extra = args.positionals;
    if !args.passthrough.is_empty() {
        extra.push("--".into());
        extra.extend(args.passthrough);
    }
    let extra = extra.as_slice();
    match pg_url() {
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
            let local = Local {
                restart: server.restart_command(),
                tls_ca: server.tls_ca.clone(),
            };
            run_tests(&server.url, Some(&local), &[], extra)?;
            if extra.is_empty() {
                run_in_other_locales(&server)?;
            }
            Ok(())
        }
    }
}

/// The databases besides the cluster's UTF-8 one that the conformance suite runs in:
/// the `C` locale (what `initdb --no-locale` and many container images give, where
/// Postgres' own parser cannot tell a letter outside ASCII), in UTF-8 and in SQL_ASCII
/// encoding. Names and options are constants, never user input.
const OTHER_LOCALES: [(&str, &str); 2] = [
    ("kb_c_utf8", "ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'"),
    (
        "kb_c_ascii",
        "ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C'",
    ),
];

/// Runs the conformance suite again in each of [`OTHER_LOCALES`] on the throwaway
/// server (never on a configured one: creating databases there is not ours to do).
fn run_in_other_locales(server: &TempServer) -> Result<(), String> {
    let (base, _) = server
        .url
        .rsplit_once('/')
        .ok_or("the throwaway server's URL has no database")?;
    for (db, options) in OTHER_LOCALES {
        server.psql(&format!(
            "CREATE DATABASE {db} TEMPLATE template0 {options}"
        ))?;
        eprintln!("xtask: the conformance suite in database {db} ({options})");
        backend_tests()
            .args(["--test", "conformance"])
            .env("KB_PG_URL", format!("{base}/{db}"))
            .run()?;
    }
    Ok(())
}

/// `cargo test` of the Postgres backend with its database tests switched on.
fn backend_tests() -> Cmd {
    cargo().args([
        "test",
        "-p",
        "storage-postgres",
        "--features",
        "postgres-tests",
    ])
}

/// What the tests may do to a server this task started: restart it, and reach it over
/// TLS with the CA that signed its certificate.
struct Local {
    restart: String,
    tls_ca: Option<PathBuf>,
}

/// The backend's own tests (restricted to `targets` when given), then, unless the caller
/// passed extra arguments (a test filter), the cross-backend tests of the crates above the
/// protocol on the same server.
fn run_tests(
    url: &str,
    local: Option<&Local>,
    targets: &[&str],
    extra: &[String],
) -> Result<(), String> {
    let mut backend = backend_tests().args(targets).env("KB_PG_URL", url);
    if let Some(local) = local {
        backend = backend.env("KB_TEST_PG_RESTART", &local.restart);
        if let Some(ca) = &local.tls_ca {
            backend = backend.env("KB_TEST_PG_TLS_CA", ca);
        }
    }
    backend.args(extra).run()?;
    if extra.is_empty() {
        let crates = ["embed", "search-hybrid", "kb-cli", "kb-server"];
        let features: Vec<String> = crates
            .iter()
            .map(|c| format!("{c}/postgres-tests"))
            .collect();
        cargo()
            .arg("test")
            .args(crates.iter().flat_map(|c| ["-p", c]))
            .args(["--features", &features.join(",")])
            .env("KB_PG_URL", url)
            .run()?;
    }
    Ok(())
}

/// A URL that is set must work: fail loudly rather than skip.
fn check_reachable(url: &str) -> Result<(), String> {
    // Quiet: the URL may hold a password.
    match Cmd::new("pg_isready")
        .args(["-d", url, "-t", "5"])
        .quiet()
        .status()
    {
        Ok(0) => Ok(()),
        // No pg_isready on this machine: the tests themselves report a connection failure.
        Err(_) => Ok(()),
        Ok(_) => Err(
            "KB_PG_URL (or DATABASE_URL) is set but that Postgres server is not accepting \
             connections — start it, fix the URL, or unset it to let `cargo xtask \
             test-postgres` provision a throwaway server"
                .into(),
        ),
    }
}

pub(crate) struct TempServer {
    bindir: PathBuf,
    dir: PathBuf,
    as_postgres_user: bool,
    pub url: String,
    /// The CA that signed the server's certificate (TLS on), when openssl was there to
    /// make one; the TLS tests need it.
    pub tls_ca: Option<PathBuf>,
}

impl TempServer {
    /// `durable`: keep fsync and full-page writes on (benchmarks), or turn them off (tests).
    pub(crate) fn start(durable: bool) -> Result<Self, String> {
        let bindir = find_bindir()?;
        ensure_pgvector(&bindir)?;
        let as_postgres_user = is_root();
        let dir = pick_dir(as_postgres_user)?;
        let data = dir.join("data");
        let port = free_port()?;
        let mut server = Self {
            bindir,
            dir: dir.clone(),
            as_postgres_user,
            url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            tls_ca: None,
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
        // Test servers speak TLS (for the TLS tests; the others connect with libpq's
        // default, `prefer`, and so use it too); bench servers do not, so benchmark figures
        // stay comparable over time.
        let tls = if durable {
            None
        } else {
            match make_certificates(&dir, as_postgres_user) {
                Ok(tls) => Some(tls),
                Err(e) => {
                    eprintln!("xtask: the throwaway Postgres runs without TLS: {e}");
                    None
                }
            }
        };
        let ssl = tls.as_ref().map_or(String::new(), |t| {
            format!(
                " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                s(&t.cert),
                s(&t.key)
            )
        });
        let opts = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c max_connections=300 \
             -c synchronous_commit=off -c shared_buffers=512MB -c maintenance_work_mem=1GB \
             -c max_wal_size=4GB{durability}{ssl}",
            s(&dir)
        );
        server.tls_ca = tls.map(|t| t.ca);
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
    pub(crate) fn restart_command(&self) -> String {
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

    /// Runs one SQL statement on the server's `postgres` database.
    fn psql(&self, sql: &str) -> Result<(), String> {
        self.pg(
            "psql",
            &[
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                &self.url,
                "-c",
                sql,
            ],
        )
    }

    /// Runs a server binary, as the `postgres` user when we are root (Postgres refuses root).
    fn pg(&self, tool: &str, args: &[&str]) -> Result<(), String> {
        let bin = self.bindir.join(tool);
        let cmd = if self.as_postgres_user {
            Cmd::new("runuser").args(["-u", "postgres", "--"]).arg(&bin)
        } else {
            Cmd::new(&bin)
        };
        cmd.args(args).output().map(drop)
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

pub(crate) fn is_root() -> bool {
    Cmd::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.trim() == "0")
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
    if let Ok(out) = Cmd::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(out.trim());
        if dir.join("initdb").exists() {
            return Ok(dir);
        }
    }
    Err("no PostgreSQL server found (initdb); install postgresql (Debian: apt-get install postgresql), \
         or set KB_PG_URL to an existing server with pgvector"
        .into())
}

fn ensure_pgvector(bindir: &Path) -> Result<(), String> {
    let pg_config = bindir.join("pg_config");
    let share = Cmd::new(&pg_config).arg("--sharedir").output()?;
    let share = PathBuf::from(share.trim());
    if share.join("extension/vector.control").exists() {
        return Ok(());
    }
    eprintln!("xtask: pgvector is not installed; building it from Debian's source package…");
    let script = project_root().join("xtask/scripts/install-pgvector.sh");
    Cmd::new("bash")
        .arg(&script)
        .arg(&pg_config)
        .run()
        .map_err(|e| format!("installing pgvector failed (see above): {e}"))
}

/// A fresh directory under target/ that the server's user can write to.
fn pick_dir(as_postgres_user: bool) -> Result<PathBuf, String> {
    let name = format!("pg-test-{}", std::process::id());
    let under_target = crate::util::target_dir().join(&name);
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
        let chown = Cmd::new("chown")
            .args(["postgres:postgres", s(&dir)])
            .output();
        let writable = Cmd::new("runuser")
            .args(["-u", "postgres", "--", "test", "-w", s(&dir)])
            .output();
        if chown.is_ok() && writable.is_ok() {
            return Ok(dir);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    Err("could not create a data directory the postgres user can write".into())
}

struct Certificates {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

/// A throwaway CA and a server certificate it signs, for `localhost` only (so a client
/// connecting to 127.0.0.1 with `verify-full` sees a name mismatch, which the TLS tests
/// use). Made with the openssl command line (xtask has no crates).
fn make_certificates(dir: &Path, as_postgres_user: bool) -> Result<Certificates, String> {
    let tls = dir.join("tls");
    std::fs::create_dir_all(&tls).map_err(|e| format!("cannot create {}: {e}", tls.display()))?;
    let f = |name: &str| tls.join(name);
    let openssl = |args: &[&str]| Cmd::new("openssl").args(args).output().map(drop);
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "3",
        "-subj",
        "/CN=kb test CA",
        "-keyout",
        s(&f("ca.key")),
        "-out",
        s(&f("ca.crt")),
    ])?;
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        s(&f("server.key")),
        "-out",
        s(&f("server.csr")),
    ])?;
    std::fs::write(f("san.ext"), "subjectAltName=DNS:localhost\n")
        .map_err(|e| format!("cannot write san.ext: {e}"))?;
    openssl(&[
        "x509",
        "-req",
        "-days",
        "3",
        "-in",
        s(&f("server.csr")),
        "-CA",
        s(&f("ca.crt")),
        "-CAkey",
        s(&f("ca.key")),
        "-CAcreateserial",
        "-extfile",
        s(&f("san.ext")),
        "-out",
        s(&f("server.crt")),
    ])?;
    // The server refuses a key others can read, and must own it.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(f("server.key"), std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("cannot restrict server.key: {e}"))?;
    if as_postgres_user {
        Cmd::new("chown")
            .args(["-R", "postgres:postgres", s(&tls)])
            .output()?;
    }
    Ok(Certificates {
        ca: f("ca.crt"),
        cert: f("server.crt"),
        key: f("server.key"),
    })
}

fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}
