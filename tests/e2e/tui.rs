//! The dashboard end to end: the real binary in tmux on a real SQLite file filled through
//! the storage API; keys typed with send-keys, the screen read with capture-pane.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use causeway_storage::{EncodedSpans, Store};

use crate::harness::{causeway_bin, temp_dir, wait_until};

#[path = "../../tui/tests/support/mod.rs"]
mod support;

/// How long one screen change may take to show.
const SCREEN_TIMEOUT: Duration = Duration::from_secs(15);

/// Numbers the tmux sockets of this test process.
static NEXT_SOCKET: AtomicUsize = AtomicUsize::new(0);

/// A tmux server of our own (its own socket), killed when dropped.
struct Tmux {
    socket: String,
    session: &'static str,
}

impl Tmux {
    fn start(command: &str) -> Tmux {
        let tmux = Tmux {
            // One tmux server per session: tests run in parallel threads of one process.
            socket: format!(
                "causeway-e2e-{}-{}",
                std::process::id(),
                NEXT_SOCKET.fetch_add(1, Ordering::Relaxed)
            ),
            session: "dashboard",
        };
        let output = tmux.run(&[
            "new-session",
            "-d",
            "-s",
            tmux.session,
            "-x",
            "120",
            "-y",
            "40",
            command,
        ]);
        assert!(
            output.status.success(),
            "tmux new-session failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        tmux
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("cannot run tmux (is it installed?)")
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", self.session];
        args.extend_from_slice(keys);
        let output = self.run(&args);
        assert!(output.status.success(), "tmux send-keys {keys:?} failed");
    }

    fn text(&self, text: &str) {
        let output = self.run(&["send-keys", "-t", self.session, "-l", text]);
        assert!(output.status.success(), "tmux send-keys -l {text} failed");
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", self.session]).stdout)
            .into_owned()
    }

    /// Waits until the screen satisfies `condition`; fails with the last screen otherwise.
    fn wait_for(&self, what: &str, condition: impl Fn(&str) -> bool) -> String {
        let mut last = String::new();
        let shown = wait_until(SCREEN_TIMEOUT, || {
            last = self.screen();
            condition(&last)
        });
        assert!(shown, "screen never showed {what}; last screen:\n{last}");
        last
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

async fn fill(db: &Path, flows: &[u32]) {
    let store = Store::open(db)
        .await
        .expect("cannot open the test database");
    let mut spans = Vec::new();
    for flow in flows {
        spans.extend(support::shop_flow(
            *flow,
            support::BASE_NS + i64::from(*flow) * 1_000_000_000,
        ));
    }
    store
        .write_spans(vec![EncodedSpans::encode(&spans)])
        .await
        .expect("cannot write spans");
    store.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dashboard_navigates_a_filled_database_in_tmux() {
    let dir = temp_dir();
    let db = dir.path().join("causeway.db");
    fill(&db, &[1, 2]).await;
    let command = format!(
        "env NO_COLOR=1 {} tui --db {} --refresh 200ms; echo dashboard-exit=$?; sleep 60",
        causeway_bin().display(),
        db.display()
    );
    let tmux = Tmux::start(&command);

    tmux.wait_for("both flows, newest first", |s| {
        s.find("ord-2")
            .zip(s.find("ord-1"))
            .is_some_and(|(two, one)| two < one)
    });
    let screen = tmux.screen();
    assert!(
        screen.contains("Enter open"),
        "key hints are on screen:\n{screen}"
    );

    // Live update: a flow written while the dashboard runs shows up on top.
    fill(&db, &[3]).await;
    tmux.wait_for("the new flow ord-3", |s| s.contains("ord-3"));

    // Filter by service and by correlation ID.
    tmux.keys(&["/"]);
    tmux.text("ord-2");
    tmux.wait_for("only ord-2", |s| {
        s.contains("ord-2") && !s.contains("ord-1") && !s.contains("ord-3")
    });
    tmux.keys(&["Enter"]);

    // Open the flow: graph and waterfall.
    tmux.keys(&["Enter"]);
    let flow = tmux.wait_for("the flow view", |s| {
        s.contains("waterfall") && s.contains("⟦orders⟧")
    });
    assert!(
        flow.contains("⟨shipping⟩"),
        "consumer groups are nodes:\n{flow}"
    );
    assert!(
        flow.contains("card declined"),
        "the failure is named:\n{flow}"
    );

    // The waterfall pane, down to the failed payment attempt, then its detail.
    tmux.keys(&["Tab", "j", "j", "j", "Enter"]);
    let span = tmux.wait_for("the span detail", |s| s.contains("events (1)"));
    assert!(
        span.contains("CardDeclined"),
        "the exception event is shown:\n{span}"
    );
    assert!(span.contains("links (1)"), "the link is shown:\n{span}");

    // Help, then back to the list and quit.
    tmux.keys(&["?"]);
    tmux.wait_for("the help overlay", |s| s.contains(":alerts"));
    // One Esc at a time: a terminal reads two ESC bytes in a row as one Alt+Esc.
    tmux.keys(&["Escape"]);
    tmux.wait_for("the help closed", |s| !s.contains(":alerts"));
    tmux.keys(&["Escape"]);
    tmux.wait_for("the flow view again", |s| s.contains("waterfall"));
    tmux.keys(&["Escape"]);
    tmux.wait_for("the flows list again", |s| {
        s.contains("STATUS") && s.contains("ord-2")
    });
    tmux.keys(&["q"]);
    let after = tmux.wait_for("a clean exit", |s| s.contains("dashboard-exit="));
    assert!(
        after.contains("dashboard-exit=0"),
        "the dashboard exits with 0:\n{after}"
    );
    assert!(
        !after.contains("STATUS"),
        "the alternate screen is gone after quitting:\n{after}"
    );
}

/// The pid of the `causeway` process whose command line mentions `db`.
fn dashboard_pid(db: &Path) -> Option<u32> {
    let bin = causeway_bin();
    let db = db.display().to_string();
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let args: Vec<String> = cmdline
                .split(|byte| *byte == 0)
                .map(|arg| String::from_utf8_lossy(arg).into_owned())
                .collect();
            let is_dashboard =
                args.first().is_some_and(|arg| Path::new(arg) == bin) && args.contains(&db);
            is_dashboard.then_some(pid)
        })
}

fn is_gone(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| stat.contains(") Z "))
        .unwrap_or(true)
}

#[tokio::test(flavor = "multi_thread")]
async fn dashboard_restores_the_terminal_on_sigterm_and_exits_on_hangup() {
    let dir = temp_dir();
    let db = dir.path().join("causeway.db");
    fill(&db, &[1]).await;
    let command = format!(
        "{} tui --db {}; echo dashboard-exit=$?; sleep 60",
        causeway_bin().display(),
        db.display()
    );
    let tmux = Tmux::start(&command);
    tmux.wait_for("the flows list", |s| s.contains("ord-1"));
    let pid = dashboard_pid(&db).expect("the dashboard process is running");
    let memory = crate::harness::rss_kib(pid).expect("the dashboard's RSS is readable");
    assert!(
        memory < 64 * 1024,
        "the dashboard uses {memory} KiB, over 64 MiB"
    );
    let killed = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let after = tmux.wait_for("the shell after the dashboard", |s| {
        s.contains("dashboard-exit=")
    });
    assert!(
        !after.contains("STATUS"),
        "the alternate screen is gone after SIGTERM:\n{after}"
    );
    assert!(
        wait_until(SCREEN_TIMEOUT, || is_gone(pid)),
        "the dashboard exited"
    );

    // A terminal that goes away (tmux killed: SIGHUP, then a dead pty) ends the dashboard.
    let dir = temp_dir();
    let db = dir.path().join("causeway.db");
    fill(&db, &[2]).await;
    let command = format!("{} tui --db {}", causeway_bin().display(), db.display());
    drop(tmux);
    let tmux = Tmux::start(&command);
    tmux.wait_for("the flows list", |s| s.contains("ord-2"));
    let pid = dashboard_pid(&db).expect("the dashboard process is running");
    drop(tmux);
    assert!(
        wait_until(SCREEN_TIMEOUT, || is_gone(pid)),
        "the dashboard outlived its terminal"
    );
}

#[test]
fn missing_database_is_a_clear_error_naming_the_fix() {
    let dir = temp_dir();
    let db = dir.path().join("absent.db");
    let output = Command::new(causeway_bin())
        .args(["tui", "--db"])
        .arg(&db)
        .output()
        .expect("cannot run causeway");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("does not exist"), "{stderr}");
    assert!(
        stderr.contains("causeway demo"),
        "names the command that fills it: {stderr}"
    );
    assert!(!db.exists(), "the dashboard never creates the database");
}
