//! Server-side printing, as the API server does it: a client that asks with
//! `Accept: application/json;as=Table;v=v1;g=meta.k8s.io` (kubectl's `get`) receives a
//! `meta.k8s.io/v1` `Table` whose columns are the API server's for the resource (the wide ones
//! at priority 1), each row with the object's metadata (`includeObject=Metadata`, the default),
//! the whole object (`Object`) or nothing (`None`). Without the Table, kubectl 1.20 prints
//! only NAME and AGE.

use axum::Json;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Event, Namespace, Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde_json::{Value, json};

/// Whether the request asks for a `meta.k8s.io/v1` Table (any media range of `Accept` with
/// `as=Table`, `g=meta.k8s.io`, `v=v1`).
pub fn wanted(headers: &HeaderMap) -> bool {
    headers
        .get_all(axum::http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|range| {
            let params: Vec<&str> = range.split(';').skip(1).map(str::trim).collect();
            ["as=Table", "g=meta.k8s.io", "v=v1"]
                .iter()
                .all(|p| params.contains(p))
        })
}

/// A resource the double prints as the API server does.
pub trait Printed: serde::Serialize {
    /// `(name, type, priority, format)` of each column.
    const COLUMNS: &'static [(&'static str, &'static str, u8, &'static str)];
    fn meta(&self) -> &ObjectMeta;
    fn cells(&self, now: i64) -> Vec<Value>;
}

/// The Table of `items`; `include` is the request's `includeObject` (`None`, `Metadata`,
/// `Object`).
pub fn table<T: Printed>(items: &[T], include: Option<&str>) -> Response {
    let now = now().0.as_second();
    let columns: Vec<Value> = T::COLUMNS
        .iter()
        .map(|(name, type_, priority, format)| {
            json!({"name": name, "type": type_, "format": format, "description": "", "priority": priority})
        })
        .collect();
    let rows: Vec<Value> = items
        .iter()
        .map(|item| {
            let object = match include {
                Some("None") => Value::Null,
                Some("Object") => serde_json::to_value(item).unwrap_or(Value::Null),
                _ => json!({
                    "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                    "metadata": item.meta(),
                }),
            };
            json!({"cells": item.cells(now), "object": object})
        })
        .collect();
    Json(json!({
        "kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {},
        "columnDefinitions": columns, "rows": rows,
    }))
    .into_response()
}

/// This instant as a Kubernetes `Time` (whole seconds, as the API server stores them).
pub fn now() -> Time {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    Time(k8s_openapi::jiff::Timestamp::from_second(secs).unwrap_or_default())
}

/// The API server's age of a timestamp (`translateTimestampSince`: `<unknown>` when unset, else
/// apimachinery's `HumanDuration`).
fn age(t: Option<&Time>, now: i64) -> String {
    match t {
        Some(t) => human_duration(now - t.0.as_second()),
        None => "<unknown>".into(),
    }
}

/// apimachinery's `duration.HumanDuration`, for whole seconds.
fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let d = (hours / 24) % 365;
        return if d == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{d}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

fn or_none(v: Option<&str>) -> String {
    match v {
        Some(s) if !s.is_empty() => s.to_owned(),
        _ => "<none>".into(),
    }
}

fn labels(m: Option<&std::collections::BTreeMap<String, String>>) -> String {
    let s = m
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    or_none(Some(&s))
}

