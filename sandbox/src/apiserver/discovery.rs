//! Discovery, as the API server answers it: `/version`, `/api`, `/apis`, `/api/v1` and
//! `/apis/apps/v1`, listing exactly the resources and verbs the double serves, so `kubectl`
//! (and any client that discovers before it asks) finds them. Whatever else is asked answers
//! as the API server does: 404 `Status` (`the server could not find the requested
//! resource`), and 405 `Status` for a method a served path does not take.

use axum::Json;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    APIGroup, APIGroupList, APIResource, APIResourceList, APIVersions, GroupVersionForDiscovery,
    ServerAddressByClientCIDR,
};
use k8s_openapi::apimachinery::pkg::version::Info;

use super::exec_status as status;

/// The Kubernetes version the double answers as.
pub const GIT_VERSION: &str = "v1.31.0";

pub async fn version() -> Json<Info> {
    Json(Info {
        major: "1".into(),
        minor: "31".into(),
        git_version: GIT_VERSION.into(),
        git_commit: "9edcffcde5595e8a5b1a35f88c421764e575afce".into(),
        git_tree_state: "clean".into(),
        build_date: "2024-08-13T07:28:49Z".into(),
        go_version: "go1.22.5".into(),
        compiler: "gc".into(),
        platform: "linux/amd64".into(),
        ..Info::default()
    })
}

/// `GET /api`: the core group's versions, and the address clients reach it at (the `Host`
/// they asked, as the API server answers for a client that is not in a configured CIDR).
pub async fn core_versions(req: Request) -> Json<APIVersions> {
    let host = req
        .headers()
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_owned();
    Json(APIVersions {
        versions: vec!["v1".into()],
        server_address_by_client_cidrs: vec![ServerAddressByClientCIDR {
            client_cidr: "0.0.0.0/0".into(),
            server_address: host,
        }],
    })
}

/// `GET /apis`: the named groups served (`apps/v1`, for DaemonSets).
pub async fn groups() -> Json<APIGroupList> {
    let v1 = GroupVersionForDiscovery {
        group_version: "apps/v1".into(),
        version: "v1".into(),
    };
    Json(APIGroupList {
        groups: vec![APIGroup {
            name: "apps".into(),
            versions: vec![v1.clone()],
            preferred_version: Some(v1),
            server_address_by_client_cidrs: None,
        }],
    })
}

#[allow(clippy::too_many_arguments)]
fn resource(
    name: &str,
    singular: &str,
    namespaced: bool,
    kind: &str,
    verbs: &[&str],
    short: &[&str],
    categories: &[&str],
) -> APIResource {
    let strings = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let opt = |v: &[&str]| (!v.is_empty()).then(|| strings(v));
    APIResource {
        name: name.into(),
        singular_name: singular.into(),
        namespaced,
        kind: kind.into(),
        verbs: strings(verbs),
        short_names: opt(short),
        categories: opt(categories),
        ..APIResource::default()
    }
}

/// `GET /api/v1`: pods (get, list) and the subresources served (`log`, `exec`, `proxy`),
/// nodes and namespaces (get, list), events (list).
pub async fn core_v1() -> Json<APIResourceList> {
    Json(APIResourceList {
        group_version: "v1".into(),
        resources: vec![
            resource("events", "event", true, "Event", &["list"], &["ev"], &[]),
            resource(
                "namespaces",
                "namespace",
                false,
                "Namespace",
                &["get", "list"],
                &["ns"],
                &[],
            ),
            resource(
                "nodes",
                "node",
                false,
                "Node",
                &["get", "list"],
                &["no"],
                &[],
            ),
            resource(
                "pods",
                "pod",
                true,
                "Pod",
                &["get", "list"],
                &["po"],
                &["all"],
            ),
            resource(
                "pods/exec",
                "",
                true,
                "PodExecOptions",
                &["create", "get"],
                &[],
                &[],
            ),
            resource("pods/log", "", true, "Pod", &["get"], &[], &[]),
            resource(
                "pods/proxy",
                "",
                true,
                "PodProxyOptions",
                &["get"],
                &[],
                &[],
            ),
        ],
    })
}

/// `GET /apis/apps/v1`: daemonsets (get, list).
pub async fn apps_v1() -> Json<APIResourceList> {
    Json(APIResourceList {
        group_version: "apps/v1".into(),
        resources: vec![resource(
            "daemonsets",
            "daemonset",
            true,
            "DaemonSet",
            &["get", "list"],
            &["ds"],
            &["all"],
        )],
    })
}

/// Any path the double does not serve: the API server's 404.
pub async fn not_found() -> Response {
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        "the server could not find the requested resource".into(),
    )
}

/// A served path asked with a method it does not take: the API server's 405.
pub async fn method_not_allowed() -> Response {
    status(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        "the server does not allow this method on the requested resource".into(),
    )
    .into_response()
}
