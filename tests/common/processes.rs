//! What the tests' own servers share (a PostgreSQL primary and replica, a Galera cluster): free
//! loopback ports, server processes that die with the test process, signals to them, and the
//! pids of a cluster a test binary shares, killed when the binary exits.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::sync::Mutex;

/// A loopback port nobody listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// Makes `command`'s process die with the thread that starts it, should the test process die
/// without stopping it (a shared cluster is started by a thread that lives as long as the process).
pub fn dies_with_the_test(command: &mut Command) -> &mut Command {
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        })
    }
}

/// `kill -9` of `process`, if it runs, and its reaping.
pub fn kill(process: &mut Option<Child>) {
    if let Some(mut child) = process.take() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Sends `signal` (`SIGSTOP`, `SIGCONT`) to `process`, if it runs.
pub fn signal(process: Option<&Child>, signal: libc::c_int) {
    if let Some(child) = process {
        unsafe { libc::kill(child.id() as libc::pid_t, signal) };
    }
}

/// The pids of the clusters this test binary shares, killed when it exits.
static SHARED: Mutex<Vec<u32>> = Mutex::new(Vec::new());

extern "C" fn kill_shared() {
    for pid in SHARED.lock().map(|p| p.clone()).unwrap_or_default() {
        // SIGCONT first: a paused process is killed all the same, but its children wake to die.
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGCONT);
            libc::kill(pid as libc::pid_t, libc::SIGKILL);
        }
    }
}

/// Kills `pids` when the test process exits.
pub fn kill_at_exit(pids: impl IntoIterator<Item = u32>) {
    let mut shared = SHARED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if shared.is_empty() {
        unsafe { libc::atexit(kill_shared) };
    }
    shared.extend(pids);
}
