//! An HTTP server that answers like the Kubernetes API server for the few endpoints `ccctl`
//! reads (pods, pod logs, nodes, DaemonSets, events), with objects built from k8s-openapi
//! types, on loopback; plus a kubeconfig pointing at it. The real `kube` client talks to it:
//! the tests' Kubernetes API, and `ccctl demo`'s cluster view.
//!
//! kubectl (1.20, the tests' proof of conformance) talks to it too: it answers discovery
//! (`discovery`), server-side Tables for `kubectl get` (`table`), lists in a namespace and
//! across all, namespaces, equality label and field selectors (`describe`'s
//! `involvedObject.name=…,involvedObject.namespace=…,involvedObject.uid=…`). Whatever it does
//! not serve answers as the API server does: a 404 `Status`, 405 for a verb a served path does
//! not take (`watch` included). `pods/exec` is served over WebSocket (`exec`) and SPDY/3.1
//! (`spdy`, kubectl 1.20's).

mod discovery;
mod exec;
mod proxy;
mod spdy;
mod table;

use table::now;

pub(crate) use exec::status as exec_status;

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EmptyDirVolumeSource, Event, Namespace, NamespaceStatus, Node,
    ObjectReference, Pod, PodSpec, PodStatus, ResourceRequirements, Volume,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

#[derive(Debug, Default, Clone)]
pub struct Objects {
    pub pods: Vec<Pod>,
    pub nodes: Vec<Node>,
    pub daemonsets: Vec<DaemonSet>,
    pub events: Vec<Event>,
    /// Pod log text by (namespace, pod name); a pod without an entry has an empty log.
    pub logs: std::collections::BTreeMap<(String, String), String>,
    /// Pod logs read from a file at each request (the demo's live log), by (namespace, pod).
    pub log_files: std::collections::BTreeMap<(String, String), std::path::PathBuf>,
    /// Serve `pods/exec` (WebSocket, `v5`/`v4.channel.k8s.io`) by running the command on this
    /// machine; otherwise 403. The demo's pod is this machine.
    pub exec_local: bool,
    /// The exec'd command's environment on top of this process's (the pod's: `PATH`,
    /// `CCCTL_*`).
    pub exec_env: Vec<(String, String)>,
    /// End each WebSocket exec after its output, without the `Status` (a connection cut
    /// before the end: the command's outcome is then not known).
    pub exec_cut_before_status: bool,
    /// `pods/proxy`: where each (namespace, pod, port) answers (the demo: its enclave's API
    /// and metrics). A port without an entry is refused, as a pod port nobody listens on.
    pub proxies: std::collections::BTreeMap<(String, String, u16), cc_proto::Address>,
    /// Resources the user may not read (RBAC), as `resource` or `resource/subresource`
    /// (`nodes`, `daemonsets`, `events`, `pods/proxy`, `pods/log`): answered 403 with the API
    /// server's `Status`.
    pub forbidden: Vec<&'static str>,
}

/// RBAC for [`Objects::forbidden`]: the resource (or `resource/subresource`) a request path
/// names, refused as the API server words it (`pods "p" is forbidden: User "test" cannot get
/// resource "pods/proxy" in API group "" in the namespace "ns"`).
async fn rbac(
    axum::extract::State(s): axum::extract::State<Shared>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let path = req.uri().path().to_owned();
    let seg: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (group, rest) = match seg.as_slice() {
        ["api", "v1", rest @ ..] => ("", rest),
        ["apis", group, _version, rest @ ..] => (*group, rest),
        _ => return next.run(req).await,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some(*ns), rest),
        rest => (None, rest),
    };
    let (Some(resource), name, sub) = (rest.first(), rest.get(1), rest.get(2)) else {
        return next.run(req).await;
    };
    let full = match sub {
        Some(sub) => format!("{resource}/{sub}"),
        None => (*resource).to_owned(),
    };
    let refused = s
        .objects
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .forbidden
        .contains(&full.as_str());
    if !refused {
        return next.run(req).await;
    }
    let verb = if name.is_some() { "get" } else { "list" };
    let scope = match namespace {
        Some(ns) => format!("in the namespace \"{ns}\""),
        None => "at the cluster scope".to_owned(),
    };
    let subject = match name {
        Some(n) => format!("{resource} \"{n}\""),
        None => (*resource).to_owned(),
    };
    let mut details = serde_json::json!({"kind": resource});
    if let Some(n) = name {
        details["name"] = (*n).into();
    }
    if !group.is_empty() {
        details["group"] = group.into();
    }
    (
        StatusCode::FORBIDDEN,
        Json(serde_json::json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "reason": "Forbidden", "code": 403, "details": details,
            "message": format!(
                "{subject} is forbidden: User \"test\" cannot {verb} resource \"{full}\" in API group \"{group}\" {scope}"
            )})),
    )
        .into_response()
}