impl Printed for Pod {
    const COLUMNS: &'static [(&'static str, &'static str, u8, &'static str)] = &[
        ("Name", "string", 0, "name"),
        ("Ready", "string", 0, ""),
        ("Status", "string", 0, ""),
        ("Restarts", "string", 0, ""),
        ("Age", "string", 0, ""),
        ("IP", "string", 1, ""),
        ("Node", "string", 1, ""),
        ("Nominated Node", "string", 1, ""),
        ("Readiness Gates", "string", 1, ""),
    ];

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    /// `printPod`: ready containers of all, the phase (or the status reason, or a container's
    /// waiting/terminated reason, or `Terminating`), restarts, age; wide: IP, node.
    fn cells(&self, now: i64) -> Vec<Value> {
        let status = self.status.clone().unwrap_or_default();
        let spec = self.spec.clone().unwrap_or_default();
        let statuses = status.container_statuses.clone().unwrap_or_default();
        let ready = statuses.iter().filter(|c| c.ready).count();
        let restarts: i64 = statuses.iter().map(|c| i64::from(c.restart_count)).sum();
        let mut reason = status
            .reason
            .clone()
            .or(status.phase.clone())
            .unwrap_or_default();
        for c in statuses.iter().rev() {
            let state = c.state.clone().unwrap_or_default();
            if let Some(r) = state
                .waiting
                .and_then(|w| w.reason)
                .filter(|r| !r.is_empty())
            {
                reason = r;
            } else if let Some(t) = state.terminated {
                reason = t.reason.unwrap_or_else(|| match t.signal {
                    Some(s) if s != 0 => format!("Signal:{s}"),
                    _ => format!("ExitCode:{}", t.exit_code),
                });
            }
        }
        if self.metadata.deletion_timestamp.is_some() {
            reason = "Terminating".into();
        }
        let gates = spec.readiness_gates.as_ref().map(Vec::len).unwrap_or(0);
        vec![
            json!(self.metadata.name.clone().unwrap_or_default()),
            json!(format!("{ready}/{}", spec.containers.len())),
            json!(reason),
            json!(restarts.to_string()),
            json!(age(self.metadata.creation_timestamp.as_ref(), now)),
            json!(or_none(status.pod_ip.as_deref())),
            json!(or_none(spec.node_name.as_deref())),
            json!(or_none(status.nominated_node_name.as_deref())),
            json!(if gates == 0 {
                "<none>".to_owned()
            } else {
                format!("0/{gates}")
            }),
        ]
    }
}

impl Printed for Node {
    const COLUMNS: &'static [(&'static str, &'static str, u8, &'static str)] = &[
        ("Name", "string", 0, "name"),
        ("Status", "string", 0, ""),
        ("Roles", "string", 0, ""),
        ("Age", "string", 0, ""),
        ("Version", "string", 0, ""),
        ("Internal-IP", "string", 1, ""),
        ("External-IP", "string", 1, ""),
        ("OS-Image", "string", 1, ""),
        ("Kernel-Version", "string", 1, ""),
        ("Container-Runtime", "string", 1, ""),
    ];

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    /// `printNode`: Ready/NotReady/Unknown from the `Ready` condition, roles from the
    /// `node-role.kubernetes.io/ROLE` labels, age, kubelet version; wide: addresses and the
    /// node's system info.
    fn cells(&self, now: i64) -> Vec<Value> {
        let status = self.status.clone().unwrap_or_default();
        let ready = status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "Ready")
            .map(|c| match c.status.as_str() {
                "True" => "Ready",
                "False" => "NotReady",
                _ => "Unknown",
            })
            .unwrap_or("Unknown");
        let mut state = ready.to_owned();
        if self.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
            state.push_str(",SchedulingDisabled");
        }
        let mut roles: Vec<String> = self
            .metadata
            .labels
            .iter()
            .flatten()
            .filter_map(|(k, v)| {
                k.strip_prefix("node-role.kubernetes.io/")
                    .map(str::to_owned)
                    .or_else(|| (k == "kubernetes.io/role").then(|| v.clone()))
            })
            .filter(|r| !r.is_empty())
            .collect();
        roles.sort();
        let address = |t: &str| {
            or_none(
                status
                    .addresses
                    .iter()
                    .flatten()
                    .find(|a| a.type_ == t)
                    .map(|a| a.address.as_str()),
            )
        };
        let info = status.node_info.clone().unwrap_or_default();
        let unknown = |s: String| if s.is_empty() { "<unknown>".into() } else { s };
        vec![
            json!(self.metadata.name.clone().unwrap_or_default()),
            json!(state),
            json!(or_none(Some(&roles.join(",")))),
            json!(age(self.metadata.creation_timestamp.as_ref(), now)),
            json!(info.kubelet_version),
            json!(address("InternalIP")),
            json!(address("ExternalIP")),
            json!(unknown(info.os_image)),
            json!(unknown(info.kernel_version)),
            json!(unknown(info.container_runtime_version)),
        ]
    }
}

