//! A 3-member etcd cluster on free loopback ports in a temporary directory, for the etcd tests:
//! started from Debian's `etcd` (package `etcd-server`), stopped by pid when dropped, and, for the
//! cluster the conformance tests share, when the test process exits.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use versioned::{EtcdOptions, EtcdStorage, Store};

/// The limits the test clusters run with (and that an existing cluster named by
/// `VERSIONED_ETCD_ENDPOINTS` must allow).
pub const MAX_TXN_OPS: usize = 10_000;
pub const MAX_REQUEST_BYTES: usize = 10 << 20;

/// One member: its ports and, while it runs, its process.
struct Member {
    name: String,
    client: u16,
    peer: u16,
    process: Option<Child>,
}

/// A running cluster.
pub struct Cluster {
    members: Vec<Member>,
    token: String,
    dir: tempfile::TempDir,
    binary: PathBuf,
}

/// A loopback port nobody listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// The etcd binary: `VERSIONED_ETCD_BIN`, else `etcd` on the PATH. `None` when neither is there.
pub fn binary() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("VERSIONED_ETCD_BIN") {
        return Some(PathBuf::from(path));
    }
    std::env::var_os("PATH")?.to_str()?.split(':').map(|dir| PathBuf::from(dir).join("etcd")).find(|p| p.is_file())
}

impl Cluster {
    /// Starts `n` members and waits until they serve.
    pub fn start(binary: PathBuf, n: usize) -> Cluster {
        let members =
            (0..n).map(|i| Member { name: format!("m{i}"), client: free_port(), peer: free_port(), process: None });
        let mut cluster = Cluster {
            members: members.collect(),
            token: format!("versioned-{}", uuid::Uuid::new_v4().simple()),
            dir: tempfile::tempdir().expect("a temporary directory"),
            binary,
        };
        for i in 0..n {
            cluster.spawn(i);
        }
        cluster.wait_healthy();
        cluster
    }

