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

/// The subprotocols served.
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
    let (env, cut) = {
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
        (o.exec_env.clone(), o.exec_cut_before_status)
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
    let wanted = match streams(req.uri().query().unwrap_or_default()) {
        Ok(w) => w,
        Err(r) => return *r,
    };
    let h = req.headers();
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
    // As the API server (1.30 and later) chooses: an offer that includes v5 goes to its stream
    // translator, which serves v5 alone (wherever v5 is in the list); any other offer is
    // proxied to the kubelet, whose wsstream handshake takes the first of the client's offers
    // it serves. This double serves v4 there, not the kubelet's older v1–v3 or unnamed
    // protocols: such an offer gets `403 Forbidden` with an empty body, as
    // golang.org/x/net/websocket answers a failed handshake.
    let protocol = if offered.iter().any(|o| o == PROTOCOLS[0]) {
        PROTOCOLS[0]
    } else if offered.iter().any(|o| o == PROTOCOLS[1]) {
        PROTOCOLS[1]
    } else {
        return StatusCode::FORBIDDEN.into_response();
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
        let _ = run(&mut ws, &cmd, &env, wanted, cut).await;
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
    (want_stdout, want_stderr): (bool, bool),
    cut_before_status: bool,
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
    // As the API server's remotecommand does: an empty message on the lowest writable
    // channel first, telling the client the connection is established.
    let first = if want_stdout { 1 } else { 2 };
    ws.send(frame(first, &[]))
        .await
        .map_err(|e| e.to_string())?;
    let out = execute(cmd, env).await;
    // Only the streams asked for (`stdout=false`: its output is not sent).
    let asked = [
        (1u8, &out.stdout, want_stdout),
        (2, &out.stderr, want_stderr),
    ];
    for (channel, data) in asked.iter().filter(|a| a.2).map(|a| (a.0, a.1)) {
        for chunk in data.chunks(32 * 1024) {
            ws.send(frame(channel, chunk))
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    if cut_before_status {
        return Ok(());
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

/// The streams an exec asks for (`stdout`, `stderr`), as the API server checks them: at least
/// one; stdin and TTY are not served by this double (refused, not ignored).
pub(super) fn streams(query: &str) -> Result<(bool, bool), Box<Response>> {
    let refuse = |m: &str| Box::new(status(StatusCode::BAD_REQUEST, "BadRequest", m.into()));
    if flag(query, "stdin") || flag(query, "tty") {
        return Err(refuse(
            "stdin and TTY are not served by this API server: pods/exec runs the command with \
             stdout and stderr only (kubectl exec without -i and -t)",
        ));
    }
    let (out, err) = (flag(query, "stdout"), flag(query, "stderr"));
    if !out && !err {
        return Err(refuse(
            "you must specify at least 1 of stdin, stdout, stderr",
        ));
    }
    Ok((out, err))
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
    use futures::StreamExt as _;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

    use super::{HeaderValue, Message, StatusCode, WebSocketStream, header};

    type Handshake = Result<
        (
            WebSocketStream<tokio::net::TcpStream>,
            tokio_tungstenite::tungstenite::handshake::client::Response,
        ),
        tokio_tungstenite::tungstenite::Error,
    >;

    /// The WebSocket handshake of an exec of `sh -c script` offering `protocols`, against a
    /// double with one pod (returned too: it serves as long as it lives).
    async fn handshake(protocols: &str, script: &str) -> (super::super::ApiServer, Handshake) {
        handshake_with(protocols, script, "stdout=true&stderr=true").await
    }

    /// The same asking for the `streams` given (the query's `stdout=…&stderr=…`).
    async fn handshake_with(
        protocols: &str,
        script: &str,
        streams: &str,
    ) -> (super::super::ApiServer, Handshake) {
        let mut pod = k8s_openapi::api::core::v1::Pod::default();
        pod.metadata.name = Some("signer-0".into());
        pod.metadata.namespace = Some("chamber".into());
        let api = super::super::ApiServer::start(super::super::Objects {
            pods: vec![pod],
            exec_local: true,
            ..Default::default()
        })
        .await;
        let script: String = script.bytes().map(|b| format!("%{b:02X}")).collect();
        let mut req = format!(
            "ws://127.0.0.1:{}/api/v1/namespaces/chamber/pods/signer-0/exec?command=sh&command=-c&command={script}&{streams}",
            api.port
        )
        .into_client_request()
        .unwrap();
        req.headers_mut().insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_str(protocols).unwrap(),
        );
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", api.port))
            .await
            .unwrap();
        (api, tokio_tungstenite::client_async(req, tcp).await)
    }

    /// A client that offers only `v4.channel.k8s.io` (kube before v5, client-go before 1.30)
    /// gets v4: the output on channels 1 and 2, then the Status with the exit code on 3.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_v4_only_client_gets_v4_with_the_status_on_channel_3() {
        let (_api, r) = handshake("v4.channel.k8s.io", "echo out; echo err >&2; exit 5").await;
        let (mut ws, response) = r.unwrap();
        assert_eq!(
            response.headers()[header::SEC_WEBSOCKET_PROTOCOL],
            "v4.channel.k8s.io"
        );
        let mut frames = Vec::new();
        while let Some(Ok(m)) = ws.next().await {
            if let Message::Binary(b) = m {
                frames.push((b[0], String::from_utf8_lossy(&b[1..]).into_owned()));
            }
        }
        // The empty message that says the connection is established, then the output.
        assert_eq!(frames[0], (1, String::new()));
        assert_eq!(frames[1], (1, "out\n".to_owned()));
        assert_eq!(frames[2], (2, "err\n".to_owned()));
        assert_eq!(frames.len(), 4, "{frames:?}");
        let status: serde_json::Value = serde_json::from_str(&frames[3].1).unwrap();
        assert_eq!(frames[3].0, 3);
        assert_eq!(status["status"], "Failure");
        assert_eq!(status["reason"], "NonZeroExitCode");
        assert_eq!(status["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(status["details"]["causes"][0]["message"], "5");
    }

    /// Only the streams asked for are sent; none asked for, or stdin/TTY (not served), is a
    /// 400 before any upgrade.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn only_the_streams_asked_for_are_sent() {
        let (_api, r) = handshake_with(
            "v5.channel.k8s.io",
            "echo out; echo err >&2",
            "stdout=true&stderr=false",
        )
        .await;
        let (mut ws, _) = r.unwrap();
        let mut channels = Vec::new();
        while let Some(Ok(m)) = ws.next().await {
            if let Message::Binary(b) = m {
                channels.push(b[0]);
            }
        }
        assert_eq!(channels, [1, 1, 3]);
        for streams in [
            "stdout=false&stderr=false",
            "stdout=true&stdin=true",
            "stdout=1&tty=1",
        ] {
            match handshake_with("v5.channel.k8s.io", "true", streams).await.1 {
                Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
                    assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{streams}")
                }
                other => panic!(
                    "{streams}: expected 400, got {:?}",
                    other.map(|(_, r)| r.status())
                ),
            }
        }
    }

    /// As the API server chooses: an offer with v5 anywhere gets v5 (its stream translator
    /// serves v5 alone); one without v5 gets v4; one with neither is refused with 403 here (the
    /// kubelet's v1–v3 are not served by this double).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn v5_when_offered_else_v4_else_403() {
        for (offer, chosen) in [
            ("v5.channel.k8s.io, v4.channel.k8s.io", "v5.channel.k8s.io"),
            ("v4.channel.k8s.io, v5.channel.k8s.io", "v5.channel.k8s.io"),
            ("v3.channel.k8s.io, v4.channel.k8s.io", "v4.channel.k8s.io"),
        ] {
            let (_api, r) = handshake(offer, "true").await;
            let (_ws, response) = r.unwrap();
            assert_eq!(
                response.headers()[header::SEC_WEBSOCKET_PROTOCOL],
                chosen,
                "{offer}"
            );
        }
        match handshake("v3.channel.k8s.io, channel.k8s.io", "true")
            .await
            .1
        {
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
                assert_eq!(r.status(), StatusCode::FORBIDDEN)
            }
            other => panic!("expected 403, got {:?}", other.map(|(_, r)| r.status())),
        }
    }

    #[test]
    fn the_command_is_form_decoded() {
        assert_eq!(
            super::command_of("command=ccctl&command=-o&command=a%20b+c&stdout=true&command=%zz"),
            ["ccctl", "-o", "a b c", "%zz"]
        );
    }
}
