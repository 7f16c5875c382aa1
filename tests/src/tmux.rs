//! [`Tmux`]: the dashboard tests' terminal.

use std::process::Command;
use std::time::{Duration, Instant};

/// A program in a real pseudo-terminal: a detached tmux session on its own tmux server, read
/// with `capture-pane` and driven with `send-keys`; the server is killed when dropped.
pub struct Tmux(String);

impl Tmux {
    /// A detached session `t` of `w`×`h` running `cmd` on its own tmux server `name`.
    pub fn start(name: String, w: u16, h: u16, cmd: &str) -> Tmux {
        let t = Tmux(name);
        let (w, h) = (w.to_string(), h.to_string());
        let out = t.tmux(&["new-session", "-d", "-s", "t", "-x", &w, "-y", &h, cmd]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        t
    }
    pub fn tmux(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .args(["-L", &self.0])
            .args(args)
            .output()
            .expect("tmux is needed for this test (scripts/test installs it)")
    }
    pub fn screen(&self) -> String {
        String::from_utf8_lossy(&self.tmux(&["capture-pane", "-p", "-t", "t"]).stdout).into_owned()
    }
    pub fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "t"];
        args.extend(keys);
        self.tmux(&args);
    }
    #[track_caller]
    pub fn wait_for(&self, what: &str, timeout: Duration) -> String {
        self.wait_until(&format!("'{what}'"), timeout, |s| s.contains(what))
    }
    /// The screen once `done` holds for it (a screen caught mid-redraw just waits for the
    /// next capture); `what` names the wait in the failure.
    #[track_caller]
    pub fn wait_until(&self, what: &str, timeout: Duration, done: impl Fn(&str) -> bool) -> String {
        let t = Instant::now();
        loop {
            let s = self.screen();
            if done(&s) {
                return s;
            }
            assert!(
                t.elapsed() < timeout,
                "{what} not on screen within {timeout:?}:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    pub fn alive(&self) -> bool {
        self.tmux(&["has-session", "-t", "t"]).status.success()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
    }
}
