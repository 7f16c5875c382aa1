//! The rotation's decisions, without I/O: given the state file, what the holders' policies
//! allow and what the watched enclaves attest, [`decide`] says whether the current step
//! advances, is refused by an interlock, or waits (and for whom). `next` and `confirm` in
//! the parent module poll, hand out, deploy, print and save around these functions.
//!
//! `decide` asks for what it cannot judge without: [`Decision::Observe`] names the view to poll
//! (once, for an interlock; or until the step stops waiting, for a waiting step). Given a
//! view, it never asks for that view again, so the caller's loop ends.

use super::{EnclaveView, HolderView, State, Step, short};

/// One poll of every holder's key policy, with the config's threshold.
#[derive(Debug, Clone)]
pub struct HolderViews {
    pub views: Vec<HolderView>,
    /// How many holders must allow a measurement for an enclave running it to unseal.
    pub threshold: u32,
}

impl From<(Vec<HolderView>, u32)> for HolderViews {
    fn from((views, threshold): (Vec<HolderView>, u32)) -> Self {
        HolderViews { views, threshold }
    }
}

/// What can be observed: the holders' policies, or the watched enclaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Holders,
    Enclaves,
}

/// Poll `view`: once (`until: None`, an interlock), or again and again while the step waits,
/// showing `until` as progress, until it no longer waits or the operator's `--wait` runs out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observe {
    pub view: View,
    pub until: Option<&'static str>,
}

/// The step is complete: move to `to` and record `note` in the history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advance {
    pub to: Step,
    pub note: String,
}

/// What `next` does at the current step: advance (possibly after a hand-out or the deploy),
/// refuse (an interlock), wait (for whom), or first observe something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The workflow must not go on (a holder measured something else, or it was aborted).
    Halted { why: String },
    /// The rotation is complete: nothing to do.
    Done,
    /// The step cannot be judged without this view: poll it, then decide again.
    Observe(Observe),
    /// Hand `values` (the rotated PCR's new allowed list) to every holder, then advance.
    HandOut {
        values: Vec<String>,
        what: &'static str,
        then: Advance,
    },
    /// The deploy interlock holds: deploy (run or print, see [`deploy_action`]), then observe
    /// the enclaves (`then`) and decide again.
    Deploy { then: Observe },
    /// The step is complete.
    Advance(Advance),
    /// An interlock: the step must not run now (nothing changes).
    Refuse { why: String },
    /// The step is not complete yet: who is missing (see [`waiting`]).
    Wait { on: View, missing: Vec<String> },
    /// The step cannot be carried out as the workflow was started.
    CannotRun { why: String },
}

const WAIT_POLICIES: &str = "waiting for holders to allow NEW and OLD";
const WAIT_ROLLOUT: &str = "waiting for every enclave to attest NEW";
const WAIT_RETIRED: &str = "waiting for holders to drop OLD";

fn advance(to: Step, note: &str) -> Advance {
    Advance {
        to,
        note: note.to_owned(),
    }
}

/// What to do at the state's step, given what has been observed so far in this run.
pub fn decide(
    s: &State,
    holders: Option<&HolderViews>,
    enclaves: Option<&[EnclaveView]>,
) -> Decision {
    if let Some(why) = &s.halted {
        return Decision::Halted { why: why.clone() };
    }
    let observe = |view, until| Decision::Observe(Observe { view, until });
    match s.step {
        Step::HandOut => Decision::HandOut {
            values: vec![s.new.clone(), s.old.clone()],
            what: "add NEW, keep OLD",
            then: advance(Step::WaitPolicies, "handed out [NEW, OLD]"),
        },
        Step::WaitPolicies => match holders {
            None => observe(View::Holders, Some(WAIT_POLICIES)),
            Some(h) => match missing(&h.views, true, true) {
                m if m.is_empty() => {
                    Decision::Advance(advance(Step::Deploy, "every holder allows NEW and OLD"))
                }
                m => Decision::Wait {
                    on: View::Holders,
                    missing: m,
                },
            },
        },
        Step::Deploy => {
            // Interlock: never deploy an image fewer than threshold holders would unseal.
            let Some(h) = holders else {
                return observe(View::Holders, None);
            };
            let allowing = h
                .views
                .iter()
                .filter(|v| v.allows_new == Some(true))
                .count();
            if (allowing as u32) < h.threshold {
                return Decision::Refuse {
                    why: format!(
                        "only {allowing} holder(s) allow NEW (threshold {}): the new enclaves \
                         could not unseal. Missing: {}",
                        h.threshold,
                        missing(&h.views, true, false).join("; ")
                    ),
                };
            }
            match enclaves {
                None => Decision::Deploy {
                    then: Observe {
                        view: View::Enclaves,
                        until: Some(WAIT_ROLLOUT),
                    },
                },
                Some(e) => rollout(s, e),
            }
        }
        Step::Retire => match enclaves {
            None => observe(View::Enclaves, None),
            Some(e) => retire(s, e),
        },
        Step::WaitRetired => match holders {
            None => observe(View::Holders, Some(WAIT_RETIRED)),
            Some(h) => match missing(&h.views, true, false) {
                m if m.is_empty() => Decision::Advance(advance(
                    Step::Done,
                    "every holder dropped OLD: rotation done",
                )),
                m => Decision::Wait {
                    on: View::Holders,
                    missing: m,
                },
            },
        },
        Step::Done => Decision::Done,
    }
}