impl Printed for Event {
    const COLUMNS: &'static [(&'static str, &'static str, u8, &'static str)] = &[
        ("Last Seen", "string", 0, ""),
        ("Type", "string", 0, ""),
        ("Reason", "string", 0, ""),
        ("Object", "string", 0, ""),
        ("Subobject", "string", 1, ""),
        ("Source", "string", 1, ""),
        ("Message", "string", 0, ""),
        ("First Seen", "string", 1, ""),
        ("Count", "string", 1, ""),
        ("Name", "string", 1, "name"),
    ];

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    /// `printEvent`: last seen (or the event time), type, reason, `kind/name` of the object,
    /// message; wide: field path, source, first seen, count, name.
    fn cells(&self, now: i64) -> Vec<Value> {
        let event_time = self.event_time.as_ref().map(|t| Time(t.0));
        let last = self.last_timestamp.clone().or(event_time.clone());
        let first = self.first_timestamp.clone().or(event_time);
        let o = &self.involved_object;
        let source = self.source.clone().unwrap_or_default();
        let mut from = source
            .component
            .or(self.reporting_component.clone())
            .unwrap_or_default();
        if let Some(host) = source.host.filter(|h| !h.is_empty()) {
            from = format!("{from}, {host}");
        }
        vec![
            json!(age(last.as_ref(), now)),
            json!(self.type_.clone().unwrap_or_default()),
            json!(self.reason.clone().unwrap_or_default()),
            json!(format!(
                "{}/{}",
                o.kind.clone().unwrap_or_default().to_lowercase(),
                o.name.clone().unwrap_or_default()
            )),
            json!(o.field_path.clone().unwrap_or_default()),
            json!(from),
            json!(self.message.clone().unwrap_or_default().trim()),
            json!(age(first.as_ref(), now)),
            json!(i64::from(self.count.unwrap_or(1))),
            json!(self.metadata.name.clone().unwrap_or_default()),
        ]
    }
}

impl Printed for DaemonSet {
    const COLUMNS: &'static [(&'static str, &'static str, u8, &'static str)] = &[
        ("Name", "string", 0, "name"),
        ("Desired", "integer", 0, ""),
        ("Current", "integer", 0, ""),
        ("Ready", "integer", 0, ""),
        ("Up-to-date", "integer", 0, ""),
        ("Available", "integer", 0, ""),
        ("Node Selector", "string", 0, ""),
        ("Age", "string", 0, ""),
        ("Containers", "string", 1, ""),
        ("Images", "string", 1, ""),
        ("Selector", "string", 1, ""),
    ];

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    /// `printDaemonSet`: the status counts, the pod template's node selector, age; wide: the
    /// template's containers and images, the selector.
    fn cells(&self, now: i64) -> Vec<Value> {
        let s = self.status.clone().unwrap_or_default();
        let spec = self.spec.clone();
        let pod = spec.template.spec.unwrap_or_default();
        let names: Vec<String> = pod.containers.iter().map(|c| c.name.clone()).collect();
        let images: Vec<String> = pod
            .containers
            .iter()
            .map(|c| c.image.clone().unwrap_or_default())
            .collect();
        vec![
            json!(self.metadata.name.clone().unwrap_or_default()),
            json!(s.desired_number_scheduled),
            json!(s.current_number_scheduled),
            json!(s.number_ready),
            json!(s.updated_number_scheduled.unwrap_or(0)),
            json!(s.number_available.unwrap_or(0)),
            json!(labels(pod.node_selector.as_ref())),
            json!(age(self.metadata.creation_timestamp.as_ref(), now)),
            json!(names.join(",")),
            json!(images.join(",")),
            json!(labels(spec.selector.match_labels.as_ref())),
        ]
    }
}

impl Printed for Namespace {
    const COLUMNS: &'static [(&'static str, &'static str, u8, &'static str)] = &[
        ("Name", "string", 0, "name"),
        ("Status", "string", 0, ""),
        ("Age", "string", 0, ""),
    ];

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn cells(&self, now: i64) -> Vec<Value> {
        vec![
            json!(self.metadata.name.clone().unwrap_or_default()),
            json!(
                self.status
                    .as_ref()
                    .and_then(|s| s.phase.clone())
                    .unwrap_or_default()
            ),
            json!(age(self.metadata.creation_timestamp.as_ref(), now)),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::human_duration;

    #[test]
    fn ages_read_as_the_api_server_writes_them() {
        for (s, want) in [
            (-5, "<invalid>"),
            (-1, "0s"),
            (59, "59s"),
            (119, "119s"),
            (125, "2m5s"),
            (600, "10m"),
            (3 * 3600 + 5 * 60, "3h5m"),
            (30 * 3600, "30h"),
            (3 * 86400 + 3600, "3d1h"),
            (40 * 86400, "40d"),
        ] {
            assert_eq!(human_duration(s), want, "{s}");
        }
    }
}
