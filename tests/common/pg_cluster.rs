//! A PostgreSQL primary and a streaming replica of their own, on free loopback ports in a
//! temporary directory, for the read-replica tests: made with Debian's `initdb` and
//! `pg_basebackup` (`VERSIONED_PG_BIN`, the directory holding them, as `.ci/run` sets it), run as
//! the `postgres` user, and stopped by pid when dropped (or when the test process exits, for the
//! cluster the tests share).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::processes::{dies_with_the_test, free_port, kill, kill_at_exit, signal};

/// One server: its port, data directory and, while it runs, its process.
struct Server {
    port: u16,
    data: PathBuf,
    process: Option<Child>,
}

/// A primary (server 0) and a replica (server 1).
pub struct PgCluster {
    servers: [Server; 2],
    bin: PathBuf,
    dir: tempfile::TempDir,
    user: (u32, u32),
}

/// The directory of PostgreSQL's server programs: `VERSIONED_PG_BIN`. `None` when unset.
pub fn bin() -> Option<PathBuf> {
    std::env::var_os("VERSIONED_PG_BIN").map(PathBuf::from)
}

/// The uid and gid of the `postgres` user (PostgreSQL refuses to run as root).
fn postgres_user() -> (u32, u32) {
    let id = |flag: &str| {
        let out = Command::new("id").args([flag, "postgres"]).output().expect("id postgres");
        String::from_utf8_lossy(&out.stdout).trim().parse::<u32>().expect("a numeric id of the postgres user")
    };
    (id("-u"), id("-g"))
}

impl PgCluster {
    /// The primary's index.
    pub const PRIMARY: usize = 0;
    /// The replica's index.
    pub const REPLICA: usize = 1;

    /// Makes and starts a primary, then a replica streaming from it, and waits until both serve.
    pub fn start(bin: PathBuf) -> PgCluster {
        let dir = tempfile::Builder::new().prefix("versioned-pg-").tempdir().expect("a temporary directory");
        let user = postgres_user();
        std::os::unix::fs::chown(dir.path(), Some(user.0), Some(user.1)).expect("chown the directory to postgres");
        let server = |name: &str| Server { port: free_port(), data: dir.path().join(name), process: None };
        let mut cluster = PgCluster { servers: [server("primary"), server("replica")], bin, dir, user };
        let primary = cluster.servers[0].data.clone();
        cluster.run("initdb", &["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync", "-D"], &primary);
        cluster.spawn(Self::PRIMARY);
        cluster.wait_ready(Self::PRIMARY);
        let replica = cluster.servers[1].data.clone();
        let port = cluster.servers[0].port.to_string();
        let args = ["-h", "127.0.0.1", "-p", port.as_str(), "-U", "postgres", "-R", "-X", "stream", "-c", "fast", "-D"];
        cluster.run("pg_basebackup", &args, &replica);
        cluster.spawn(Self::REPLICA);
        cluster.wait_ready(Self::REPLICA);
        cluster
    }

    /// Runs one of PostgreSQL's programs as `postgres`, with `path` as its last argument.
    fn run(&self, program: &str, args: &[&str], path: &Path) {
        let out = Command::new(self.bin.join(program))
            .args(args)
            .arg(path)
            .uid(self.user.0)
            .gid(self.user.1)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program} from VERSIONED_PG_BIN={}: {e}", self.bin.display()));
        assert!(out.status.success(), "{program} failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn spawn(&mut self, i: usize) {
        let server = &self.servers[i];
        let log = std::fs::File::create(self.dir.path().join(format!("{i}.log"))).expect("a log file");
        let mut command = Command::new(self.bin.join("postgres"));
        command
            .arg("-D")
            .arg(&server.data)
            .args(["-p", &server.port.to_string(), "-c", "listen_addresses=127.0.0.1"])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", self.dir.path().display()))
            // Killing a process loses nothing the OS has; only the tests' own speed is at stake.
            .args(["-c", "fsync=off", "-c", "max_connections=200", "-c", "wal_keep_size=256MB"])
            .uid(self.user.0)
            .gid(self.user.1)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        dies_with_the_test(&mut command);
        let process = command.spawn().expect("start postgres");
        self.servers[i].process = Some(process);
    }

    /// Waits until server `i` accepts connections (a replica: once it is consistent).
    pub fn wait_ready(&self, i: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let port = self.servers[i].port.to_string();
        loop {
            let ready = Command::new(self.bin.join("pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &port, "-U", "postgres", "-d", "postgres", "-q"])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "PostgreSQL server {i} did not come up; logs in {}",
                self.dir.path().display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The URL of server `i`'s `postgres` database.
    pub fn url(&self, i: usize) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.servers[i].port)
    }

    /// The pid of server `i`, while it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.servers[i].process.as_ref().map(Child::id)
    }

    /// `kill -9` server `i`.
    pub fn kill(&mut self, i: usize) {
        kill(&mut self.servers[i].process);
    }

    /// Starts server `i` again on its data directory, and waits until it serves.
    pub fn restart(&mut self, i: usize) {
        self.spawn(i);
        self.wait_ready(i);
    }

    /// Sends `signal` to server `i` (`SIGSTOP`, `SIGCONT`).
    pub fn signal(&self, i: usize, sig: libc::c_int) {
        signal(self.servers[i].process.as_ref(), sig);
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        for i in [Self::REPLICA, Self::PRIMARY] {
            self.signal(i, libc::SIGCONT);
            self.kill(i);
        }
    }
}

/// The URLs (primary, replica) of a cluster this process starts once, for the tests that only
/// read and write through it; `None`, with a message, without `VERSIONED_PG_BIN`.
pub fn shared() -> Option<(String, String)> {
    static SHARED: OnceLock<Option<(String, String)>> = OnceLock::new();
    SHARED
        .get_or_init(|| {
            let Some(bin) = bin() else {
                eprintln!(
                    "skipped: set VERSIONED_PG_BIN to the directory of PostgreSQL's server programs \
                     (/usr/lib/postgresql/<version>/bin) to run the read-replica tests"
                );
                return None;
            };
            let (sender, receiver) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let cluster = PgCluster::start(bin);
                kill_at_exit([0, 1].iter().filter_map(|i| cluster.pid(*i)));
                let _ = sender.send((cluster.url(PgCluster::PRIMARY), cluster.url(PgCluster::REPLICA)));
                let _cluster = cluster;
                loop {
                    std::thread::park();
                }
            });
            Some(receiver.recv().expect("the PostgreSQL cluster started"))
        })
        .clone()
}
