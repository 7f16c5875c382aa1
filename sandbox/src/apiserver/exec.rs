//! `pods/exec` as the API server speaks it: a WebSocket upgrade of `GET
//! …/pods/NAME/exec?command=…&stdout=true&stderr=true`, subprotocol `v5.channel.k8s.io` (or
//! `v4.channel.k8s.io`), binary frames whose first byte is the channel (1 stdout, 2 stderr, 3
//! the final `Status` as JSON: `Success`, or `Failure` with reason `NonZeroExitCode` and the
//! code in `details.causes[reason=ExitCode]`; a command that cannot start is a `Failure` whose
//! message says `executable file not found in $PATH`, as the container runtime does). The
//! command runs on this machine (the demo's pod is this machine); stdin and TTY are not served.
//!
//! SPDY/3.1 (what kubectl before 1.30 speaks: a `POST` with `Upgrade: SPDY/3.1`) is served by
//! `spdy` with the same command run (`execute`): the same output and the same `Status`.

use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::SinkExt as _;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

use super::{Shared, named, not_found};

/// The subprotocols served, preferred first (the API server's order).
const PROTOCOLS: [&str; 2] = ["v5.channel.k8s.io", "v4.channel.k8s.io"];

/// Output read from the command at most (the rest is dropped): a bounded test double.
const MAX_OUTPUT: usize = 16 << 20;

pub(crate) fn status(code: StatusCode, reason: &str, message: String) -> Response {
    (
        code,
        axum::Json(serde_json::json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code.as_u16()
        })),
    )
        .into_response()
}

/// `command=a&command=b&stdout=true`: the command words, form-decoded.
fn command_of(query: &str) -> Vec<String> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| *k == "command")
        .map(|(_, v)| decode(v))
        .collect()
}

fn decode(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(x) => {
                        out.push(x);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub async fn pod_exec(
    State(s): State<Shared>,
    Path((ns, name)): Path<(String, String)>,
    mut req: Request,
) -> Response {
    let env = {
        let o = s.get().await;
        if named(&o.pods, Some(&ns), &name, |p| &p.metadata).is_none() {
            return not_found("pods", &name);
        }
        if !o.exec_local {
            return status(
                StatusCode::FORBIDDEN,
                "Forbidden",
                format!("pods \"{name}\" is forbidden: this API server does not exec in it"),
            );
        }
        o.exec_env.clone()
    };
    let cmd = command_of(req.uri().query().unwrap_or_default());
    if cmd.is_empty() {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "you must specify at least 1 command".into(),
        );
    }
    let h = req.headers();
    if h.get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_uppercase().starts_with("SPDY/"))
    {
        return super::spdy::upgrade(req, cmd, env);
    }
    let upgrade = h
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let Some(key) = h.get(header::SEC_WEBSOCKET_KEY).cloned() else {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Upgrade request required".into(),
        );
    };
    let offered: Vec<String> = h
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_owned())
        .collect();
    let Some(protocol) = PROTOCOLS
        .iter()
        .find(|p| offered.iter().any(|o| o == *p))
        .copied()
    else {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!("none of the offered subprotocols {offered:?} is served ({PROTOCOLS:?})"),
        );
    };
    if !upgrade {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Upgrade request required".into(),
        );
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let io = hyper_util::rt::TokioIo::new(upgraded);
        let mut ws = WebSocketStream::from_raw_socket(io, Role::Server, None).await;
        let _ = run(&mut ws, &cmd, &env).await;
        let _ = ws.close(None).await;
    });
    let mut r = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let h = r.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    h.insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(protocol),
    );
    r
}

/// Run `cmd`, send its output on channels 1 and 2 and the Status on channel 3.
async fn run<S>(
    ws: &mut WebSocketStream<S>,
    cmd: &[String],
    env: &[(String, String)],
) -> Result<(), String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let frame = |channel: u8, data: &[u8]| {
        let mut b = Vec::with_capacity(data.len() + 1);
        b.push(channel);
        b.extend_from_slice(data);
        Message::Binary(b.into())
    };
    let out = execute(cmd, env).await;
    for (channel, data) in [(1u8, &out.stdout), (2, &out.stderr)] {
        for chunk in data.chunks(32 * 1024) {
            ws.send(frame(channel, chunk))
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    let status = out.status;
    ws.send(frame(3, status.to_string().as_bytes()))
        .await
        .map_err(|e| e.to_string())
}

/// What a command run gave: its output (each stream capped at `MAX_OUTPUT`) and the `Status`
/// the API server sends at the end of an exec (v4 and later).
pub(super) struct Outcome {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub status: serde_json::Value,
}

/// Run `cmd` on this machine with the pod's environment on top of this process's, stdin
/// closed; a command that cannot start is a `Failure` as the container runtime words it.
pub(super) async fn execute(cmd: &[String], env: &[(String, String)]) -> Outcome {
    let mut command = tokio::process::Command::new(&cmd[0]);
    command
        .args(&cmd[1..])
        .envs(env.iter().map(|(k, v)| (k, v)));
    let out = command
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await;
    match out {
        Ok(mut o) => {
            o.stdout.truncate(MAX_OUTPUT);
            o.stderr.truncate(MAX_OUTPUT);
            let status = match o.status.code() {
                Some(0) => serde_json::json!({"metadata": {}, "status": "Success"}),
                code => serde_json::json!({
                    "metadata": {}, "status": "Failure",
                    "message": format!("command terminated with non-zero exit code: exit status {}", code.unwrap_or(-1)),
                    "reason": "NonZeroExitCode",
                    "details": {"causes": [{"reason": "ExitCode", "message": code.unwrap_or(-1).to_string()}]}
                }),
            };
            Outcome {
                stdout: o.stdout,
                stderr: o.stderr,
                status,
            }
        }
        Err(e) => Outcome {
            stdout: Vec::new(),
            stderr: Vec::new(),
            status: serde_json::json!({
                "metadata": {}, "status": "Failure",
                "message": if e.kind() == std::io::ErrorKind::NotFound {
                    format!("exec: \"{}\": executable file not found in $PATH", cmd[0])
                } else {
                    format!("exec: \"{}\": {e}", cmd[0])
                },
                "reason": "InternalError", "code": 500
            }),
        },
    }
}

/// `stdin=true` in the query (`name=true` or `name=1`, as the API server's decoder takes).
pub(super) fn flag(query: &str, name: &str) -> bool {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .any(|(k, v)| k == name && (v == "true" || v == "1"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_is_form_decoded() {
        assert_eq!(
            super::command_of("command=ccctl&command=-o&command=a%20b+c&stdout=true&command=%zz"),
            ["ccctl", "-o", "a b c", "%zz"]
        );
    }
}
