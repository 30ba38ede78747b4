//! A service binary run as its own process, for what only a process shows:
//! how it answers a signal.

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// How long a test waits for the line that says the service is waiting.
const LOG_WAIT: Duration = Duration::from_secs(60);
/// How long the process may outlive SIGTERM before the test gives up on it.
const PATIENCE: Duration = Duration::from_secs(20);

/// `binary` started with `env` (added to the environment, after
/// `HTTP_PORT=0`), its log read until a line contains `waiting` (start-up is
/// blocked on something), then sent SIGTERM: how long it took to exit after
/// the signal, and its status. Panics when the line never comes or the
/// process outlives [`PATIENCE`].
async fn sigterm_while_waiting(
    binary: &str,
    env: &[(&str, &str)],
    waiting: &str,
) -> (Duration, std::process::ExitStatus) {
    let mut child: Child = Command::new(binary)
        .env("HTTP_PORT", "0")
        .envs(env.iter().copied())
        .env("LOG_FORMAT", "text")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("start {binary}: {e}"));
    let stdout = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take().expect("piped stderr");
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::channel::<String>(64);
    for stream in [
        Box::new(stdout) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
        Box::new(stderr),
    ] {
        let tx = seen_tx.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stream).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let _ = tx.send(line).await;
            }
        });
    }
    drop(seen_tx);
    let mut log = Vec::new();
    let found = tokio::time::timeout(LOG_WAIT, async {
        while let Some(line) = seen_rx.recv().await {
            let hit = line.contains(waiting);
            log.push(line);
            if hit {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    assert!(
        found,
        "{binary} never logged `{waiting}`; its log:\n{}",
        log.join("\n")
    );
    let pid = child.id().expect("running").to_string();
    let sent = Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(status.success(), "kill -TERM {pid}");
    let exited = tokio::time::timeout(PATIENCE, child.wait()).await;
    let took = sent.elapsed();
    match exited {
        Ok(status) => (took, status.expect("wait")),
        Err(_) => panic!("{binary} still running {PATIENCE:?} after SIGTERM"),
    }
}

/// The start-up signal check: `binary` (with `env`, HTTP on port 0) is sent
/// SIGTERM while it logs `waiting`, and must exit cleanly within 5 s ("at
/// once", with room for a slow, busy machine; the waits it cuts short last
/// 30 s).
pub async fn assert_sigterm_stops_startup(binary: &str, env: &[(&str, &str)], waiting: &str) {
    let (took, status) = sigterm_while_waiting(binary, env, waiting).await;
    assert!(status.success(), "exit status {status}");
    assert!(
        took < Duration::from_secs(5),
        "stopped {took:?} after SIGTERM"
    );
}
