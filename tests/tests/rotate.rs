//! `ccctl rotate` end to end. PCR0: a whole rotation against `ccctl demo`'s chamber — a new
//! EIF, the three holders' policies changed through the demo's KMS (PutKeyPolicy with the
//! policies the workflow handed out), a redeploy simulated by restarting the enclave server
//! with the new measurement, OLD retired — with every interlock tried and the workflow killed
//! (SIGKILL) while it waits at each waiting step, then resumed. PCR8: the same machinery from
//! a certificate, on policy files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cc_tests::{bin, fixtures};

struct Demo {
    demo: cc_tests::RunningDemo,
    dir: PathBuf,
    env: Vec<(String, String)>,
    /// The enclave server this test started (the "redeploy").
    enclave: Option<Child>,
}

impl Drop for Demo {
    fn drop(&mut self) {
        if let Some(e) = &mut self.enclave {
            let _ = e.kill();
            let _ = e.wait();
        }
        self.demo.stop();
    }
}

fn start_demo(dir: &Path) -> Demo {
    let demo = cc_tests::RunningDemo::start(dir);
    Demo {
        dir: demo.dir.clone(),
        env: demo.env.clone(),
        demo,
        enclave: None,
    }
}

impl Demo {
    fn var(&self, k: &str) -> String {
        self.demo.var(k)
    }

    /// PATH with the demo's folder first: its nitro-cli stand-in is what `--exec local` runs
    /// "in the pod".
    fn path(&self) -> String {
        format!(
            "{}:{}",
            self.dir.display(),
            std::env::var("PATH").unwrap_or_default()
        )
    }

    fn ccctl(&self, args: &[&str]) -> (i32, String, String) {
        let o = Command::new(bin("ccctl"))
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("PATH", self.path())
            .output()
            .unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }

    fn status(&self) -> Option<serde_json::Value> {
        let api: cc_proto::Address = self.var("CCCTL_API").parse().unwrap();
        cc_tests::http(&api, "GET", "/status", None)
            .ok()
            .and_then(|(_, b)| serde_json::from_slice(&b).ok())
    }

