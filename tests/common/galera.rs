//! A 3-node MariaDB Galera cluster on free loopback ports in a temporary directory, for the
//! Galera tests: Debian's `mariadbd` with `galera-4`'s provider and `rsync` state transfer, each
//! node started by the test (the first with `--wsrep-new-cluster`), stopped by pid when dropped or
//! when the test process exits. Runs when `VERSIONED_GALERA_PROVIDER` names the provider
//! (`/usr/lib/galera/libgalera_smm.so`; `.ci/run` installs `galera-4` and `rsync` and sets it).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::processes::{dies_with_the_test, free_port, kill, kill_at_exit, signal};

/// One node: its ports, data directory and, while it runs, its process.
struct Node {
    port: u16,
    gcomm: u16,
    ist: u16,
    sst: u16,
    data: PathBuf,
    process: Option<Child>,
}

/// A running cluster.
pub struct Galera {
    nodes: Vec<Node>,
    provider: PathBuf,
    dir: tempfile::TempDir,
}

/// The Galera provider: `VERSIONED_GALERA_PROVIDER`; `None` when unset.
pub fn provider() -> Option<PathBuf> {
    std::env::var_os("VERSIONED_GALERA_PROVIDER").map(PathBuf::from)
}

impl Galera {
    /// Makes three nodes' data directories, starts the first as a new cluster, then the others,
    /// each joining by `rsync` state transfer, and waits until all three are synced.
    pub fn start(provider: PathBuf) -> Galera {
        // One cluster starts at a time: two starting together (a test's own and the shared one)
        // share two cores with six state transfers.
        static STARTING: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one = STARTING.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let dir = tempfile::Builder::new().prefix("versioned-galera-").tempdir().expect("a temporary directory");
        let nodes = (0..3)
            .map(|i| Node {
                port: free_port(),
                gcomm: free_port(),
                ist: free_port(),
                sst: free_port(),
                data: dir.path().join(format!("n{i}")),
                process: None,
            })
            .collect();
        let mut galera = Galera { nodes, provider, dir };
        let chown = Command::new("chown").args(["mysql:mysql"]).arg(galera.dir.path()).status();
        assert!(chown.is_ok_and(|s| s.success()), "chown the directory to mysql");
        for i in 0..3 {
            let out = Command::new("mariadb-install-db")
                .args(["--no-defaults", "--user=mysql", "--auth-root-authentication-method=normal", "--skip-test-db"])
                .arg(format!("--datadir={}", galera.nodes[i].data.display()))
                .output()
                .expect("mariadb-install-db");
            assert!(out.status.success(), "mariadb-install-db: {}", String::from_utf8_lossy(&out.stderr));
        }
        galera.spawn(0, true);
        galera.wait_synced(0);
        for i in 1..3 {
            galera.spawn(i, false);
            galera.wait_synced(i);
        }
        galera
    }

    fn spawn(&mut self, i: usize, new_cluster: bool) {
        let members: Vec<String> = self.nodes.iter().map(|n| format!("127.0.0.1:{}", n.gcomm)).collect();
        let node = &self.nodes[i];
        let data = node.data.display().to_string();
        let mut command = Command::new("/usr/sbin/mariadbd");
        command
            .args(["--no-defaults", "--user=mysql", "--bind-address=127.0.0.1"])
            .arg(format!("--datadir={data}"))
            .arg(format!("--port={}", node.port))
            .arg(format!("--socket={data}/mysqld.sock"))
            .arg(format!("--pid-file={data}/mysqld.pid"))
            .arg(format!("--log-error={data}/error.log"))
            .args(["--wsrep-on=ON", "--wsrep-cluster-name=versioned", "--wsrep-sst-method=rsync"])
            .arg(format!("--wsrep-provider={}", self.provider.display()))
            .arg(format!("--wsrep-cluster-address=gcomm://{}", members.join(",")))
            .arg(format!("--wsrep-node-address=127.0.0.1:{}", node.gcomm))
            .arg(format!("--wsrep-node-name=n{i}"))
            .arg(format!(
                "--wsrep-provider-options=base_port={};ist.recv_addr=127.0.0.1:{};gcache.size=32M",
                node.gcomm, node.ist
            ))
            .arg(format!("--wsrep-sst-receive-address=127.0.0.1:{}", node.sst))
            .args(["--binlog-format=ROW", "--innodb-autoinc-lock-mode=2", "--innodb-flush-log-at-trx-commit=0"])
            .args(["--innodb-buffer-pool-size=32M", "--max-connections=300"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if new_cluster {
            command.arg("--wsrep-new-cluster");
        }
        dies_with_the_test(&mut command);
        self.nodes[i].process = Some(command.spawn().expect("start mariadbd"));
    }

    /// Waits until node `i` is synced with its cluster and ready for clients.
    pub fn wait_synced(&self, i: usize) {
        let deadline = Instant::now() + Duration::from_secs(180);
        let port = self.nodes[i].port.to_string();
        loop {
            let out = Command::new("mariadb")
                .args(["-h", "127.0.0.1", "-P", &port, "-u", "root", "-N", "-B", "-e"])
                .arg("SHOW STATUS WHERE Variable_name IN ('wsrep_ready', 'wsrep_local_state_comment')")
                .output();
            if let Ok(out) = out {
                let status = String::from_utf8_lossy(&out.stdout);
                if status.contains("Synced") && status.contains("ON") {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "Galera node {i} did not sync; its log: {}",
                self.nodes[i].data.join("error.log").display()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The URL of node `i`'s `mysql` database (as root).
    pub fn url(&self, i: usize) -> String {
        format!("mysql://root@127.0.0.1:{}/mysql", self.nodes[i].port)
    }

    /// The pid of node `i`, while it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.nodes[i].process.as_ref().map(Child::id)
    }

    /// `kill -9` node `i`.
    pub fn kill(&mut self, i: usize) {
        kill(&mut self.nodes[i].process);
    }

    /// Sends `signal` to node `i` (`SIGSTOP`, `SIGCONT`).
    pub fn signal(&self, i: usize, sig: libc::c_int) {
        signal(self.nodes[i].process.as_ref(), sig);
    }

    /// Starts node `i` again: it rejoins the cluster (by state transfer) and syncs.
    pub fn restart(&mut self, i: usize) {
        self.spawn(i, false);
        self.wait_synced(i);
    }
}

impl Drop for Galera {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.signal(i, libc::SIGCONT);
            self.kill(i);
        }
    }
}

/// The node URLs of a cluster this process starts once, for the tests that only read and write
/// through it; `None`, with a message, without `VERSIONED_GALERA_PROVIDER`.
pub fn shared() -> Option<Vec<String>> {
    static SHARED: OnceLock<Option<Vec<String>>> = OnceLock::new();
    SHARED
        .get_or_init(|| {
            let Some(provider) = provider() else {
                eprintln!(
                    "skipped: set VERSIONED_GALERA_PROVIDER=/usr/lib/galera/libgalera_smm.so (Debian's galera-4, \
                     with rsync) to run the Galera tests"
                );
                return None;
            };
            let (sender, receiver) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let galera = Galera::start(provider);
                kill_at_exit((0..3).filter_map(|i| galera.pid(i)));
                let _ = sender.send((0..3).map(|i| galera.url(i)).collect());
                let _galera = galera;
                loop {
                    std::thread::park();
                }
            });
            Some(receiver.recv().expect("the Galera cluster started"))
        })
        .clone()
}
