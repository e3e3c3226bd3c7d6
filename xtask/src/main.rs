//! The project's commands beyond cargo's own, run as `cargo xtask <task>` (an alias in
//! `.cargo/config.toml` for `cargo run --quiet --package xtask --`).
//!
//! - `cargo xtask test [ARGS…]` is the README's test command: `cargo test --workspace
//!   --all-features [ARGS…]`, with `PROTOC` set to a protoc binary shipped in the
//!   `protoc-bin-vendored` package, and exits with its status. The `etcd` feature's client
//!   (etcd-client) generates its code with protoc when it is built, and a machine with nothing but
//!   the Rust toolchain has none. A `PROTOC` already set is left as it is.
//! - `cargo xtask protoc-path` prints the protoc that `cargo xtask test` uses (`PROTOC` if set,
//!   else the vendored one), for other commands that build the `etcd` feature:
//!   `PROTOC=$(cargo xtask protoc-path) cargo clippy --workspace --all-targets --all-features`.

use std::env;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{Command, ExitCode, ExitStatus};

/// What `cargo xtask help` prints, and what an unknown task is answered with.
const USAGE: &str = "\
usage: cargo xtask <task>

tasks:
  test [ARGS...]   cargo test --workspace --all-features [ARGS...], with PROTOC set to a vendored
                   protoc unless PROTOC is set already (extra arguments are passed through:
                   `cargo xtask test --no-run`, `cargo xtask test -- --nocapture`)
  protoc-path      print the protoc that `test` uses: $PROTOC if set, else the vendored one
  help             print this";

fn main() -> ExitCode {
    let mut args = env::args_os().skip(1);
    let task = args.next().map(|task| task.to_string_lossy().into_owned());
    match task.as_deref() {
        Some("test") => test(args.collect()),
        Some("protoc-path") => match protoc() {
            Ok(path) => {
                println!("{}", path.display());
                ExitCode::SUCCESS
            }
            Err(message) => fail(&message),
        },
        Some("help" | "-h" | "--help") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some(other) => fail(&format!("unknown task `{other}`\n\n{USAGE}")),
        None => fail(USAGE),
    }
}

/// `cargo xtask test`: runs `cargo test --workspace --all-features` followed by `extra`, with
/// `PROTOC` set (see [`protoc`]), and returns its exit status.
fn test(extra: Vec<OsString>) -> ExitCode {
    let protoc = match protoc() {
        Ok(path) => path,
        Err(message) => return fail(&message),
    };
    let mut command = Command::new(cargo());
    command.args(["test", "--workspace", "--all-features"]).args(extra).env("PROTOC", protoc);
    match command.status() {
        Ok(status) => exit_code(status),
        Err(error) => fail(&format!("could not run cargo: {error}")),
    }
}

/// The protoc for building the `etcd` feature: `PROTOC` when it is set (a protoc of the user's
/// choosing), else the binary shipped in `protoc-bin-vendored` for this platform. An error says
/// why there is none (a platform the package has no binary for, or a path that is gone).
fn protoc() -> Result<PathBuf, String> {
    if let Some(path) = env::var_os("PROTOC") {
        return Ok(PathBuf::from(path));
    }
    let path = protoc_bin_vendored::protoc_bin_path().map_err(|error| {
        format!("{error}; install protoc and set PROTOC to its path (Debian: protobuf-compiler, /usr/bin/protoc)")
    })?;
    if !path.is_file() {
        // The path was fixed when xtask was compiled: a file in cargo's registry sources.
        return Err(format!(
            "the vendored protoc is not at {} (cargo's registry sources were removed?)",
            path.display()
        ));
    }
    Ok(path)
}

/// The cargo that runs xtask (`CARGO`, set by `cargo run`), so that the tests are built by the
/// same toolchain; `cargo` from `PATH` when xtask is run some other way.
fn cargo() -> OsString {
    env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// The exit code that passes a child's exit status on: its code, or 128 + the signal that ended it
/// (as a shell reports it).
fn exit_code(status: ExitStatus) -> ExitCode {
    if let Some(code) = status.code() {
        // Exit codes are 0–255 on Unix; a wider Windows code becomes a plain failure.
        return u8::try_from(code).map_or(ExitCode::FAILURE, ExitCode::from);
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return ExitCode::from(u8::try_from(128 + signal).unwrap_or(u8::MAX));
        }
    }
    ExitCode::FAILURE
}

/// Prints `message` to stderr and returns a failing exit code.
fn fail(message: &str) -> ExitCode {
    eprintln!("xtask: {message}");
    ExitCode::from(2)
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    /// The vendored protoc runs here and finds protobuf's own `.proto` files (the etcd protos
    /// import `google/protobuf/descriptor.proto`) without an include path: what building the
    /// `etcd` feature needs of it.
    #[test]
    fn vendored_protoc_compiles_a_proto_that_imports_descriptor_proto() {
        let protoc = protoc_bin_vendored::protoc_bin_path().expect("a protoc for this platform");
        let dir = std::env::temp_dir().join(format!("xtask-protoc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("probe.proto"),
            "syntax = \"proto3\";\nimport \"google/protobuf/descriptor.proto\";\n\
             message Probe { google.protobuf.FileDescriptorProto file = 1; }\n",
        )
        .unwrap();
        let output = Command::new(&protoc)
            .arg("--proto_path")
            .arg(&dir)
            .arg("--descriptor_set_out")
            .arg(dir.join("probe.bin"))
            .arg(dir.join("probe.proto"))
            .output()
            .expect("the vendored protoc runs");
        let described = dir.join("probe.bin").is_file();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(output.status.success(), "protoc failed: {}", String::from_utf8_lossy(&output.stderr));
        assert!(described, "protoc wrote no descriptor set");
    }
}
