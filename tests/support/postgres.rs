//! A throw-away PostgreSQL cluster for the tests, or the database in `PROPEXO_TEST_DATABASE_URL`.
//!
//! Include it with `#[path = "support/postgres.rs"] mod postgres_support;`.
//!
//! Without `PROPEXO_TEST_DATABASE_URL`, the first test that asks starts a cluster for the whole
//! test binary: `initdb` into a temporary directory (as the `postgres` user when the tests run as
//! root, since initdb refuses root), then `pg_ctl start` on a free port of 127.0.0.1 with its
//! socket in that directory. A small `sh` watcher, started beside it, waits for the test process
//! to end, then stops the cluster (`pg_ctl stop -m immediate`) and removes the directory: statics
//! are never dropped, and this also covers a test binary that is killed. Each test gets its own
//! table prefix in that one database, so tests running in parallel do not meet.
//!
//! Where no PostgreSQL can be found or started, [`database`] prints `SKIPPED: <why>` and returns
//! `None`; with `CI=true` it panics instead, so CI never skips silently.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Where to reach a database, and the table prefix of one test.
#[derive(Debug, Clone)]
pub struct TestDb {
    /// A `postgres://` URL.
    pub url: String,
    /// A table prefix no other test of this run uses.
    pub prefix: String,
}

/// The shared database for this test binary with a fresh table prefix, or `None` (after printing
/// `SKIPPED: ...`) when there is no PostgreSQL. Panics under `CI=true` instead of skipping.
pub fn database() -> Option<TestDb> {
    static SHARED: OnceLock<Result<String, String>> = OnceLock::new();
    let url = SHARED.get_or_init(|| {
        if let Ok(url) = std::env::var("PROPEXO_TEST_DATABASE_URL") {
            return Ok(url);
        }
        Cluster::start().map(|cluster| {
            let url = cluster.url();
            // Lives as long as the process; the watcher stops it.
            std::mem::forget(cluster);
            url
        })
    });
    match url {
        Ok(url) => Some(TestDb {
            url: url.clone(),
            prefix: unique_prefix(),
        }),
        Err(why) => {
            skip(why);
            None
        }
    }
}

/// The URL of a new, empty database on the test cluster (or on `PROPEXO_TEST_DATABASE_URL`'s
/// server, if its user may create databases), for a test that needs the default table names,
/// such as a receiver process configured by URL alone. `None` as for [`database`].
pub async fn fresh_database() -> Option<String> {
    let db = tokio::task::spawn_blocking(database).await.ok()??;
    let name = db.prefix.clone();
    let (client, connection) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .expect("connect to the test server");
    tokio::spawn(connection);
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create a database for the test");
    Some(with_database(&db.url, &name))
}

/// `url` with its database name replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let after_scheme = base.find("://").map_or(0, |at| at + 3);
    let host_end = base[after_scheme..]
        .find('/')
        .map_or(base.len(), |at| after_scheme + at);
    let mut out = format!("{}/{name}", &base[..host_end]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// A table prefix no other test of this run (or another run on the same database) uses.
pub fn unique_prefix() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.subsec_nanos());
    format!(
        "t{}_{}_{}",
        std::process::id(),
        nanos,
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Says why a test does not run: `SKIPPED: <why>`, or a panic under `CI=true`.
pub fn skip(why: &str) {
    if std::env::var("CI").is_ok_and(|ci| ci == "true") {
        panic!("no PostgreSQL for the tests, and CI=true forbids skipping: {why}");
    }
    // Straight to stderr, not through eprintln!, which the test harness captures: a skip must be
    // seen even when the test passes.
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED: {why}");
}

/// A PostgreSQL cluster of this test process, in a temporary directory. Dropping it stops the
/// cluster and removes the directory; so does the watcher when the process ends first.
#[derive(Debug)]
pub struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    as_postgres: bool,
}