pub struct ApiServer {
    pub port: u16,
    pub objects: Arc<Mutex<Objects>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn not_found(kind: &str, name: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(serde_json::json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": format!("{kind} \"{name}\" not found"), "reason": "NotFound",
            "details": {"name": name, "kind": kind}, "code": 404
        })),
    )
        .into_response()
}

fn named<'a, T>(
    items: &'a [T],
    ns: Option<&str>,
    name: &str,
    meta: impl Fn(&T) -> &ObjectMeta,
) -> Option<&'a T> {
    items.iter().find(|o| {
        let m = meta(o);
        m.name.as_deref() == Some(name) && (ns.is_none() || m.namespace.as_deref() == ns)
    })
}

/// Objects plus the delay every answer waits (to measure fleet concurrency).
#[derive(Clone)]
pub struct Shared {
    objects: Arc<Mutex<Objects>>,
    latency: std::time::Duration,
}

impl Shared {
    async fn get(&self) -> std::sync::MutexGuard<'_, Objects> {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        self.objects.lock().unwrap_or_else(|e| e.into_inner())
    }
}

async fn pod(
    State(s): State<Shared>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<Params>,
    headers: HeaderMap,
) -> Response {
    let o = s.get().await;
    match named(&o.pods, Some(&ns), &name, |p| &p.metadata) {
        Some(p) => one(p, &headers, &q),
        None => not_found("pods", &name),
    }
}

/// `GET .../pods/NAME/log?tailLines=N`: plain text, as the API server answers it.
async fn pod_log(
    State(s): State<Shared>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<Params>,
) -> Response {
    let o = s.get().await;
    let Some(pod) = named(&o.pods, Some(&ns), &name, |p| &p.metadata) else {
        return not_found("pods", &name);
    };
    // `container=NAME` (kubectl always sends it): one of the pod's containers. The double keeps
    // one log per pod, which is that container's.
    if let Some(c) = q.get("container")
        && !pod
            .spec
            .iter()
            .flat_map(|s| s.containers.iter())
            .any(|k| &k.name == c)
    {
        return bad_request(format!("container {c} is not valid for pod {name}"));
    }
    let key = (ns, name);
    let file = o.log_files.get(&key).cloned();
    // Bytes that are not UTF-8 are replaced (U+FFFD), as the API server does; the rest of the
    // log is served. `read` is where the file was read up to (for `follow`).
    let (text, read) = match &file {
        Some(path) => {
            let bytes = std::fs::read(path).unwrap_or_default();
            let read = bytes.len() as u64;
            (String::from_utf8_lossy(&bytes).into_owned(), read)
        }
        None => {
            let text = o.logs.get(&key).cloned().unwrap_or_default();
            let read = text.len() as u64;
            (text, read)
        }
    };
    drop(o);
    let lines: Vec<&str> = text.lines().collect();
    let tail = q
        .get("tailLines")
        .and_then(|t| t.parse::<usize>().ok())
        .unwrap_or(lines.len());
    let mut out = lines[lines.len().saturating_sub(tail)..].join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    // `follow=true` on a file: keep the answer open and send what is appended, as the API
    // server does (the stream ends when the file shrinks, i.e. was replaced).
    if q.get("follow").is_some_and(|v| v == "true")
        && let Some(path) = file
    {
        use futures::StreamExt as _;
        let first = axum::body::Bytes::from(out);
        let appended = futures::stream::unfold(read, move |pos| {
            let path = path.clone();
            async move {
                loop {
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    let len = tokio::fs::metadata(&path).await.map(|m| m.len()).ok()?;
                    if len < pos {
                        return None;
                    }
                    if len > pos {
                        use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
                        let mut f = tokio::fs::File::open(&path).await.ok()?;
                        f.seek(std::io::SeekFrom::Start(pos)).await.ok()?;
                        let mut buf = vec![0u8; (len - pos).min(1 << 20) as usize];
                        f.read_exact(&mut buf).await.ok()?;
                        let next = pos + buf.len() as u64;
                        return Some((Ok::<_, std::io::Error>(axum::body::Bytes::from(buf)), next));
                    }
                }
            }
        });
        let stream = futures::stream::once(async move { Ok(first) }).chain(appended);
        return (
            [("content-type", "text/plain")],
            axum::body::Body::from_stream(stream),
        )
            .into_response();
    }
    ([("content-type", "text/plain")], out).into_response()
}