    fn spawn(&mut self, i: usize) {
        let initial: Vec<String> =
            self.members.iter().map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer)).collect();
        let member = &self.members[i];
        let data = self.dir.path().join(&member.name);
        let log = std::fs::File::create(self.dir.path().join(format!("{}.log", member.name))).expect("a log file");
        let client = format!("http://127.0.0.1:{}", member.client);
        let peer = format!("http://127.0.0.1:{}", member.peer);
        let mut command = Command::new(&self.binary);
        command
            .args(["--name", &member.name, "--data-dir"])
            .arg(&data)
            .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &initial.join(","), "--initial-cluster-token", &self.token])
            .args(["--initial-cluster-state", "new"])
            // Elections in about half a second, as on a quiet LAN.
            .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
            // Room for the conformance suite's batches of 1,234 records in one transaction: etcd's
            // defaults are 128 operations and 1.5 MiB per request.
            .args(["--max-txn-ops", &MAX_TXN_OPS.to_string(), "--max-request-bytes", &MAX_REQUEST_BYTES.to_string()])
            .args(["--logger", "zap", "--log-level", "warn"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        // Killed with the thread that started it, should this process die without dropping the
        // cluster (the shared cluster is started by a thread that lives as long as the process).
        unsafe {
            use std::os::unix::process::CommandExt;
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let process = command.spawn().unwrap_or_else(|e| panic!("cannot start {}: {e}", self.binary.display()));
        self.members[i].process = Some(process);
    }

    /// The client URLs of every member.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| format!("http://127.0.0.1:{}", m.client)).collect()
    }

    /// The pid of member `i`, while it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.members[i].process.as_ref().map(Child::id)
    }

    /// `kill -9` member `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut process) = self.members[i].process.take() {
            let _ = process.kill(); // SIGKILL, by pid
            let _ = process.wait();
        }
    }

    /// Starts member `i` again on its data directory.
    pub fn restart(&mut self, i: usize) {
        self.spawn(i);
    }

    /// Waits until every running member answers as part of a cluster with a leader.
    pub fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let running: Vec<String> = self
            .members
            .iter()
            .filter(|m| m.process.is_some())
            .map(|m| format!("http://127.0.0.1:{}", m.client))
            .collect();
        // On a thread of its own: the caller may be inside a runtime (a test that restarts a member).
        let dir = self.dir.path().display().to_string();
        std::thread::scope(|scope| {
            scope.spawn(|| self.poll_healthy(&running, deadline, &dir)).join().expect("the health check");
        });
    }

    fn poll_healthy(&self, running: &[String], deadline: Instant, dir: &str) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        runtime.block_on(async {
            loop {
                let mut healthy = 0;
                for endpoint in running {
                    if leader_seen_by(endpoint).await.is_some() {
                        healthy += 1;
                    }
                }
                if healthy == running.len() {
                    return;
                }
                assert!(Instant::now() < deadline, "the etcd cluster did not come up; logs in {dir}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
    }

    /// The index of the member that leads now.
    pub async fn leader(&self) -> usize {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            for (i, member) in self.members.iter().enumerate() {
                if member.process.is_none() {
                    continue;
                }
                let endpoint = format!("http://127.0.0.1:{}", member.client);
                if let Some((leader, me)) = leader_seen_by(&endpoint).await
                    && leader == me
                {
                    return i;
                }
            }
            assert!(Instant::now() < deadline, "no etcd member leads");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// How many terms (elections) the cluster has been through, as the member at `i` tells.
    pub async fn term(&self, i: usize) -> u64 {
        let endpoint = format!("http://127.0.0.1:{}", self.members[i].client);
        let member = member(&endpoint, Duration::from_secs(2)).await.expect("connect");
        member.client().clone().status().await.expect("status").raft_term()
    }
}

/// A connection to one member only.
async fn member(endpoint: &str, timeout: Duration) -> versioned::Result<EtcdStorage> {
    EtcdStorage::connect(EtcdOptions::new(endpoint).request_timeout(timeout).connect_timeout(timeout)).await
}

/// (the leader's id, this member's id) as member `endpoint` sees them; `None` without a leader
/// or an answer.
async fn leader_seen_by(endpoint: &str) -> Option<(u64, u64)> {
    let member = member(endpoint, Duration::from_millis(500)).await.ok()?;
    let status = member.client().clone().status().await.ok()?;
    let me = status.header().map_or(0, |h| h.member_id());
    (status.leader() != 0).then_some((status.leader(), me))
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}

/// The pids of the shared cluster, killed when the test process exits.
static SHARED_PIDS: Mutex<Vec<u32>> = Mutex::new(Vec::new());

extern "C" fn kill_shared_cluster() {
    for pid in SHARED_PIDS.lock().map(|p| p.clone()).unwrap_or_default() {
        // SIGKILL by pid; the temporary directory is left to the OS's /tmp cleaning.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
    }
}

/// The endpoints the conformance tests use: `VERSIONED_ETCD_ENDPOINTS` (a comma-separated list),
/// else a cluster this process starts once. `None`, with a message, when neither is possible.
pub fn shared_endpoints() -> Option<Vec<String>> {
    static SHARED: OnceLock<Option<Vec<String>>> = OnceLock::new();
    SHARED
        .get_or_init(|| {
            if let Ok(list) = std::env::var("VERSIONED_ETCD_ENDPOINTS") {
                return Some(list.split(',').map(str::to_owned).collect());
            }
            let Some(binary) = binary() else {
                eprintln!(
                    "skipped: no etcd here; install Debian's etcd-server, set VERSIONED_ETCD_BIN, or set \
                     VERSIONED_ETCD_ENDPOINTS=http://127.0.0.1:2379,… to run it"
                );
                return None;
            };
            // Started by a thread that lives as long as the process (see `spawn`).
            let (sender, receiver) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let cluster = Cluster::start(binary, 3);
                SHARED_PIDS.lock().expect("pids").extend((0..3).filter_map(|i| cluster.pid(i)));
                unsafe { libc::atexit(kill_shared_cluster) };
                let _ = sender.send(cluster.endpoints());
                // Keep the cluster (and this thread) until the process exits.
                let _cluster = cluster;
                loop {
                    std::thread::park();
                }
            });
            Some(receiver.recv().expect("the etcd cluster started"))
        })
        .clone()
}

/// A store of its own on the shared cluster: a key prefix no other test uses.
pub async fn store() -> Option<Store<EtcdStorage>> {
    let endpoints = shared_endpoints()?;
    let options = EtcdOptions::from_list(&endpoints.join(","))
        .expect("endpoints")
        .prefix(format!("test/{}/", uuid::Uuid::new_v4().simple()))
        .max_txn_ops(MAX_TXN_OPS)
        .max_request_bytes(MAX_REQUEST_BYTES);
    let storage = EtcdStorage::connect(options).await.expect("connect to etcd");
    // Fail loudly, not later, when the cluster is configured but unreachable.
    storage
        .client()
        .clone()
        .status()
        .await
        .unwrap_or_else(|e| panic!("etcd at {} is configured but unreachable: {e}", endpoints.join(",")));
    Some(Store::new(storage))
}
