//! A throw-away `nats-server` with JetStream for the tests.
//!
//! Include it with `#[path = "support/nats.rs"] mod nats_support;`.
//!
//! [`shared`] starts one server for the whole test binary on the first call; [`NatsServer::start`]
//! starts one of a test's own (to kill and restart it). Each runs
//! `nats-server -js -a 127.0.0.1 -p <free port> -sd <temp dir>` from `PATH` (or `/usr/sbin`,
//! where Debian's package puts it). A small `sh` watcher, started beside each, waits for the test
//! process to end, then kills the server (by its pid file, so a restarted server too) and removes
//! its directory: statics are never dropped, and this also covers a test binary that is killed.
//! Each test uses its own stream names and subject prefix ([`unique`]), so tests running in
//! parallel on the shared server do not meet.
//!
//! Where no `nats-server` can be found or started, [`shared`] prints `SKIPPED: <why>` and returns
//! `None`; with `CI=true` it panics instead, so CI never skips silently.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The shared server of this test binary, or `None` (after printing `SKIPPED: ...`).
pub fn shared() -> Option<&'static NatsServer> {
    static SHARED: OnceLock<Result<NatsServer, String>> = OnceLock::new();
    match SHARED.get_or_init(NatsServer::start) {
        Ok(server) => Some(server),
        Err(why) => {
            skip(why);
            None
        }
    }
}

/// A server of the caller's own, or `None` (after printing `SKIPPED: ...`).
pub fn own() -> Option<NatsServer> {
    match NatsServer::start() {
        Ok(server) => Some(server),
        Err(why) => {
            skip(&why);
            None
        }
    }
}

/// A name no other test of this run uses: letters, digits and `_`.
pub fn unique(what: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.subsec_nanos());
    format!(
        "{what}_{}_{}_{}",
        std::process::id(),
        nanos,
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Says why a test does not run: `SKIPPED: <why>`, or a panic under `CI=true`.
pub fn skip(why: &str) {
    if std::env::var("CI").is_ok_and(|ci| ci == "true") {
        panic!("no nats-server for the tests, and CI=true forbids skipping: {why}");
    }
    // Straight to stderr, not through eprintln!, which the test harness captures.
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED: {why}");
}

/// A `nats-server -js` of this test process, storing in a temporary directory.
#[derive(Debug)]
pub struct NatsServer {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    child: Mutex<Option<Child>>,
}

impl NatsServer {
    /// Finds `nats-server` and starts it on a free port. `Err` says why not.
    pub fn start() -> Result<Self, String> {
        let bin = find_bin()?;
        let dir = std::env::temp_dir().join(format!("propexo-nats-{}", unique("t")));
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let mut server = Self {
            bin,
            dir,
            port: 0,
            child: Mutex::new(None),
        };
        server.watch_parent()?;
        let mut last = String::new();
        for _ in 0..5 {
            server.port = free_port()?;
            match server.spawn() {
                Ok(()) => return Ok(server),
                Err(why) => last = why,
            }
        }
        Err(last)
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server with SIGKILL (no flush, no goodbye) and waits until it is gone.
    pub fn kill(&self) {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(mut child) = child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and storage directory.
    pub fn restart(&self) -> Result<(), String> {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.spawn() {
                Ok(()) => return Ok(()),
                // The port may take a moment to be free again.
                Err(why) if Instant::now() > deadline => return Err(why),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    fn spawn(&self) -> Result<(), String> {
        let log = self.dir.join("server.log");
        let mut child = Command::new(&self.bin)
            .args(["-js", "-a", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .arg("-sd")
            .arg(self.dir.join("store"))
            .arg("-P")
            .arg(self.dir.join("server.pid"))
            .arg("-l")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.bin.display()))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                return Err(format!(
                    "nats-server exited ({status}): {}",
                    log.lines().rev().take(5).collect::<Vec<_>>().join(" | ")
                ));
            }
            let ready =
                std::fs::read_to_string(&log).is_ok_and(|log| log.contains("Server is ready"));
            if ready && std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                *self.child.lock().unwrap_or_else(|e| e.into_inner()) = Some(child);
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        Err("nats-server did not become ready within 30 s".into())
    }

    /// Starts a watcher that kills the server and removes its directory once this process is
    /// gone, whether it ended normally, panicked or was killed.
    fn watch_parent(&self) -> Result<(), String> {
        let dir = shell_quote(&self.dir);
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
             kill -9 $(cat {dir}/server.pid 2>/dev/null) 2>/dev/null; sleep 0.2; rm -rf {dir}",
            pid = std::process::id(),
        );
        Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map(drop)
            .map_err(|e| format!("cannot start the server's watcher: {e}"))
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn shell_quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', "'\\''"))
}

/// `nats-server` on `PATH`, or in `/usr/sbin` or `/usr/bin` (Debian's package).
fn find_bin() -> Result<PathBuf, String> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/sbin", "/usr/bin", "/usr/local/bin"].map(PathBuf::from));
    dirs.into_iter()
        .map(|dir| dir.join("nats-server"))
        .find(|bin| bin.is_file())
        .ok_or_else(|| {
            "no nats-server on PATH or in /usr/sbin (apt-get install nats-server)".into()
        })
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|e| format!("no free port on 127.0.0.1: {e}"))
}