async fn node(
    State(s): State<Shared>,
    Path(name): Path<String>,
    Query(q): Query<Params>,
    headers: HeaderMap,
) -> Response {
    let o = s.get().await;
    match named(&o.nodes, None, &name, |n| &n.metadata) {
        Some(n) => one(n, &headers, &q),
        None => not_found("nodes", &name),
    }
}

async fn daemonset(
    State(s): State<Shared>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<Params>,
    headers: HeaderMap,
) -> Response {
    let o = s.get().await;
    match named(&o.daemonsets, Some(&ns), &name, |d| &d.metadata) {
        Some(d) => one(d, &headers, &q),
        None => not_found("daemonsets.apps", &name),
    }
}

/// One requirement of a selector: `key=value` / `key==value` (`eq`), `key!=value`; for labels
/// also `key` (exists) and `!key` (does not), which have no value.
#[derive(Debug, Clone, PartialEq)]
enum Requirement {
    Eq(String, String),
    Ne(String, String),
    Exists(String),
    Absent(String),
}

/// Split at unescaped `sep` (`\` escapes, as in field selector values).
fn split_unescaped(s: &str, sep: char) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut escaped = false;
    for c in s.chars() {
        let last = parts.last_mut().expect("one part");
        if escaped {
            last.push('\\');
            last.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            parts.push(String::new());
        } else {
            last.push(c);
        }
    }
    if escaped {
        parts.last_mut().expect("one part").push('\\');
    }
    parts
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            c => out.push(c),
        }
    }
    out
}

/// An equality-based selector as the API server parses `labelSelector` and `fieldSelector`:
/// comma-separated requirements (`a=b,c==d,e!=f`; `\,` and `\=` escape in field values).
/// `Err` is the API server's message for a requirement that does not parse.
fn selector(sel: &str) -> Result<Vec<Requirement>, String> {
    let mut out = Vec::new();
    for part in split_unescaped(sel, ',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        // The first unescaped operator: `!=`, `==` or `=`.
        let b = part.as_bytes();
        let mut i = 0;
        let mut op = None;
        while i < b.len() {
            match b[i] {
                b'\\' => i += 1,
                b'!' if b.get(i + 1) == Some(&b'=') => {
                    op = Some((i, 2, false));
                    break;
                }
                b'=' => {
                    let len = if b.get(i + 1) == Some(&b'=') { 2 } else { 1 };
                    op = Some((i, len, true));
                    break;
                }
                _ => {}
            }
            i += 1;
        }
        if part.contains(['(', ')']) || (op.is_none() && part.split_whitespace().nth(1).is_some()) {
            // `k in (a,b)`, `k notin (…)`: set-based requirements, which the double does not
            // evaluate; refused rather than answered wrong.
            return Err(format!(
                "unable to parse requirement: {part:?}: only equality-based selectors are served"
            ));
        }
        out.push(match op {
            Some((at, len, eq)) => {
                let key = part[..at].trim().to_owned();
                let value = unescape(part[at + len..].trim());
                if key.is_empty() {
                    return Err(format!(
                        "invalid selector: '{sel}'; can't understand '{part}'"
                    ));
                }
                if eq {
                    Requirement::Eq(key, value)
                } else {
                    Requirement::Ne(key, value)
                }
            }
            None => match part.strip_prefix('!') {
                Some(k) => Requirement::Absent(k.trim().to_owned()),
                None => Requirement::Exists(part.to_owned()),
            },
        });
    }
    Ok(out)
}

impl Requirement {
    fn key(&self) -> &str {
        match self {
            Requirement::Eq(k, _)
            | Requirement::Ne(k, _)
            | Requirement::Exists(k)
            | Requirement::Absent(k) => k,
        }
    }

    /// Whether the object's value for the key (empty when it has none) satisfies this.
    fn holds(&self, value: &str) -> bool {
        match self {
            Requirement::Eq(_, v) => value == v,
            Requirement::Ne(_, v) => value != v,
            Requirement::Exists(_) => !value.is_empty(),
            Requirement::Absent(_) => value.is_empty(),
        }
    }
}

/// Whether every requirement holds for the object whose value for a key is `value(key)`.
fn matches(reqs: &[Requirement], value: impl Fn(&str) -> String) -> bool {
    reqs.iter().all(|r| r.holds(&value(r.key())))
}