    /// Stop whatever enclave server runs and start one attesting `pcr0`; wait until it unseals.
    fn redeploy(&mut self, pcr0: &str) {
        let pid = std::fs::read_to_string(self.dir.join("enclave.pid")).unwrap();
        let _ = Command::new("kill").args(["-TERM", pid.trim()]).status();
        if let Some(mut e) = self.enclave.take() {
            let _ = e.wait();
        }
        let t = Instant::now();
        while Path::new(&format!("/proc/{}", pid.trim())).exists()
            && !std::fs::read_to_string(format!("/proc/{}/stat", pid.trim()))
                .is_ok_and(|s| s.contains(") Z "))
        {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "enclave {pid} did not stop"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let cfg = std::fs::read_to_string(self.dir.join("enclave.toml")).unwrap();
        let cfg: String = cfg
            .lines()
            .map(|l| {
                if l.starts_with("0 = \"") {
                    format!("0 = \"{pcr0}\"")
                } else {
                    l.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        // What the new image measures (the nitro-cli stand-in reports it).
        let m = std::fs::read_to_string(self.dir.join("measurements")).unwrap();
        let pcr8 = m
            .lines()
            .find_map(|l| l.strip_prefix("PCR8="))
            .unwrap()
            .to_owned();
        std::fs::write(
            self.dir.join("measurements"),
            format!("PCR0={pcr0}\nPCR8={pcr8}\n"),
        )
        .unwrap();
        let path = self.dir.join("enclave-redeployed.toml");
        std::fs::write(&path, cfg).unwrap();
        let e = Command::new(bin("containment-chamber-enclave"))
            .args(["serve", "--config"])
            .arg(&path)
            .env("AWS_ACCESS_KEY_ID", cc_sandbox::kms::SIGNER_KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", "x")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("PRODUCTION")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::fs::write(self.dir.join("enclave.pid"), e.id().to_string()).unwrap();
        self.enclave = Some(e);
        let t = Instant::now();
        loop {
            if let Some(s) = self.status()
                && s["state"] == "unsealed"
                && s["attestation"]["pcrs"]["PCR0"] == pcr0
            {
                return;
            }
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "redeployed enclave did not unseal: {:?}",
                self.status()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn kms_client(endpoint: &str) -> aws_sdk_kms::Client {
    let conf = aws_sdk_kms::config::Builder::new()
        .behavior_version(aws_sdk_kms::config::BehaviorVersion::latest())
        .region(aws_sdk_kms::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_kms::config::Credentials::new(
            cc_sandbox::kms::OPERATOR_KEY_ID,
            "x",
            None,
            None,
            "test",
        ))
        .endpoint_url(endpoint)
        .build();
    aws_sdk_kms::Client::from_conf(conf)
}

/// holder name → (key ARN, endpoint) from the demo's ccctl.toml.
fn holders(cfg: &Path) -> BTreeMap<String, (String, String)> {
    let v: toml::Table = toml::from_str(&std::fs::read_to_string(cfg).unwrap()).unwrap();
    v["holder"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["name"].as_str().unwrap().to_owned(),
                (
                    h["key_arn"].as_str().unwrap().to_owned(),
                    h["endpoint"].as_str().unwrap().to_owned(),
                ),
            )
        })
        .collect()
}

fn put_policy(rt: &tokio::runtime::Runtime, arn: &str, endpoint: &str, policy: &str) {
    rt.block_on(
        kms_client(endpoint)
            .put_key_policy()
            .key_id(arn)
            .policy_name("default")
            .policy(policy)
            .send(),
    )
    .unwrap();
}

fn get_policy(rt: &tokio::runtime::Runtime, arn: &str, endpoint: &str) -> String {
    rt.block_on(
        kms_client(endpoint)
            .get_key_policy()
            .key_id(arn)
            .policy_name("default")
            .send(),
    )
    .unwrap()
    .policy
    .unwrap()
}

fn step(state: &Path) -> String {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(state).unwrap()).unwrap();
    v["step"].as_str().unwrap().to_owned()
}

/// Start `next --wait 60s`, let it poll, SIGKILL it: the state file is intact and unchanged.
fn kill_while_waiting(d: &Demo, state: &Path) {
    let before = std::fs::read_to_string(state).unwrap();
    let mut c = Command::new(bin("ccctl"))
        .args([
            "rotate",
            "pcr0",
            "next",
            "--wait",
            "60s",
            "--interval",
            "200ms",
            "--state",
        ])
        .arg(state)
        .envs(d.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("PATH", d.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    assert!(
        c.try_wait().unwrap().is_none(),
        "next should still be waiting"
    );
    c.kill().unwrap();
    c.wait().unwrap();
    assert_eq!(std::fs::read_to_string(state).unwrap(), before);
}

#[test]
fn a_whole_pcr0_rotation_against_the_demo() {
    let tmp = tempfile::tempdir().unwrap();
    let mut d = start_demo(&tmp.path().join("demo"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let state = tmp.path().join("rotation.json");
    let st = state.to_str().unwrap();
    let out = tmp.path().join("handout");
    let out2 = tmp.path().join("handout-retire");
    let eif = fixtures().join("eif/synthetic_unsigned.eif");
    let new = "f50ca4f69fb893ad5f5f731dcbc98ba2baa31fe82aa2a251d225903337d455c3e18d99d11f661e599845249403d77872";
    let old = d.status().unwrap()["attestation"]["pcrs"]["PCR0"]
        .as_str()
        .unwrap()
        .to_owned();
    let api = d.var("CCCTL_API");
    let cfg = PathBuf::from(d.var("CCCTL_CONFIG"));
    let hs = holders(&cfg);
    let original: BTreeMap<String, String> = hs
        .iter()
        .map(|(n, (arn, ep))| (n.clone(), get_policy(&rt, arn, ep)))
        .collect();

    // A PCR0 typed by hand is validated.
    let (code, _, err) = d.ccctl(&[
        "rotate", "pcr0", "start", "--new", "abc", "--api", &api, "--state", st,
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("expected 96 hex digits"), "{err}");

    // 1. Measure.
    let (code, o, err) = d.ccctl(&[
        "rotate",
        "pcr0",
        "start",
        "--eif",
        eif.to_str().unwrap(),
        "--api",
        &api,
        "-l",
        "app=containment-chamber",
        // The default: the pods' nitro-cli through the API server's exec (WebSocket).
        "--exec",
        "kube",
        "--image-tag",
        "v2",
        "--state",
        st,
        "-o",
        "json",
    ]);
    assert_eq!(code, 0, "{o}{err}");
    let v: serde_json::Value = serde_json::from_str(&o).unwrap();
    assert_eq!(
        (v["new"].as_str().unwrap(), v["old"].as_str().unwrap()),
        (new, old.as_str())
    );
    assert_eq!(v["step"], "hand-out");
    // Starting again over an unfinished workflow is refused.
    let (code, _, err) = d.ccctl(&[
        "rotate",
        "pcr0",
        "start",
        "--eif",
        eif.to_str().unwrap(),
        "--api",
        &api,
        "--state",
        st,
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("unfinished"), "{err}");

    // A holder who measured something else halts a copy of the workflow.
    let copy = tmp.path().join("copy.json");
    std::fs::copy(&state, &copy).unwrap();
    let (code, _, err) = d.ccctl(&[
        "rotate",
        "pcr0",
        "confirm",
        "--holder",
        "holder-b",
        "--pcr0",
        &"ab".repeat(48),
        "--state",
        copy.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("REFUSED"), "{err}");
    let (code, _, err) = d.ccctl(&["rotate", "pcr0", "next", "--state", copy.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("halted"), "{err}");
    // The right measurement is recorded.
    let (code, o, _) = d.ccctl(&[
        "rotate", "pcr0", "confirm", "--holder", "holder-a", "--pcr0", new, "--state", st,
    ]);
    assert_eq!(code, 0, "{o}");
    assert!(o.contains("matches NEW"), "{o}");

    // 2. Hand out: one message and one new policy per holder.
    let (code, o, err) = d.ccctl(&[
        "rotate",
        "pcr0",
        "next",
        "--out",
        out.to_str().unwrap(),
        "--state",
        st,
    ]);
    assert_eq!(code, 0, "{o}{err}");
    for h in hs.keys() {
        let msg = std::fs::read_to_string(out.join(format!("{h}.md"))).unwrap();
        assert!(
            msg.contains(&format!("allowed_pcr0 = [\"{new}\", \"{old}\"]")),
            "{msg}"
        );
        assert!(
            msg.lines().any(|l| l.starts_with("+ ") && l.contains(new)),
            "{msg}"
        );
    }
    assert_eq!(step(&state), "wait-policies");

    // 3. Wait for the policies: nobody has changed yet; killed while waiting, resumed.
    let (code, _, err) = d.ccctl(&["rotate", "pcr0", "next", "--state", st]);
    assert_eq!(code, 1);
    assert!(
        err.contains("holder-a") && err.contains("holder-c"),
        "{err}"
    );

    kill_while_waiting(&d, &state);
    let put = |name: &str, dir: &Path| {
        let (arn, ep) = &hs[name];
        let p = std::fs::read_to_string(dir.join(format!("{name}.policy.json"))).unwrap();
        put_policy(&rt, arn, ep, &p);
    };
    put("holder-a", &out);
    let (code, _, err) = d.ccctl(&["rotate", "pcr0", "next", "--state", st]);
    assert_eq!(code, 1, "two holders still missing");
    assert!(
        !err.contains("holder-a (") && err.contains("holder-b"),
        "{err}"
    );
    put("holder-b", &out);
    put("holder-c", &out);
    let (code, o, err) = d.ccctl(&["rotate", "pcr0", "next", "--state", st]);
    assert_eq!(code, 0, "{o}{err}");
    assert_eq!(step(&state), "deploy");

    // 4. Deploy. Interlock: with two holders back on OLD only, NEW could not unseal.
    for h in ["holder-b", "holder-c"] {
        let (arn, ep) = &hs[h];
        put_policy(&rt, arn, ep, &original[h]);
    }
    let (code, _, err) = d.ccctl(&["rotate", "pcr0", "next", "--state", st]);
    assert_eq!(code, 1);
    assert!(err.contains("REFUSED: only 1 holder(s) allow NEW"), "{err}");
    put("holder-b", &out);
    put("holder-c", &out);
    // The enclave still runs OLD: not done; killed while waiting for the rollout.
    let (code, o, err) = d.ccctl(&[
        "rotate",
        "pcr0",
        "next",
        "--wait",
        "1s",
        "--interval",
        "200ms",
        "--state",
        st,
    ]);
    assert_eq!(code, 1, "{o}{err}");
    assert!(o.contains("helm upgrade containment-chamber charts/containment-chamber --reuse-values --set image.tag=v2"), "{o}");
    assert!(err.contains("runs OLD"), "{err}");
    // A 1 s wait polled 5 times, but stderr is not a terminal: no spinner frames (issue 13 #7).
    assert!(!err.contains('\r'), "{err:?}");
    // Both watches: the enclave's /status and the pod's nitro-cli through the Kubernetes API.
    assert!(
        err.contains("pod containment-chamber/containment-chamber-0 runs OLD"),
        "{err}"
    );
    // A deploy command that hangs is stopped at --deploy-timeout (exit 2, naming the limit)
    // and the step is not recorded as done (issue 16 #2).
    let t = std::time::Instant::now();
    let (code, _, err) = d.ccctl(&[
        "rotate",
        "pcr0",
        "next",
        "--execute",
        "--deploy-command",
        "exec sleep 30",
        "--deploy-timeout",
        "500ms",
        "--state",
        st,
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("did not finish within the deploy deadline of 500ms"),
        "{err}"
    );
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    assert_eq!(step(&state), "deploy");
    // --execute runs the deploy command once, however often the step is resumed.
    let marker = tmp.path().join("deployed");
    let deploy = format!("touch '{}'", marker.display());
    for first in [true, false] {
        let (code, _, err) = d.ccctl(&[
            "rotate",
            "pcr0",
            "next",
            "--execute",
            "--deploy-command",
            &deploy,
            "--wait",
            "300ms",
            "--interval",
            "100ms",
            "--state",
            st,
        ]);
        assert_eq!(code, 1, "{err}");
        assert_eq!(marker.exists(), first);
        let _ = std::fs::remove_file(&marker);
    }
    kill_while_waiting(&d, &state);
    d.redeploy(new);
    let (code, o, err) = d.ccctl(&[
        "rotate",
        "pcr0",
        "next",
        "--wait",
        "30s",
        "--interval",
        "200ms",
        "--state",
        st,
    ]);
    assert_eq!(code, 0, "{o}{err}");
    assert_eq!(step(&state), "retire");

    // 5. Retire. Interlock: a rollback to OLD blocks it.
    d.redeploy(&old);
    let (code, _, err) = d.ccctl(&["rotate", "pcr0", "next", "--state", st]);
    assert_eq!(code, 1);
    assert!(err.contains("still runs OLD"), "{err}");
    assert!(
        err.contains("pod containment-chamber/containment-chamber-0 still runs OLD"),
        "{err}"
    );
    d.redeploy(new);
    let (code, o, err) = d.ccctl(&[
        "rotate",
        "pcr0",
        "next",
        "--out",
        out2.to_str().unwrap(),
        "--state",
        st,
    ]);
    assert_eq!(code, 0, "{o}{err}");
    let msg = std::fs::read_to_string(out2.join("holder-c.md")).unwrap();
    assert!(
        msg.contains(&format!("allowed_pcr0 = [\"{new}\"]")),
        "{msg}"
    );
    assert_eq!(step(&state), "wait-retired");
    let (code, _, err) = d.ccctl(&["rotate", "pcr0", "next", "--state", st]);
    assert_eq!(code, 1);
    assert!(err.contains("still allows OLD"), "{err}");
    kill_while_waiting(&d, &state);
    for h in hs.keys() {
        put(h, &out2);
    }
    let (code, o, err) = d.ccctl(&["rotate", "pcr0", "next", "--state", st]);
    assert_eq!(code, 0, "{o}{err}");
    let (code, o, _) = d.ccctl(&["rotate", "pcr0", "status", "--state", st, "-o", "json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&o).unwrap();
    assert_eq!(v["step"], "done");
    // The chamber still unseals on NEW, and OLD is no longer admitted by any holder.
    let (code, o, _) = d.ccctl(&[
        "policy",
        "check",
        "--config",
        cfg.to_str().unwrap(),
        "--pcr0",
        &old,
        "--pcr8",
        d.status().unwrap()["attestation"]["pcrs"]["PCR8"]
            .as_str()
            .unwrap(),
        "-o",
        "json",
    ]);
    assert_eq!(code, 1, "{o}");
    let (code, o, _) = d.ccctl(&["doctor", "--local", "-o", "json"]);
    assert_eq!(code, 0, "{o}");
}

#[test]
fn a_pcr8_rotation_from_a_certificate_on_policy_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (pcr0, _, old8) = cc_sandbox::chamber::measurements();
    let cert = fixtures().join("eif/synthetic_signer_cert.pem");
    let new8 = "449c03c2109b5c7072a3275aa0234a6dbdd687447f9bc1be6c9fbaed1396c37e28f2e557c2990f6e6d3db9561aa6b484";
    let mut cfg = format!(
        "principal = \"{}\"\nthreshold = 2\n",
        cc_sandbox::chamber::SIGNER_ROLE
    );
    for (i, h) in ["a", "b", "c"].iter().enumerate() {
        let p = dir.join(format!("{h}.json"));
        std::fs::write(
            &p,
            cc_sandbox::chamber::policy("111111111111", &[&pcr0], &old8),
        )
        .unwrap();
        cfg.push_str(&format!(
            "[[holder]]\nname = \"{h}\"\nkey_arn = \"{}\"\nregion = \"us-east-1\"\npolicy_file = \"{}\"\n",
            cc_sandbox::chamber::key_arn(i),
            p.display()
        ));
    }
    std::fs::write(dir.join("ccctl.toml"), cfg).unwrap();
    let state = dir.join("r8.json");
    let run = |args: &[&str]| {
        let o = Command::new(bin("ccctl"))
            .args(args)
            .args(["--state", state.to_str().unwrap()])
            .output()
            .unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr),
        )
    };
    let (code, o) = run(&[
        "rotate",
        "pcr8",
        "start",
        "--cert",
        cert.to_str().unwrap(),
        "--old",
        &old8,
        "--pcr0",
        &pcr0,
        "--config",
        dir.join("ccctl.toml").to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{o}");
    // The state of another kind is refused by pcr0.
    let (code, o) = run(&["rotate", "pcr0", "status"]);
    assert_eq!(code, 2, "{o}");
    assert!(o.contains("PCR8 rotation"), "{o}");
    let out = dir.join("out");
    let (code, o) = run(&["rotate", "pcr8", "next", "--out", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{o}");
    // The handed-out policy changes PCR8 only; applied, it allows both.
    for h in ["a", "b", "c"] {
        let p = std::fs::read_to_string(out.join(format!("{h}.policy.json"))).unwrap();
        assert!(
            p.contains(new8) && p.contains(&old8) && p.contains(&pcr0),
            "{p}"
        );
        std::fs::write(dir.join(format!("{h}.json")), p).unwrap();
    }
    let (code, o) = run(&["rotate", "pcr8", "next"]);
    assert_eq!(code, 0, "{o}");
    let (code, o) = run(&["rotate", "pcr8", "status", "-o", "json"]);
    assert_eq!(code, 0, "in progress is not a failure: {o}");
    assert!(o.contains("\"step\": \"deploy\""), "{o}");
    // Human: each step once (5a, 5b), and the next command to run (issue 13 #7).
    let (code, o) = run(&["rotate", "pcr8", "status"]);
    assert_eq!(code, 0, "{o}");
    assert_eq!(o.matches("] 5").count(), 2, "{o}");
    assert!(o.contains("] 5a. ") && o.contains("] 5b. "), "{o}");
    assert!(o.contains("next: ccctl rotate pcr8 next --state"), "{o}");
    let (code, o) = run(&["rotate", "pcr8", "next"]);
    assert_eq!(code, 2, "no enclave to watch: {o}");
    assert!(o.contains("--api"), "{o}");
    let (code, _) = run(&["rotate", "pcr8", "abort"]);
    assert_eq!(code, 0);
    let (code, o) = run(&["rotate", "pcr8", "next"]);
    assert_eq!(code, 2);
    assert!(o.contains("aborted"), "{o}");
}
