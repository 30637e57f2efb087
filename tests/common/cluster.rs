//! A private, throwaway Postgres cluster for tests that stop and start the database under a
//! running server (outages, crash recovery): `initdb` into a temporary directory, `pg_ctl` on a
//! free port of 127.0.0.1 with its socket in that directory. It does not depend on
//! `pg_ctlcluster` or on the machine's own cluster.
//!
//! The binaries come from `SEALPOST_PG_BINDIR`, else the newest `/usr/lib/postgresql/*/bin`,
//! else `PATH`. Running as root (initdb refuses), every command runs as the OS user `postgres`
//! (`runuser -u postgres --`, or `su postgres`) in a directory handed to that user. Without the
//! binaries the test is skipped with a loud message, or fails when `SEALPOST_REQUIRE_POSTGRES=1`.

use sealpost_testkit::{postgres_required, REQUIRE_POSTGRES_ENV};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Where to look for `initdb` and `pg_ctl` first.
pub const PG_BINDIR_ENV: &str = "SEALPOST_PG_BINDIR";

/// A running (or stopped) private cluster; dropped, it is stopped and its files removed.
#[derive(Debug)]
pub struct PgCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
    running: bool,
}

fn has_binaries(dir: &Path) -> bool {
    ["initdb", "pg_ctl", "postgres"]
        .iter()
        .all(|b| dir.join(b).is_file())
}

/// The directory holding `initdb`, `pg_ctl` and `postgres`, if any.
pub fn find_bindir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os(PG_BINDIR_ENV).map(PathBuf::from) {
        return has_binaries(&dir).then_some(dir);
    }
    let version = |name: &str| -> Vec<u32> {
        name.split('.')
            .map(|p| p.parse::<u32>().unwrap_or(0))
            .collect()
    };
    let mut installed: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let bin = e.path().join("bin");
            has_binaries(&bin).then(|| (version(&e.file_name().to_string_lossy()), bin))
        })
        .collect();
    installed.sort();
    if let Some((_, bin)) = installed.pop() {
        return Some(bin);
    }
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()).find(|d| has_binaries(d))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

#[cfg(unix)]
fn running_as_root(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(dir).expect("temp dir").uid() == 0
}

#[cfg(not(unix))]
fn running_as_root(_dir: &Path) -> bool {
    false
}

impl PgCluster {
    /// Creates and starts a cluster, or returns `None` after a loud message when the Postgres
    /// binaries are not installed (panics instead under `SEALPOST_REQUIRE_POSTGRES=1`). Any
    /// other failure panics with the tool's output.
    pub fn start(label: &str) -> Option<Self> {
        let Some(bin) = find_bindir() else {
            if postgres_required() {
                panic!(
                    "{REQUIRE_POSTGRES_ENV}=1 but no Postgres binaries (initdb, pg_ctl, postgres) were found in ${PG_BINDIR_ENV}, /usr/lib/postgresql/*/bin or PATH: test '{label}' needs a private cluster"
                );
            }
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "\n!!! SKIPPING test '{label}': no Postgres binaries (initdb, pg_ctl) for a private cluster.\n!!! Install them or set {PG_BINDIR_ENV}; set {REQUIRE_POSTGRES_ENV}=1 to make this a failure.\n"
            );
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("sp-pg-")
            .tempdir()
            .expect("cluster dir");
        let as_postgres = running_as_root(dir.path());
        if as_postgres {
            let out = Command::new("chown")
                .arg("-R")
                .arg("postgres:")
                .arg(dir.path())
                .output()
                .expect("run chown");
            check(&out, "chown the cluster directory to postgres");
        }
        let mut cluster = Self {
            dir,
            bin,
            port: free_port(),
            as_postgres,
            running: false,
        };
        let data = cluster.data();
        let out = cluster.run(
            "initdb",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-U".as_ref(),
                "postgres".as_ref(),
                "-A".as_ref(),
                "trust".as_ref(),
                "-E".as_ref(),
                "UTF8".as_ref(),
                "--no-sync".as_ref(),
            ],
        );
        check(&out, "initdb");
        cluster.start_again();
        Some(cluster)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Runs one of the cluster's tools (as `postgres` when running as root).
    fn run(&self, tool: &str, args: &[&std::ffi::OsStr]) -> Output {
        self.command(tool, args)
            .output()
            .unwrap_or_else(|e| panic!("run {tool}: {e}"))
    }

    /// The command line of one of the cluster's tools.
    fn command(&self, tool: &str, args: &[&std::ffi::OsStr]) -> Command {
        let program = self.bin.join(tool);
        let mut command = if self.as_postgres {
            if Path::new("/usr/sbin/runuser").exists() || Path::new("/sbin/runuser").exists() {
                let mut c = Command::new("runuser");
                c.args(["-u", "postgres", "--"]).arg(&program).args(args);
                c
            } else {
                // su takes one shell command line: quote every word.
                let quote = |s: &std::ffi::OsStr| {
                    format!("'{}'", s.to_string_lossy().replace('\'', "'\\''"))
                };
                let line = std::iter::once(quote(program.as_os_str()))
                    .chain(args.iter().map(|a| quote(a)))
                    .collect::<Vec<_>>()
                    .join(" ");
                let mut c = Command::new("su");
                c.args(["postgres", "-s", "/bin/sh", "-c", &line]);
                c
            }
        } else {
            let mut c = Command::new(&program);
            c.args(args);
            c
        };
        command.current_dir(self.dir.path());
        command
    }

    /// The URL of the cluster's `postgres` database (trust authentication, no password).
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether it was started and not stopped since.
    pub fn is_running(&self) -> bool {
        self.running
    }

    /// Kills the server the way a crash would (`pg_ctl stop -m immediate`: no checkpoint,
    /// every connection dropped; the next start runs crash recovery).
    pub fn stop_immediate(&mut self) {
        let data = self.data();
        let out = self.run(
            "pg_ctl",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-m".as_ref(),
                "immediate".as_ref(),
                "-w".as_ref(),
                "stop".as_ref(),
            ],
        );
        check(&out, "pg_ctl stop -m immediate");
        self.running = false;
    }

    /// Starts the server (again) on the same port and data, waiting until it accepts
    /// connections.
    pub fn start_again(&mut self) {
        let data = self.data();
        let log = self.dir.path().join("postgres.log");
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {}",
            self.port,
            self.dir.path().display()
        );
        let out = self.run(
            "pg_ctl",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-l".as_ref(),
                log.as_os_str(),
                "-w".as_ref(),
                "-t".as_ref(),
                "60".as_ref(),
                "-o".as_ref(),
                options.as_ref(),
                "start".as_ref(),
            ],
        );
        if !out.status.success() {
            let server_log = std::fs::read_to_string(&log).unwrap_or_default();
            panic!(
                "pg_ctl start failed: {}\n{}\nserver log:\n{server_log}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        self.running = true;
    }
}

fn check(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}): {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if self.running {
            let data = self.data();
            let _ = self
                .command(
                    "pg_ctl",
                    &[
                        "-D".as_ref(),
                        data.as_os_str(),
                        "-m".as_ref(),
                        "immediate".as_ref(),
                        "-w".as_ref(),
                        "stop".as_ref(),
                    ],
                )
                .output();
        }
    }
}