fn bad_request(message: String) -> Response {
    exec_status(StatusCode::BAD_REQUEST, "BadRequest", message)
}

/// The `labelSelector` requirements of a list request (labels: a missing label is absent).
fn label_filter(q: &Params) -> Result<impl Fn(&ObjectMeta) -> bool + use<>, String> {
    let reqs = selector(q.get("labelSelector").map_or("", String::as_str))?;
    Ok(move |m: &ObjectMeta| {
        matches(&reqs, |k| {
            m.labels
                .as_ref()
                .and_then(|l| l.get(k))
                .cloned()
                .unwrap_or_default()
        })
    })
}

/// The fields an Event offers to field selectors (the API server's set for events).
fn event_field(e: &Event, field: &str) -> Option<String> {
    let o = &e.involved_object;
    let s = |v: &Option<String>| v.clone().unwrap_or_default();
    Some(match field {
        "metadata.name" => s(&e.metadata.name),
        "metadata.namespace" => s(&e.metadata.namespace),
        "involvedObject.kind" => s(&o.kind),
        "involvedObject.namespace" => s(&o.namespace),
        "involvedObject.name" => s(&o.name),
        "involvedObject.uid" => s(&o.uid),
        "involvedObject.apiVersion" => s(&o.api_version),
        "involvedObject.resourceVersion" => s(&o.resource_version),
        "involvedObject.fieldPath" => s(&o.field_path),
        "reason" => s(&e.reason),
        "reportingComponent" => s(&e.reporting_component),
        "source" => e
            .source
            .as_ref()
            .and_then(|src| src.component.clone())
            .unwrap_or_default(),
        "type" => s(&e.type_),
        _ => return None,
    })
}

/// Whether an object is in the request's namespace (a request without one lists all, as
/// `kubectl get -A` asks).
fn in_namespace(m: &ObjectMeta, ns: &Option<Path<String>>) -> bool {
    ns.as_ref()
        .is_none_or(|Path(ns)| m.namespace.as_deref() == Some(ns.as_str()))
}

type Params = std::collections::HashMap<String, String>;

/// A `*List` of the objects, as the API server answers a list (`limit` is honoured by answering
/// everything in one page, which the API server may do), or their Table when the client asks
/// for one (kubectl's `get`).
fn list<T>(items: Vec<T>, headers: &HeaderMap, q: &Params) -> Response
where
    T: k8s_openapi::ListableResource + table::Printed,
{
    // `watch` is not served (discovery does not list the verb): refused as the API server
    // refuses a verb a resource does not take.
    if q.get("watch").is_some_and(|w| w == "true" || w == "1") {
        return exec_status(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource".into(),
        );
    }
    if table::wanted(headers) {
        return table::table(&items, q.get("includeObject").map(String::as_str));
    }
    Json(k8s_openapi::List {
        items,
        metadata: Default::default(),
    })
    .into_response()
}

/// One object, or its one-row Table when the client asks for one.
fn one<T: table::Printed>(item: &T, headers: &HeaderMap, q: &Params) -> Response {
    if table::wanted(headers) {
        return table::table(
            std::slice::from_ref(item),
            q.get("includeObject").map(String::as_str),
        );
    }
    Json(item).into_response()
}

/// `GET /api/v1/namespaces/NS/events?fieldSelector=…`: the namespace's events, filtered by a
/// field selector as `kubectl describe` sends it
/// (`involvedObject.name=X,involvedObject.namespace=Y,involvedObject.uid=Z`).
async fn events(
    State(s): State<Shared>,
    ns: Option<Path<String>>,
    Query(q): Query<Params>,
    headers: HeaderMap,
) -> Response {
    let fields = match selector(q.get("fieldSelector").map_or("", String::as_str)) {
        Ok(f) => f,
        Err(e) => return bad_request(e),
    };
    if let Some(r) = fields
        .iter()
        .find(|r| event_field(&Event::default(), r.key()).is_none())
    {
        return bad_request(format!("field label not supported: {}", r.key()));
    }
    let labels = match label_filter(&q) {
        Ok(l) => l,
        Err(e) => return bad_request(e),
    };
    let o = s.get().await;
    let items = o
        .events
        .iter()
        .filter(|e| in_namespace(&e.metadata, &ns))
        .filter(|e| labels(&e.metadata))
        .filter(|e| matches(&fields, |f| event_field(e, f).unwrap_or_default()))
        .cloned()
        .collect();
    list(items, &headers, &q)
}

