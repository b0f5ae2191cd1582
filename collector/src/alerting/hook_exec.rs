//! The exec hook: runs a configured program (no shell) with the alert JSON on stdin, and
//! kills it when it outlives the hook's time limit.

use std::process::Stdio;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::alerting::delivery::HookError;
use crate::alerting::hook_config::HookConfig;

/// Runs `command args…`, writes `body` to its stdin, and waits for it to exit successfully
/// within the hook's timeout.
pub async fn run(
    hook: &HookConfig,
    command: &str,
    args: &[String],
    body: &[u8],
) -> Result<(), HookError> {
    let failure = |reason: String| HookError::Exec {
        hook: hook.name.clone(),
        command: command.to_owned(),
        reason,
    };
    let mut child = Command::new(command)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| failure(format!("cannot start: {e}")))?;
    let mut stdin = child.stdin.take();
    let work = async {
        if let Some(stdin) = stdin.as_mut() {
            // A program that exits without reading its input is not an error by itself.
            if let Err(error) = stdin.write_all(body).await {
                tracing::debug!(hook = %hook.name, %error, "exec hook did not read its input");
            }
        }
        drop(stdin.take());
        child.wait().await
    };
    match tokio::time::timeout(hook.timeout, work).await {
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(failure(format!("exited with {status}"))),
        Ok(Err(error)) => Err(failure(format!("cannot wait for it: {error}"))),
        Err(_) => {
            if let Err(error) = child.kill().await {
                tracing::warn!(hook = %hook.name, %error, "cannot kill exec hook after its timeout");
            }
            Err(failure(format!(
                "killed after its timeout of {}",
                humantime::format_duration(hook.timeout)
            )))
        }
    }
}