/// After the deploy: complete when every watched enclave attests NEW.
fn rollout(s: &State, enclaves: &[EnclaveView]) -> Decision {
    if s.apis.is_empty() && s.kube.is_none() {
        return Decision::CannotRun {
            why: "no enclave to watch (start with -l SELECTOR, or --api ADDR for each): cannot \
                  prove NEW runs"
                .into(),
        };
    }
    let not: Vec<String> = enclaves
        .iter()
        .filter(|v| v.value.as_deref() != Some(s.new.as_str()))
        .map(|v| match (&v.value, &v.error) {
            (Some(x), _) if *x == s.old => format!("{} runs OLD", v.api),
            (Some(x), _) => format!("{} runs {}", v.api, short(x)),
            (None, Some(err)) => format!("{}: {err}", v.api),
            (None, None) => format!("{}: no PCR{}", v.api, s.pcr),
        })
        .collect();
    if not.is_empty() {
        Decision::Advance(advance(Step::Retire, "every watched enclave attests NEW"))
    } else {
        Decision::Wait {
            on: View::Enclaves,
            missing: not,
        }
    }
}

/// Interlock: OLD stays allowed while anything might still run it.
fn retire(s: &State, enclaves: &[EnclaveView]) -> Decision {
    let blocking: Vec<String> = enclaves
        .iter()
        .filter(|v| v.value.as_deref() != Some(s.new.as_str()))
        .map(|v| match (&v.value, &v.error) {
            (Some(x), _) if *x == s.old => format!("{} still runs OLD", v.api),
            (Some(x), _) => format!("{} runs {}", v.api, short(x)),
            (None, err) => format!(
                "{} cannot be asked ({})",
                v.api,
                err.clone().unwrap_or_default()
            ),
        })
        .collect();
    if !blocking.is_empty() {
        return Decision::Refuse {
            why: format!(
                "OLD must stay in the policies while any enclave may run it: {}",
                blocking.join("; ")
            ),
        };
    }
    Decision::HandOut {
        values: vec![s.new.clone()],
        what: "remove OLD",
        then: advance(Step::WaitRetired, "handed out [NEW]"),
    }
}

/// The holders whose policy is not (yet) as wanted, each with why: NEW must be allowed;
/// OLD allowed (`want_old`) or no longer allowed (`!want_old`).
fn missing(views: &[HolderView], want_new: bool, want_old: bool) -> Vec<String> {
    views
        .iter()
        .filter(|v| (want_new && v.allows_new != Some(true)) || (v.allows_old != Some(want_old)))
        .map(|v| {
            let mut why = Vec::new();
            if want_new && v.allows_new != Some(true) {
                why.push("NEW not allowed");
            }
            if want_old && v.allows_old != Some(true) {
                why.push("OLD not allowed");
            }
            if !want_old && v.allows_old != Some(false) {
                why.push("still allows OLD");
            }
            match &v.error {
                Some(e) => format!("{} ({})", v.holder, crate::output::clean(e)),
                None => format!("{} ({})", v.holder, why.join(", ")),
            }
        })
        .collect()
}

/// A [`Decision::Wait`] as one line (progress, and the "not yet" message).
pub fn waiting(on: View, missing: &[String]) -> String {
    match on {
        View::Holders => format!("missing: {}", missing.join("; ")),
        View::Enclaves => missing.join("; "),
    }
}

/// How the deploy step deploys this time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeployAction {
    /// Run this shell command, then record [`deploy_ran`] (and save) before watching.
    Run(String),
    /// Print this command for the operator.
    Print(String),
}

const DEPLOY_RAN: &str = "deploy command ran";

/// The history note recording that `cmd` ran: a resumed deploy step does not run it again.
pub fn deploy_ran(cmd: &str) -> String {
    format!("{DEPLOY_RAN}: {cmd}")
}

/// The deploy command (`command`, default the helm upgrade of the state's release, chart and
/// tag), run when `execute` and no deploy command ran yet in this workflow, printed otherwise.
pub fn deploy_action(s: &State, execute: bool, command: Option<&str>) -> DeployAction {
    let cmd = match command {
        Some(c) => c.to_owned(),
        None => format!(
            "helm upgrade {} {} --reuse-values --set image.tag={}",
            s.release,
            s.chart,
            s.image_tag.as_deref().unwrap_or("NEW_TAG")
        ),
    };
    let ran = s.history.iter().any(|e| e.what.starts_with(DEPLOY_RAN));
    if execute && !ran {
        DeployAction::Run(cmd)
    } else {
        DeployAction::Print(cmd)
    }
}

/// What a holder's own measurement of NEW means for the workflow. Either way the caller
/// records it in `confirmations`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confirmation {
    /// It matches NEW: note it.
    Matches { note: String },
    /// It differs: halt the workflow with this reason (and note it).
    Halt { why: String },
}