/// `items` in `ns` (every namespace without one) that match `labelSelector`, as a list.
fn selected<T>(items: &[T], ns: &Option<Path<String>>, q: &Params, headers: &HeaderMap) -> Response
where
    T: k8s_openapi::ListableResource + k8s_openapi::Metadata<Ty = ObjectMeta> + Clone,
    T: table::Printed,
{
    let labels = match label_filter(q) {
        Ok(l) => l,
        Err(e) => return bad_request(e),
    };
    list(
        items
            .iter()
            .filter(|o| in_namespace(o.metadata(), ns))
            .filter(|o| labels(o.metadata()))
            .cloned()
            .collect(),
        headers,
        q,
    )
}

/// `GET /api/v1/namespaces/NS/pods?labelSelector=…`.
async fn pods(
    State(s): State<Shared>,
    ns: Option<Path<String>>,
    Query(q): Query<Params>,
    headers: HeaderMap,
) -> Response {
    selected(&s.get().await.pods, &ns, &q, &headers)
}

/// The namespaces that exist: a cluster's own (`default`, `kube-system`, `kube-public`,
/// `kube-node-lease`) and every namespace an object is in; Active, as old as the oldest
/// object.
fn namespaces_of(o: &Objects) -> Vec<Namespace> {
    let mut names: std::collections::BTreeSet<String> =
        ["default", "kube-system", "kube-public", "kube-node-lease"]
            .into_iter()
            .map(str::to_owned)
            .collect();
    let metas = o
        .pods
        .iter()
        .map(|p| &p.metadata)
        .chain(o.daemonsets.iter().map(|d| &d.metadata))
        .chain(o.events.iter().map(|e| &e.metadata))
        .chain(o.nodes.iter().map(|n| &n.metadata));
    let mut oldest: Option<Time> = None;
    for m in metas {
        if let Some(t) = &m.creation_timestamp
            && oldest.as_ref().is_none_or(|o| t.0 < o.0)
        {
            oldest = Some(t.clone());
        }
        if let Some(ns) = &m.namespace {
            names.insert(ns.clone());
        }
    }
    names
        .into_iter()
        .map(|name| Namespace {
            metadata: ObjectMeta {
                creation_timestamp: oldest.clone(),
                ..meta(&name, None)
            },
            status: Some(NamespaceStatus {
                phase: Some("Active".into()),
                ..NamespaceStatus::default()
            }),
            ..Namespace::default()
        })
        .collect()
}

/// `GET /api/v1/namespaces` (kubectl `get ns`).
async fn namespaces(
    State(s): State<Shared>,
    Query(q): Query<Params>,
    headers: HeaderMap,
) -> Response {
    let labels = match label_filter(&q) {
        Ok(l) => l,
        Err(e) => return bad_request(e),
    };
    let all = namespaces_of(&*s.get().await);
    list(
        all.into_iter().filter(|n| labels(&n.metadata)).collect(),
        &headers,
        &q,
    )
}

/// `GET /api/v1/namespaces/NS`: kubectl asks it when an object is not found, to say whether
/// the namespace is missing instead.
async fn namespace(
    State(s): State<Shared>,
    Path(name): Path<String>,
    Query(q): Query<Params>,
    headers: HeaderMap,
) -> Response {
    let all = namespaces_of(&*s.get().await);
    match named(&all, None, &name, |n| &n.metadata) {
        Some(n) => one(n, &headers, &q),
        None => not_found("namespaces", &name),
    }
}

/// `GET /api/v1/nodes?labelSelector=…`.
async fn nodes(State(s): State<Shared>, Query(q): Query<Params>, headers: HeaderMap) -> Response {
    selected(&s.get().await.nodes, &None, &q, &headers)
}

/// `GET /apis/apps/v1/namespaces/NS/daemonsets?labelSelector=…`.
async fn daemonsets(
    State(s): State<Shared>,
    ns: Option<Path<String>>,
    Query(q): Query<Params>,
    headers: HeaderMap,
) -> Response {
    selected(&s.get().await.daemonsets, &ns, &q, &headers)
}

/// A listener on 127.0.0.1:`port` (0: any) with the backlog the API server has (Go's
/// `net.Listen` uses the kernel's `somaxconn`, 4096 here), not tokio's 128: a fleet's burst
/// of new connections would otherwise overflow it and wait out a 1 s SYN retransmission.
pub fn listen(port: u16) -> std::io::Result<tokio::net::TcpListener> {
    let s = tokio::net::TcpSocket::new_v4()?;
    s.set_reuseaddr(true)?;
    s.bind(std::net::SocketAddr::from(([127, 0, 0, 1], port)))?;
    s.listen(4096)
}