impl Cluster {
    /// Finds `initdb` and `pg_ctl`, creates a cluster and starts it. `Err` says why not.
    pub fn start() -> Result<Self, String> {
        let bin = find_bin()?;
        let as_postgres = is_root();
        let dir = temp_dir()?;
        let mut cluster = Self {
            bin,
            dir,
            port: 0,
            as_postgres,
        };
        if as_postgres {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&cluster.dir)
                .status()
                .map_err(|e| format!("chown: {e}"))?;
            if !status.success() {
                return Err("cannot give the cluster's directory to the user postgres".into());
            }
        }
        cluster.watch_parent()?;
        let out = cluster
            .command("initdb")
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .arg("-D")
            .arg(cluster.data())
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("initdb: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        // A port can be taken between our probe and the server's bind: try a few.
        let mut last = String::new();
        for _ in 0..5 {
            cluster.port = free_port()?;
            match cluster.start_server() {
                Ok(()) => return Ok(cluster),
                Err(why) => last = why,
            }
        }
        Err(last)
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server (`pg_ctl stop -m fast`: open connections are closed at once).
    pub fn stop(&self) {
        let _ = self
            .pg_ctl()
            .args(["stop", "-m", "fast", "-w", "-t", "30"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// Starts the server again on the same port.
    pub fn restart(&self) -> Result<(), String> {
        self.start_server()
    }

    fn start_server(&self) -> Result<(), String> {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=on -c max_connections=200",
            self.port,
            self.dir.display()
        );
        let out = self
            .pg_ctl()
            .args(["start", "-w", "-t", "60", "-l"])
            .arg(self.dir.join("server.log"))
            .arg("-o")
            .arg(options)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("pg_ctl start: {e}"))?;
        if out.status.success() && self.wait_ready(Duration::from_secs(30)) {
            return Ok(());
        }
        let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        Err(format!(
            "pg_ctl start failed: {} {} {}",
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim(),
            log.lines().rev().take(5).collect::<Vec<_>>().join(" | ")
        ))
    }

    fn wait_ready(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn pg_ctl(&self) -> Command {
        let mut command = self.command("pg_ctl");
        command.arg("-D").arg(self.data());
        command
    }

    fn command(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    }

    /// Starts a watcher that stops the cluster and removes its directory once this process is
    /// gone, whether it ended normally, panicked or was killed.
    fn watch_parent(&self) -> Result<(), String> {
        let stop = format!(
            "{} {} -D {} stop -m immediate",
            if self.as_postgres {
                "runuser -u postgres --"
            } else {
                ""
            },
            shell_quote(&self.bin.join("pg_ctl")),
            shell_quote(&self.data()),
        );
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop} >/dev/null 2>&1; rm -rf {dir}",
            pid = std::process::id(),
            dir = shell_quote(&self.dir),
        );
        Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map(drop)
            .map_err(|e| format!("cannot start the cluster's watcher: {e}"))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self
            .pg_ctl()
            .args(["stop", "-m", "immediate", "-w"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn shell_quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', "'\\''"))
}

/// The directory holding `initdb` and `pg_ctl`: on `PATH`, or the highest version under
/// `/usr/lib/postgresql/*/bin`.
fn find_bin() -> Result<PathBuf, String> {
    let has_tools = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if has_tools(&dir) {
                // Resolve symlinks (Debian links them from /usr/local/bin or /usr/bin), so
                // pg_ctl finds the server binary beside the real initdb.
                let real = std::fs::canonicalize(dir.join("initdb"))
                    .ok()
                    .and_then(|initdb| initdb.parent().map(Path::to_path_buf))
                    .unwrap_or(dir);
                if has_tools(&real) {
                    return Ok(real);
                }
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            has_tools(&bin).then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).ok_or_else(|| {
        "no initdb and pg_ctl on PATH or under /usr/lib/postgresql/*/bin \
         (install PostgreSQL, or set PROPEXO_TEST_DATABASE_URL)"
            .to_owned()
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

fn temp_dir() -> Result<PathBuf, String> {
    let dir = std::env::temp_dir().join(format!("propexo-pg-{}", unique_prefix()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    Ok(dir)
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|e| format!("no free port on 127.0.0.1: {e}"))
}