/// `measured`: the holder's value, already validated and lowercased.
pub fn confirm(s: &State, holder: &str, measured: &str) -> Confirmation {
    if measured == s.new {
        Confirmation::Matches {
            note: format!("{holder} confirmed NEW"),
        }
    } else {
        Confirmation::Halt {
            why: format!(
                "holder '{holder}' measured PCR{} {measured} but the workflow's NEW is {}: the \
                 images differ (not reproducible, or not the same source). Stop: find out why \
                 before any policy changes",
                s.pcr, s.new
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::rotate::{Event, KubeWatch};

    const NEW: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\
                       aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const OLD: &str = "000000000000000000000000000000000000000000000000\
                       000000000000000000000000000000000000000000000000";
    /// Neither NEW nor OLD.
    const OTHER: &str = "cccccccccccccccccccccccccccccccccccccccccccccccc\
                         cccccccccccccccccccccccccccccccccccccccccccccccc";
    const API: &str = "tcp://127.0.0.1:9000";
    const POD: &str = "pod cc/cc-0";

    // ---- the state ----

    /// A PCR`pcr` rotation at `step`, watching one enclave's /status and the pods `app=cc`.
    fn state(pcr: u8, step: Step) -> State {
        State {
            version: 1,
            pcr,
            new: NEW.into(),
            old: OLD.into(),
            source: "typed by hand".into(),
            other_pcrs: BTreeMap::new(),
            config: "/etc/ccctl.toml".into(),
            apis: vec![API.into()],
            kube: Some(KubeWatch {
                selector: "app=cc".into(),
                namespace: None,
                context: None,
                exec: "kube".into(),
            }),
            release: "containment-chamber".into(),
            chart: "charts/containment-chamber".into(),
            image_tag: Some("v2".into()),
            step,
            confirmations: BTreeMap::new(),
            halted: None,
            history: Vec::new(),
        }
    }
    fn at(step: Step) -> State {
        state(0, step)
    }
    fn at8(step: Step) -> State {
        state(8, step)
    }
    fn halted(mut s: State, why: &str) -> State {
        s.halted = Some(why.into());
        s
    }
    /// Started without --api and without -l.
    fn unwatched(mut s: State) -> State {
        s.apis.clear();
        s.kube = None;
        s
    }

    // ---- what the holders' policies allow ----

    fn holder(name: &str, allows_new: bool, allows_old: bool) -> HolderView {
        HolderView {
            holder: name.into(),
            allows_new: Some(allows_new),
            allows_old: Some(allows_old),
            error: None,
        }
    }
    fn unreadable(name: &str, error: &str) -> HolderView {
        HolderView {
            holder: name.into(),
            allows_new: None,
            allows_old: None,
            error: Some(error.into()),
        }
    }
    fn holders<const N: usize>(threshold: u32, views: [HolderView; N]) -> Option<HolderViews> {
        Some(HolderViews {
            views: views.into(),
            threshold,
        })
    }
    /// Three holders, threshold 2, every policy as `allows_new`/`allows_old`.
    fn all_holders(allows_new: bool, allows_old: bool) -> Option<HolderViews> {
        holders(
            2,
            ["alice", "bob", "carol"].map(|h| holder(h, allows_new, allows_old)),
        )
    }

    // ---- what the watched enclaves attest ----

    fn runs(api: &str, value: &str) -> EnclaveView {
        EnclaveView {
            api: api.into(),
            value: Some(value.into()),
            error: None,
        }
    }
    fn cannot_ask(api: &str, error: &str) -> EnclaveView {
        EnclaveView {
            api: api.into(),
            value: None,
            error: Some(error.into()),
        }
    }
    /// Answers, but attests no value of the rotated PCR.
    fn no_pcr(api: &str) -> EnclaveView {
        EnclaveView {
            api: api.into(),
            value: None,
            error: None,
        }
    }
    fn enclaves<const N: usize>(views: [EnclaveView; N]) -> Option<Vec<EnclaveView>> {
        Some(views.into())
    }
    fn all_run(value: &str) -> Option<Vec<EnclaveView>> {
        enclaves([runs(API, value), runs(POD, value)])
    }

    // ---- decisions ----

    fn observe_once(view: View) -> Decision {
        Decision::Observe(Observe { view, until: None })
    }
    fn observe_until(view: View, what: &'static str) -> Decision {
        Decision::Observe(Observe {
            view,
            until: Some(what),
        })
    }
    fn advance_to(to: Step, note: &str) -> Decision {
        Decision::Advance(advance(to, note))
    }
    fn hand_out(values: &[&str], what: &'static str, to: Step, note: &str) -> Decision {
        Decision::HandOut {
            values: values.iter().map(|v| v.to_string()).collect(),
            what,
            then: advance(to, note),
        }
    }
    fn deploy_then_watch() -> Decision {
        Decision::Deploy {
            then: Observe {
                view: View::Enclaves,
                until: Some("waiting for every enclave to attest NEW"),
            },
        }
    }
    fn refuse(why: &str) -> Decision {
        Decision::Refuse { why: why.into() }
    }
    fn wait(on: View, missing: &[&str]) -> Decision {
        Decision::Wait {
            on,
            missing: missing.iter().map(|m| m.to_string()).collect(),
        }
    }
    fn halt(why: &str) -> Decision {
        Decision::Halted { why: why.into() }
    }

    /// One row of a `decide` table: the state and what was observed, and the decision wanted.
    struct Case {
        name: &'static str,
        state: State,
        holders: Option<HolderViews>,
        enclaves: Option<Vec<EnclaveView>>,
        want: Decision,
    }

    /// Every row decided; every mismatch reported, by name.
    fn check(rows: Vec<Case>) {
        let failures: Vec<String> = rows
            .into_iter()
            .filter_map(|c| {
                let got = decide(&c.state, c.holders.as_ref(), c.enclaves.as_deref());
                (got != c.want).then(|| format!("{}:\n   got {got:?}\n  want {:?}", c.name, c.want))
            })
            .collect();
        assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    }

    #[test]
    fn every_step() {
        check(vec![
            Case {
                name: "2 hand-out: hand [NEW, OLD] to every holder, then wait for their policies",
                state: at(Step::HandOut),
                holders: None,
                enclaves: None,
                want: hand_out(
                    &[NEW, OLD],
                    "add NEW, keep OLD",
                    Step::WaitPolicies,
                    "handed out [NEW, OLD]",
                ),
            },
            Case {
                name: "3 wait-policies, nothing observed: poll holders until NEW and OLD allowed",
                state: at(Step::WaitPolicies),
                holders: None,
                enclaves: None,
                want: observe_until(View::Holders, "waiting for holders to allow NEW and OLD"),
            },
            Case {
                name: "3 wait-policies, every holder allows NEW and OLD: advance to deploy",
                state: at(Step::WaitPolicies),
                holders: all_holders(true, true),
                enclaves: None,
                want: advance_to(Step::Deploy, "every holder allows NEW and OLD"),
            },
            Case {
                name: "3 wait-policies, nobody changed yet: wait for every holder",
                state: at(Step::WaitPolicies),
                holders: all_holders(false, true),
                enclaves: None,
                want: wait(
                    View::Holders,
                    &[
                        "alice (NEW not allowed)",
                        "bob (NEW not allowed)",
                        "carol (NEW not allowed)",
                    ],
                ),
            },
            Case {
                name: "3 wait-policies, some missing: wait for exactly those, with why",
                state: at(Step::WaitPolicies),
                holders: holders(
                    2,
                    [
                        holder("alice", true, true),
                        holder("bob", false, true),
                        holder("carol", true, false),
                        holder("dave", false, false),
                        unreadable("erin", "AccessDeniedException: not authorized"),
                    ],
                ),
                enclaves: None,
                want: wait(
                    View::Holders,
                    &[
                        "bob (NEW not allowed)",
                        "carol (OLD not allowed)",
                        "dave (NEW not allowed, OLD not allowed)",
                        "erin (AccessDeniedException: not authorized)",
                    ],
                ),
            },
            Case {
                name: "3 wait-policies, an unreadable policy's error loses its control characters",
                state: at(Step::WaitPolicies),
                holders: holders(
                    2,
                    [
                        holder("alice", true, true),
                        unreadable("bob", "denied\u{1b}[31m\r"),
                    ],
                ),
                enclaves: None,
                want: wait(View::Holders, &["bob (denied)"]),
            },
            Case {
                name: "4 deploy, nothing observed: ask the holders once (the deploy interlock)",
                state: at(Step::Deploy),
                holders: None,
                enclaves: None,
                want: observe_once(View::Holders),
            },
            Case {
                name: "4 deploy, every holder allows NEW: deploy, then watch the enclaves",
                state: at(Step::Deploy),
                holders: all_holders(true, true),
                enclaves: None,
                want: deploy_then_watch(),
            },
            Case {
                name: "4 deploy, every enclave attests NEW: advance to retire",
                state: at(Step::Deploy),
                holders: all_holders(true, true),
                enclaves: all_run(NEW),
                want: advance_to(Step::Retire, "every watched enclave attests NEW"),
            },
            Case {
                name: "4 deploy, rollout incomplete: wait for exactly the enclaves not on NEW",
                state: at(Step::Deploy),
                holders: all_holders(true, true),
                enclaves: enclaves([
                    runs("pod cc/cc-0", NEW),
                    runs("pod cc/cc-1", OLD),
                    runs("pod cc/cc-2", OTHER),
                    cannot_ask("tcp://127.0.0.1:9000", "connection refused"),
                    no_pcr("tcp://127.0.0.1:9001"),
                ]),
                want: wait(
                    View::Enclaves,
                    &[
                        "pod cc/cc-1 runs OLD",
                        "pod cc/cc-2 runs cccccccccccccccc…",
                        "tcp://127.0.0.1:9000: connection refused",
                        "tcp://127.0.0.1:9001: no PCR0",
                    ],
                ),
            },
            Case {
                name: "4 deploy, started with nothing to watch: cannot prove NEW runs",
                state: unwatched(at(Step::Deploy)),
                holders: all_holders(true, true),
                enclaves: enclaves([]),
                want: Decision::CannotRun {
                    why: "no enclave to watch (start with -l SELECTOR, or --api ADDR for each): \
                          cannot prove NEW runs"
                        .into(),
                },
            },
            Case {
                name: "5 retire, nothing observed: ask the enclaves once (the retire interlock)",
                state: at(Step::Retire),
                holders: None,
                enclaves: None,
                want: observe_once(View::Enclaves),
            },
            Case {
                name: "5 retire, every enclave attests NEW: hand out [NEW], wait for OLD to go",
                state: at(Step::Retire),
                holders: None,
                enclaves: all_run(NEW),
                want: hand_out(&[NEW], "remove OLD", Step::WaitRetired, "handed out [NEW]"),
            },
            Case {
                name: "5 wait-retired, nothing observed: poll the holders until they dropped OLD",
                state: at(Step::WaitRetired),
                holders: None,
                enclaves: None,
                want: observe_until(View::Holders, "waiting for holders to drop OLD"),
            },
            Case {
                name: "5 wait-retired, every holder dropped OLD: done",
                state: at(Step::WaitRetired),
                holders: all_holders(true, false),
                enclaves: None,
                want: advance_to(Step::Done, "every holder dropped OLD: rotation done"),
            },
            Case {
                name: "5 wait-retired, some missing: wait for exactly those, with why",
                state: at(Step::WaitRetired),
                holders: holders(
                    2,
                    [
                        holder("alice", true, false),
                        holder("bob", true, true),
                        holder("carol", false, false),
                        holder("dave", false, true),
                        unreadable("erin", "timed out"),
                    ],
                ),
                enclaves: None,
                want: wait(
                    View::Holders,
                    &[
                        "bob (still allows OLD)",
                        "carol (NEW not allowed)",
                        "dave (NEW not allowed, still allows OLD)",
                        "erin (timed out)",
                    ],
                ),
            },
            Case {
                name: "6 done: nothing to do",
                state: at(Step::Done),
                holders: None,
                enclaves: None,
                want: Decision::Done,
            },
            Case {
                name: "6 done, whatever is observed: nothing to do",
                state: at(Step::Done),
                holders: all_holders(false, true),
                enclaves: all_run(OLD),
                want: Decision::Done,
            },
        ]);
    }

    #[test]
    fn interlocks() {
        check(vec![
            Case {
                name: "deploy refused: 1 holder allows NEW, threshold 2 (the rest are listed)",
                state: at(Step::Deploy),
                holders: holders(
                    2,
                    [
                        holder("alice", true, true),
                        holder("bob", false, true),
                        unreadable("carol", "timed out"),
                    ],
                ),
                enclaves: None,
                want: refuse(
                    "only 1 holder(s) allow NEW (threshold 2): the new enclaves could not \
                     unseal. Missing: alice (still allows OLD); bob (NEW not allowed, still \
                     allows OLD); carol (timed out)",
                ),
            },
            Case {
                name: "deploy refused: no holder allows NEW, threshold 1",
                state: at(Step::Deploy),
                holders: holders(1, [holder("alice", false, true)]),
                enclaves: None,
                want: refuse(
                    "only 0 holder(s) allow NEW (threshold 1): the new enclaves could not \
                     unseal. Missing: alice (NEW not allowed, still allows OLD)",
                ),
            },
            Case {
                name: "deploy refused: an unreadable policy does not count as allowing",
                state: at(Step::Deploy),
                holders: holders(
                    2,
                    [holder("alice", true, false), unreadable("bob", "timed out")],
                ),
                enclaves: None,
                want: refuse(
                    "only 1 holder(s) allow NEW (threshold 2): the new enclaves could not \
                     unseal. Missing: bob (timed out)",
                ),
            },
            Case {
                name: "deploy allowed: exactly threshold (2 of 3) allow NEW",
                state: at(Step::Deploy),
                holders: holders(
                    2,
                    [
                        holder("alice", true, true),
                        holder("bob", true, true),
                        holder("carol", false, true),
                    ],
                ),
                enclaves: None,
                want: deploy_then_watch(),
            },
            Case {
                name: "deploy: the interlock is judged again when the enclaves are given too",
                state: at(Step::Deploy),
                holders: holders(2, [holder("alice", true, true), holder("bob", false, true)]),
                enclaves: all_run(NEW),
                want: refuse(
                    "only 1 holder(s) allow NEW (threshold 2): the new enclaves could not \
                     unseal. Missing: alice (still allows OLD); bob (NEW not allowed, still \
                     allows OLD)",
                ),
            },
            Case {
                name: "deploy: enclaves without the holders: ask the holders first, never skip it",
                state: at(Step::Deploy),
                holders: None,
                enclaves: all_run(NEW),
                want: observe_once(View::Holders),
            },
            Case {
                name: "retire refused: an enclave still runs OLD",
                state: at(Step::Retire),
                holders: None,
                enclaves: enclaves([runs(API, NEW), runs(POD, OLD)]),
                want: refuse(
                    "OLD must stay in the policies while any enclave may run it: \
                     pod cc/cc-0 still runs OLD",
                ),
            },
            Case {
                name: "retire refused: an enclave cannot be asked",
                state: at(Step::Retire),
                holders: None,
                enclaves: enclaves([
                    runs(POD, NEW),
                    cannot_ask(API, "tcp://127.0.0.1:9000/status answered 503"),
                ]),
                want: refuse(
                    "OLD must stay in the policies while any enclave may run it: \
                     tcp://127.0.0.1:9000 cannot be asked (tcp://127.0.0.1:9000/status \
                     answered 503)",
                ),
            },
            Case {
                name: "retire refused: the pods cannot be listed",
                state: at(Step::Retire),
                holders: None,
                enclaves: enclaves([
                    cannot_ask("pods 'app=cc'", "no pod matches 'app=cc' in 'default'"),
                    runs(API, NEW),
                ]),
                want: refuse(
                    "OLD must stay in the policies while any enclave may run it: \
                     pods 'app=cc' cannot be asked (no pod matches 'app=cc' in 'default')",
                ),
            },
            Case {
                name: "retire refused: one runs neither NEW nor OLD, one attests no PCR0",
                state: at(Step::Retire),
                holders: None,
                enclaves: enclaves([runs(POD, OTHER), no_pcr(API)]),
                want: refuse(
                    "OLD must stay in the policies while any enclave may run it: \
                     pod cc/cc-0 runs cccccccccccccccc…; tcp://127.0.0.1:9000 cannot be asked ()",
                ),
            },
        ]);
    }

    #[test]
    fn a_halted_workflow_goes_nowhere() {
        let why = "holder 'bob' measured something else";
        check(vec![
            Case {
                name: "halted at hand-out",
                state: halted(at(Step::HandOut), why),
                holders: None,
                enclaves: None,
                want: halt(why),
            },
            Case {
                name: "halted at wait-policies, every holder ready",
                state: halted(at(Step::WaitPolicies), why),
                holders: all_holders(true, true),
                enclaves: None,
                want: halt(why),
            },
            Case {
                name: "halted at deploy, past the interlock",
                state: halted(at(Step::Deploy), why),
                holders: all_holders(true, true),
                enclaves: None,
                want: halt(why),
            },
            Case {
                name: "halted at deploy, every enclave on NEW",
                state: halted(at(Step::Deploy), why),
                holders: all_holders(true, true),
                enclaves: all_run(NEW),
                want: halt(why),
            },
            Case {
                name: "halted at retire, every enclave on NEW",
                state: halted(at(Step::Retire), why),
                holders: None,
                enclaves: all_run(NEW),
                want: halt(why),
            },
            Case {
                name: "halted at wait-retired, every holder dropped OLD",
                state: halted(at(Step::WaitRetired), why),
                holders: all_holders(true, false),
                enclaves: None,
                want: halt(why),
            },
            Case {
                name: "aborted when done: halted wins",
                state: halted(at(Step::Done), "aborted by the operator"),
                holders: None,
                enclaves: None,
                want: halt("aborted by the operator"),
            },
            Case {
                name: "pcr8, halted at hand-out",
                state: halted(at8(Step::HandOut), why),
                holders: None,
                enclaves: None,
                want: halt(why),
            },
        ]);
    }

    #[test]
    fn pcr8_rotations() {
        check(vec![
            Case {
                name: "pcr8 hand-out: the state's values (PCR8) are handed out",
                state: at8(Step::HandOut),
                holders: None,
                enclaves: None,
                want: hand_out(
                    &[NEW, OLD],
                    "add NEW, keep OLD",
                    Step::WaitPolicies,
                    "handed out [NEW, OLD]",
                ),
            },
            Case {
                name: "pcr8 wait-policies: every holder ready",
                state: at8(Step::WaitPolicies),
                holders: all_holders(true, true),
                enclaves: None,
                want: advance_to(Step::Deploy, "every holder allows NEW and OLD"),
            },
            Case {
                name: "pcr8 deploy refused below threshold",
                state: at8(Step::Deploy),
                holders: holders(3, [holder("a", true, true), holder("b", true, true)]),
                enclaves: None,
                want: refuse(
                    "only 2 holder(s) allow NEW (threshold 3): the new enclaves could not \
                     unseal. Missing: a (still allows OLD); b (still allows OLD)",
                ),
            },
            Case {
                name: "pcr8 deploy: an unsigned enclave (no PCR8) is waited for",
                state: at8(Step::Deploy),
                holders: all_holders(true, true),
                enclaves: enclaves([runs(POD, NEW), no_pcr(API)]),
                want: wait(View::Enclaves, &["tcp://127.0.0.1:9000: no PCR8"]),
            },
            Case {
                name: "pcr8 deploy: every enclave attests NEW",
                state: at8(Step::Deploy),
                holders: all_holders(true, true),
                enclaves: all_run(NEW),
                want: advance_to(Step::Retire, "every watched enclave attests NEW"),
            },
            Case {
                name: "pcr8 retire refused while an enclave runs OLD",
                state: at8(Step::Retire),
                holders: None,
                enclaves: enclaves([runs(API, OLD)]),
                want: refuse(
                    "OLD must stay in the policies while any enclave may run it: \
                     tcp://127.0.0.1:9000 still runs OLD",
                ),
            },
            Case {
                name: "pcr8 wait-retired: done",
                state: at8(Step::WaitRetired),
                holders: all_holders(true, false),
                enclaves: None,
                want: advance_to(Step::Done, "every holder dropped OLD: rotation done"),
            },
        ]);
    }

    /// `next` without I/O: observe (`holders`, `enclaves`) whatever the workflow asks for,
    /// count the deploys, carry out a hand-out or advance. The decision that ended the run.
    fn next(s: &mut State, h: &HolderViews, e: &[EnclaveView], deploys: &mut u32) -> Decision {
        let (mut holders, mut enclaves) = (None, None);
        for _ in 0..5 {
            let d = decide(s, holders, enclaves);
            let o = match &d {
                Decision::Observe(o) => *o,
                Decision::Deploy { then } => {
                    *deploys += 1;
                    *then
                }
                Decision::HandOut { then, .. } | Decision::Advance(then) => {
                    s.step = then.to;
                    s.note(then.note.clone());
                    return d;
                }
                _ => return d,
            };
            match o.view {
                View::Holders => holders = Some(h),
                View::Enclaves => enclaves = Some(e),
            }
        }
        panic!("the workflow keeps asking to observe at {:?}", s.step);
    }

    #[test]
    fn a_whole_rotation_one_step_per_next() {
        for pcr in [0, 8] {
            let mut s = state(pcr, Step::HandOut);
            let mut deploys = 0;
            // Each step's `next`, with what it waits for in place.
            for (h, e) in [
                (all_holders(false, true), all_run(OLD)),
                (all_holders(true, true), all_run(OLD)),
                (all_holders(true, true), all_run(NEW)),
                (all_holders(true, true), all_run(NEW)),
                (all_holders(true, false), all_run(NEW)),
            ] {
                let before = s.step;
                next(
                    &mut s,
                    h.as_ref().unwrap(),
                    e.as_deref().unwrap(),
                    &mut deploys,
                );
                assert_ne!(s.step, before, "pcr{pcr}");
            }
            assert_eq!(s.step, Step::Done, "pcr{pcr}");
            assert_eq!(deploys, 1, "pcr{pcr}");
            let notes: Vec<&str> = s.history.iter().map(|e| e.what.as_str()).collect();
            assert_eq!(
                notes,
                [
                    "handed out [NEW, OLD]",
                    "every holder allows NEW and OLD",
                    "every watched enclave attests NEW",
                    "handed out [NEW]",
                    "every holder dropped OLD: rotation done",
                ],
                "pcr{pcr}"
            );
            assert_eq!(
                next(
                    &mut s,
                    &all_holders(true, false).unwrap(),
                    &[],
                    &mut deploys
                ),
                Decision::Done
            );
        }
    }

    /// A `next` that waits or is refused leaves the step and the history as they were.
    #[test]
    fn waiting_or_refused_the_step_stays() {
        for (name, step, h, e, want, deploys) in [
            (
                "wait-policies: nobody changed yet",
                Step::WaitPolicies,
                all_holders(false, true),
                all_run(OLD),
                wait(
                    View::Holders,
                    &[
                        "alice (NEW not allowed)",
                        "bob (NEW not allowed)",
                        "carol (NEW not allowed)",
                    ],
                ),
                0,
            ),
            (
                "deploy: refused below threshold, nothing deployed",
                Step::Deploy,
                all_holders(false, true),
                all_run(OLD),
                refuse(
                    "only 0 holder(s) allow NEW (threshold 2): the new enclaves could not \
                     unseal. Missing: alice (NEW not allowed, still allows OLD); bob (NEW not \
                     allowed, still allows OLD); carol (NEW not allowed, still allows OLD)",
                ),
                0,
            ),
            (
                "deploy: deployed, the enclaves still run OLD",
                Step::Deploy,
                all_holders(true, true),
                all_run(OLD),
                wait(
                    View::Enclaves,
                    &["tcp://127.0.0.1:9000 runs OLD", "pod cc/cc-0 runs OLD"],
                ),
                1,
            ),
            (
                "retire: refused while an enclave runs OLD",
                Step::Retire,
                all_holders(true, true),
                enclaves([runs(POD, OLD)]),
                refuse(
                    "OLD must stay in the policies while any enclave may run it: \
                     pod cc/cc-0 still runs OLD",
                ),
                0,
            ),
            (
                "wait-retired: a holder still allows OLD",
                Step::WaitRetired,
                holders(2, [holder("alice", true, false), holder("bob", true, true)]),
                all_run(NEW),
                wait(View::Holders, &["bob (still allows OLD)"]),
                0,
            ),
        ] {
            let mut s = at(step);
            let mut n = 0;
            let got = next(&mut s, h.as_ref().unwrap(), e.as_deref().unwrap(), &mut n);
            assert_eq!(got, want, "{name}");
            assert_eq!((s.step, s.history.len(), n), (step, 0, deploys), "{name}");
        }
    }

    /// Given a view, `decide` never asks for it again (so `next`'s loop ends).
    #[test]
    fn never_asks_again_for_what_it_was_given() {
        let steps = [
            Step::HandOut,
            Step::WaitPolicies,
            Step::Deploy,
            Step::Retire,
            Step::WaitRetired,
            Step::Done,
        ];
        let hs = [None, all_holders(true, true), all_holders(false, true)];
        let es = [None, all_run(NEW), all_run(OLD), enclaves([])];
        for step in steps {
            for h in &hs {
                for e in &es {
                    let d = decide(&at(step), h.as_ref(), e.as_deref());
                    let asked = match &d {
                        Decision::Observe(o) | Decision::Deploy { then: o } => Some(o.view),
                        _ => None,
                    };
                    assert!(
                        !(asked == Some(View::Holders) && h.is_some()
                            || asked == Some(View::Enclaves) && e.is_some()),
                        "{step:?} with holders {} and enclaves {}: {d:?}",
                        h.is_some(),
                        e.is_some()
                    );
                }
            }
        }
    }

    #[test]
    fn waiting_lines() {
        let m = ["a (x)".to_owned(), "b (y)".to_owned()];
        for (name, on, want) in [
            (
                "holders: after 'missing:'",
                View::Holders,
                "missing: a (x); b (y)",
            ),
            ("enclaves: as they are", View::Enclaves, "a (x); b (y)"),
        ] {
            assert_eq!(waiting(on, &m), want, "{name}");
        }
    }

    #[test]
    fn confirmations() {
        let mismatch = |pcr: u8, holder: &str, v: &str| Confirmation::Halt {
            why: format!(
                "holder '{holder}' measured PCR{pcr} {v} but the workflow's NEW is {NEW}: the \
                 images differ (not reproducible, or not the same source). Stop: find out why \
                 before any policy changes"
            ),
        };
        for (name, s, holder, measured, want) in [
            (
                "pcr0, matches NEW: recorded",
                at(Step::HandOut),
                "alice",
                NEW,
                Confirmation::Matches {
                    note: "alice confirmed NEW".into(),
                },
            ),
            (
                "pcr0, another value: halt, naming the holder and both values",
                at(Step::HandOut),
                "bob",
                OTHER,
                mismatch(0, "bob", OTHER),
            ),
            (
                "pcr0, OLD: a mismatch too",
                at(Step::WaitPolicies),
                "carol",
                OLD,
                mismatch(0, "carol", OLD),
            ),
            (
                "pcr8, matches NEW: recorded",
                at8(Step::Deploy),
                "alice",
                NEW,
                Confirmation::Matches {
                    note: "alice confirmed NEW".into(),
                },
            ),
            (
                "pcr8, another value: halt, naming PCR8",
                at8(Step::HandOut),
                "bob",
                OTHER,
                mismatch(8, "bob", OTHER),
            ),
        ] {
            assert_eq!(confirm(&s, holder, measured), want, "{name}");
        }
    }

    /// The halt a mismatching confirmation records stops the workflow at every step.
    #[test]
    fn a_mismatching_confirmation_halts_the_workflow() {
        for step in [
            Step::HandOut,
            Step::WaitPolicies,
            Step::Deploy,
            Step::Retire,
            Step::WaitRetired,
        ] {
            let mut s = at(step);
            let Confirmation::Halt { why } = confirm(&s, "bob", OTHER) else {
                panic!("{step:?}: a mismatch must halt");
            };
            s.halted = Some(why.clone());
            assert_eq!(
                decide(
                    &s,
                    all_holders(true, true).as_ref(),
                    all_run(NEW).as_deref()
                ),
                halt(&why),
                "{step:?}"
            );
        }
    }

    #[test]
    fn deploy_actions() {
        let ran = |mut s: State, cmd: &str| {
            s.history.push(Event {
                at: "2025-01-01T00:00:00Z".into(),
                what: deploy_ran(cmd),
            });
            s
        };
        let untagged = |mut s: State| {
            s.image_tag = None;
            s
        };
        let helm = "helm upgrade containment-chamber charts/containment-chamber --reuse-values \
                    --set image.tag=v2";
        let custom = "kubectl rollout restart sts/cc";
        for (name, s, execute, command, want) in [
            (
                "default: print the helm upgrade of the state's release, chart and tag",
                at(Step::Deploy),
                false,
                None,
                DeployAction::Print(helm.into()),
            ),
            (
                "no image tag: the placeholder NEW_TAG",
                untagged(at(Step::Deploy)),
                false,
                None,
                DeployAction::Print(
                    "helm upgrade containment-chamber charts/containment-chamber \
                     --reuse-values --set image.tag=NEW_TAG"
                        .into(),
                ),
            ),
            (
                "--deploy-command replaces the helm upgrade",
                at(Step::Deploy),
                false,
                Some(custom),
                DeployAction::Print(custom.into()),
            ),
            (
                "--execute, never ran: run the helm upgrade",
                at(Step::Deploy),
                true,
                None,
                DeployAction::Run(helm.into()),
            ),
            (
                "--execute --deploy-command, never ran: run it",
                at(Step::Deploy),
                true,
                Some(custom),
                DeployAction::Run(custom.into()),
            ),
            (
                "--execute, resumed after it ran: print, do not run again",
                ran(at(Step::Deploy), custom),
                true,
                Some(custom),
                DeployAction::Print(custom.into()),
            ),
            (
                "--execute with another command after one ran: not run either",
                ran(at(Step::Deploy), helm),
                true,
                Some(custom),
                DeployAction::Print(custom.into()),
            ),
        ] {
            assert_eq!(deploy_action(&s, execute, command), want, "{name}");
        }
    }

    /// `--execute` on every resume: the command runs the first time only, also when the
    /// workflow resumes from its state file.
    #[test]
    fn execute_runs_the_deploy_once_across_resumes() {
        let mut s = at(Step::Deploy);
        let mut runs = 0;
        for _resume in 0..3 {
            match deploy_action(&s, true, Some("true")) {
                DeployAction::Run(cmd) => {
                    runs += 1;
                    s.note(deploy_ran(&cmd));
                }
                DeployAction::Print(cmd) => assert_eq!(cmd, "true"),
            }
            // Saved and loaded again.
            s = serde_json::from_str(&crate::output::json(&s)).unwrap();
        }
        assert_eq!(runs, 1);
    }
}