impl ApiServer {
    pub async fn start(objects: Objects) -> ApiServer {
        Self::start_with_latency(objects, std::time::Duration::ZERO).await
    }

    /// Every answer waits `latency` first.
    pub async fn start_with_latency(objects: Objects, latency: std::time::Duration) -> ApiServer {
        let l = listen(0).expect("bind");
        Self::start_on(l, objects, latency)
    }

    /// Serve on an already bound listener.
    pub fn start_on(
        l: tokio::net::TcpListener,
        objects: Objects,
        latency: std::time::Duration,
    ) -> ApiServer {
        let objects = Arc::new(Mutex::new(objects));
        let shared = Shared {
            objects: objects.clone(),
            latency,
        };
        let app = axum::Router::new()
            .route("/version", get(discovery::version))
            .route("/api", get(discovery::core_versions))
            .route("/apis", get(discovery::groups))
            .route("/api/v1", get(discovery::core_v1))
            .route("/apis/apps/v1", get(discovery::apps_v1))
            .route("/api/v1/namespaces", get(namespaces))
            .route("/api/v1/namespaces/{ns}", get(namespace))
            .route("/api/v1/pods", get(pods))
            .route("/api/v1/events", get(events))
            .route("/apis/apps/v1/daemonsets", get(daemonsets))
            .route("/api/v1/namespaces/{ns}/pods", get(pods))
            .route("/api/v1/namespaces/{ns}/pods/{name}", get(pod))
            .route("/api/v1/namespaces/{ns}/pods/{name}/log", get(pod_log))
            // GET is the WebSocket upgrade; POST is how kubectl before 1.30 asks for SPDY,
            // which is refused with a Status.
            .route(
                "/api/v1/namespaces/{ns}/pods/{name}/exec",
                get(exec::pod_exec).post(exec::pod_exec),
            )
            .route(
                "/api/v1/namespaces/{ns}/pods/{name}/proxy/{*path}",
                get(proxy::pod_proxy),
            )
            .route("/api/v1/nodes", get(nodes))
            .route("/api/v1/nodes/{name}", get(node))
            .route("/apis/apps/v1/namespaces/{ns}/daemonsets", get(daemonsets))
            .route(
                "/apis/apps/v1/namespaces/{ns}/daemonsets/{name}",
                get(daemonset),
            )
            .route("/api/v1/namespaces/{ns}/events", get(events))
            .fallback(discovery::not_found)
            .method_not_allowed_fallback(discovery::method_not_allowed)
            .layer(axum::middleware::from_fn_with_state(shared.clone(), rbac))
            .with_state(shared);
        let port = l.local_addr().map(|a| a.port()).unwrap_or(0);
        let task = tokio::spawn(async move {
            let _ = axum::serve(l, app).await;
        });
        ApiServer {
            port,
            objects,
            task,
        }
    }

    /// A kubeconfig with one context `test` (namespace `namespace`) pointing here.
    pub fn kubeconfig(&self, dir: &std::path::Path, namespace: &str) -> std::path::PathBuf {
        let p = dir.join("kubeconfig");
        std::fs::write(&p, self.kubeconfig_text(namespace)).expect("write kubeconfig");
        p
    }

    /// The kubeconfig's text (context `test`, default namespace `namespace`).
    pub fn kubeconfig_text(&self, namespace: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: http://127.0.0.1:{}\nusers:\n- name: test\n  user: {{}}\ncontexts:\n- name: test\n  context:\n    cluster: test\n    user: test\n    namespace: {namespace}\ncurrent-context: test\n",
            self.port
        )
    }
}

fn meta(name: &str, ns: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: ns.map(str::to_owned),
        ..ObjectMeta::default()
    }
}

/// A pod as the Helm chart deploys it: device limit, hugepages requested and mounted, Running,
/// labelled `app=containment-chamber`.
pub fn healthy_pod(name: &str, ns: &str, node: &str) -> Pod {
    let limits = [
        ("aws.ec2.nitro/nitro_enclaves", "1"),
        ("hugepages-2Mi", "1Gi"),
        ("memory", "2Gi"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), Quantity(v.to_owned())))
    .collect();
    let mut m = meta(name, Some(ns));
    m.labels = Some([("app".to_owned(), "containment-chamber".to_owned())].into());
    Pod {
        metadata: m,
        spec: Some(PodSpec {
            node_name: Some(node.to_owned()),
            containers: vec![Container {
                name: "parent".into(),
                ports: Some(vec![port("api", 9000), port("metrics", 3000)]),
                resources: Some(ResourceRequirements {
                    limits: Some(limits),
                    ..ResourceRequirements::default()
                }),
                ..Container::default()
            }],
            volumes: Some(vec![Volume {
                name: "hugepage".into(),
                empty_dir: Some(EmptyDirVolumeSource {
                    medium: Some("HugePages".into()),
                    ..EmptyDirVolumeSource::default()
                }),
                ..Volume::default()
            }]),
            ..PodSpec::default()
        }),
        status: Some(PodStatus {
            phase: Some("Running".into()),
            ..PodStatus::default()
        }),
    }
}

fn port(name: &str, n: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.to_owned()),
        container_port: n,
        // The API server's default.
        protocol: Some("TCP".into()),
        ..ContainerPort::default()
    }
}

pub fn labelled_node(name: &str) -> Node {
    let mut m = meta(name, None);
    m.labels = Some([("aws-nitro-enclaves-k8s-dp".to_owned(), "enabled".to_owned())].into());
    Node {
        metadata: m,
        ..Node::default()
    }
}

/// The device plugin's DaemonSet: scheduled on the nodes labelled
/// `aws-nitro-enclaves-k8s-dp=enabled`, `ready` of `desired` pods ready (and available).
pub fn device_plugin(ready: i32, desired: i32) -> DaemonSet {
    let mut ds = DaemonSet {
        metadata: meta("aws-nitro-enclaves-k8s-daemonset", Some("kube-system")),
        status: Some(DaemonSetStatus {
            number_ready: ready,
            desired_number_scheduled: desired,
            current_number_scheduled: desired,
            updated_number_scheduled: Some(desired),
            number_available: Some(ready),
            ..DaemonSetStatus::default()
        }),
        ..DaemonSet::default()
    };
    ds.spec.template.spec = Some(PodSpec {
        node_selector: Some(
            [("aws-nitro-enclaves-k8s-dp".to_owned(), "enabled".to_owned())].into(),
        ),
        ..PodSpec::default()
    });
    ds
}

pub fn warning_event(ns: &str, pod: &str, reason: &str, message: &str) -> Event {
    Event {
        metadata: meta(&format!("{pod}.{reason}"), Some(ns)),
        involved_object: ObjectReference {
            kind: Some("Pod".into()),
            name: Some(pod.to_owned()),
            namespace: Some(ns.to_owned()),
            ..ObjectReference::default()
        },
        type_: Some("Warning".into()),
        reason: Some(reason.to_owned()),
        message: Some(message.to_owned()),
        ..Event::default()
    }
}

/// The cluster as it looks once the pods started (the demo's): every object created now, each
/// pod with a uid, its containers running and ready and its conditions true when it is
/// `Running`, and the events the scheduler and the kubelet record for it (`Scheduled`,
/// `Started`); each node `Ready`, with this machine's kernel and the double's kubelet
/// version. Objects that already say any of this keep it.
pub fn started(objects: &mut Objects) {
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateRunning, ContainerStatus, EventSource, NodeCondition,
        NodeStatus, NodeSystemInfo, PodCondition,
    };
    let now = now();
    let metas = objects
        .pods
        .iter_mut()
        .map(|p| &mut p.metadata)
        .chain(objects.nodes.iter_mut().map(|n| &mut n.metadata))
        .chain(objects.daemonsets.iter_mut().map(|d| &mut d.metadata));
    for m in metas {
        m.creation_timestamp.get_or_insert_with(|| now.clone());
    }
    for (i, pod) in objects.pods.iter_mut().enumerate() {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let uid = pod
            .metadata
            .uid
            .get_or_insert_with(|| format!("6f1c2d3e-0000-4000-8000-{:012x}", i + 1))
            .clone();
        let spec = pod.spec.clone().unwrap_or_default();
        let status = pod.status.get_or_insert_with(Default::default);
        if status.phase.as_deref() != Some("Running") {
            continue;
        }
        status.start_time.get_or_insert_with(|| now.clone());
        status.container_statuses.get_or_insert_with(|| {
            spec.containers
                .iter()
                .map(|c| ContainerStatus {
                    name: c.name.clone(),
                    image: c.image.clone().unwrap_or_default(),
                    ready: true,
                    started: Some(true),
                    restart_count: 0,
                    state: Some(ContainerState {
                        running: Some(ContainerStateRunning {
                            started_at: Some(now.clone()),
                        }),
                        ..ContainerState::default()
                    }),
                    ..ContainerStatus::default()
                })
                .collect()
        });
        status.conditions.get_or_insert_with(|| {
            ["PodScheduled", "Initialized", "ContainersReady", "Ready"]
                .into_iter()
                .map(|t| PodCondition {
                    type_: t.into(),
                    status: "True".into(),
                    last_transition_time: Some(now.clone()),
                    ..PodCondition::default()
                })
                .collect()
        });
        let node = spec.node_name.clone().unwrap_or_default();
        let involved = ObjectReference {
            kind: Some("Pod".into()),
            api_version: Some("v1".into()),
            name: Some(name.clone()),
            namespace: Some(ns.clone()),
            uid: Some(uid),
            ..ObjectReference::default()
        };
        let event = |reason: &str, component: &str, message: String, n: usize| Event {
            metadata: ObjectMeta {
                name: Some(format!(
                    "{name}.{:016x}",
                    0x1800_0000_0000_0000u64 + n as u64
                )),
                namespace: Some(ns.clone()),
                creation_timestamp: Some(now.clone()),
                ..ObjectMeta::default()
            },
            involved_object: involved.clone(),
            type_: Some("Normal".into()),
            reason: Some(reason.into()),
            message: Some(message),
            source: Some(EventSource {
                component: Some(component.into()),
                host: (component == "kubelet").then(|| node.clone()),
            }),
            first_timestamp: Some(now.clone()),
            last_timestamp: Some(now.clone()),
            count: Some(1),
            ..Event::default()
        };
        objects.events.push(event(
            "Scheduled",
            "default-scheduler",
            format!("Successfully assigned {ns}/{name} to {node}"),
            2 * i,
        ));
        for c in &spec.containers {
            let mut e = event(
                "Started",
                "kubelet",
                format!("Started container {}", c.name),
                2 * i + 1,
            );
            e.involved_object.field_path = Some(format!("spec.containers{{{}}}", c.name));
            objects.events.push(e);
        }
    }
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let os = std::fs::read_to_string("/etc/os-release")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_owned())
        .unwrap_or_default();
    for node in &mut objects.nodes {
        let status = node.status.get_or_insert_with(NodeStatus::default);
        status.conditions.get_or_insert_with(|| {
            vec![NodeCondition {
                type_: "Ready".into(),
                status: "True".into(),
                reason: Some("KubeletReady".into()),
                message: Some("kubelet is posting ready status".into()),
                last_heartbeat_time: Some(now.clone()),
                last_transition_time: Some(now.clone()),
            }]
        });
        status.node_info.get_or_insert_with(|| NodeSystemInfo {
            kubelet_version: discovery::GIT_VERSION.into(),
            kernel_version: kernel.trim().to_owned(),
            os_image: os.clone(),
            operating_system: "linux".into(),
            architecture: match std::env::consts::ARCH {
                "x86_64" => "amd64".into(),
                "aarch64" => "arm64".into(),
                a => a.into(),
            },
            ..NodeSystemInfo::default()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::{Requirement, matches, selector};

    fn eq(k: &str, v: &str) -> Requirement {
        Requirement::Eq(k.into(), v.into())
    }

    #[test]
    fn field_selectors_are_comma_separated_requirements() {
        assert_eq!(
            selector("involvedObject.name=p-0,involvedObject.namespace==ns,involvedObject.uid=u-1")
                .unwrap(),
            [
                eq("involvedObject.name", "p-0"),
                eq("involvedObject.namespace", "ns"),
                eq("involvedObject.uid", "u-1")
            ]
        );
        assert_eq!(
            selector("type!=Normal,reason=a\\,b\\=c").unwrap(),
            [
                Requirement::Ne("type".into(), "Normal".into()),
                eq("reason", "a,b=c")
            ]
        );
        assert_eq!(selector("").unwrap(), []);
        assert_eq!(
            selector("app,!tier").unwrap(),
            [
                Requirement::Exists("app".into()),
                Requirement::Absent("tier".into())
            ]
        );
        assert!(selector("app in (a,b)").is_err());
        assert!(selector("=x").is_err());
    }

    #[test]
    fn every_requirement_must_hold() {
        let reqs = selector("a=1,b!=2,c=").unwrap();
        let value = |k: &str| match k {
            "a" => "1".to_owned(),
            "b" => "3".to_owned(),
            _ => String::new(),
        };
        assert!(matches(&reqs, value));
        assert!(!matches(&selector("a=1,b=2").unwrap(), value));
    }
}
