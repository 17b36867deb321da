//! Nomad's own rules for what a job may say, where nomarch must agree with Nomad to refuse
//! first (`nomarch validate`) and nomad-sim must answer as Nomad does. Written once, from
//! Nomad's source, with the texts Nomad prints; each function names what it follows.

/// Job fields the Nomad server sets, never a submitter: a register cannot choose them
/// (nomad/state/state_store.go `upsertJobImpl` sets `Version`, `Stable`, `Status` and the
/// indexes; nomad/job_endpoint.go `Register` sets `SubmitTime`), and a diff leaves them out
/// (nomad/structs/diff.go `Job.Diff`'s filter). `Stop` is not one of them: the user sets it.
pub const SERVER_SET_JOB_FIELDS: &[&str] = &[
    "Status",
    "StatusDescription",
    "Stable",
    "Version",
    "SubmitTime",
    "CreateIndex",
    "ModifyIndex",
    "JobModifyIndex",
];

/// hashicorp/go-version `VersionRegexpRaw` (what a `version` constraint compares).
const GO_VERSION: &str = r"v?([0-9]+(\.[0-9]+)*?)(-([0-9]+[0-9A-Za-z\-~]*(\.[0-9A-Za-z\-~]+)*)|(-?([A-Za-z\-~]+[0-9A-Za-z\-~]*(\.[0-9A-Za-z\-~]+)*)))?(\+([0-9A-Za-z\-~]+(\.[0-9A-Za-z\-~]+)*))??";
/// hashicorp/go-version `SemverRegexpRaw` (a separator before the prerelease is required).
const GO_SEMVER: &str = r"v?([0-9]+(\.[0-9]+)*?)(-([0-9]+[0-9A-Za-z\-~]*(\.[0-9A-Za-z\-~]+)*)|(-([A-Za-z\-~]+[0-9A-Za-z\-~]*(\.[0-9A-Za-z\-~]+)*)))?(\+([0-9A-Za-z\-~]+(\.[0-9A-Za-z\-~]+)*))??";

/// go-version `NewConstraint` (and nomad/helper/constraints/semver `NewConstraint`): comma
/// separated `[operator] version` clauses, each or "Malformed constraint: <clause>".
fn version_constraint_error(text: &str, operators: &str, version: &str) -> Option<String> {
    let clause = regex::Regex::new(&format!(r"^\s*({operators})\s*({version})\s*$"))
        .expect("the constraint grammar compiles");
    text.split(',')
        .find(|single| !clause.is_match(single))
        .map(|single| format!("Malformed constraint: {single}"))
}

/// nomad/structs/structs.go `Constraint.Validate`: what an operand demands of its targets, in
/// Nomad's words. The detail after "Regular expression failed to compile:" is the Rust regex
/// crate's, not Go's (both read RE2 syntax; their messages differ).
pub fn constraint_operand_errors(operand: &str, ltarget: &str, rtarget: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if operand.is_empty() {
        errors.push("Missing constraint operand".to_string());
    }
    let mut require_ltarget = true;
    match operand {
        "distinct_hosts" => require_ltarget = false,
        "set_contains_all" | "set_contains_any" | "set_contains" => {
            if rtarget.is_empty() {
                errors.push("Set contains constraint requires an RTarget".into());
            }
        }
        "regexp" => {
            if let Err(e) = regex::Regex::new(rtarget) {
                let detail = e.to_string();
                let last = detail.lines().last().unwrap_or_default().trim();
                errors.push(format!("Regular expression failed to compile: {last}"));
            }
        }
        "version" => {
            if let Some(e) = version_constraint_error(rtarget, r"|=|!=|>|<|>=|<=|~>", GO_VERSION) {
                errors.push(format!("Version constraint is invalid: {e}"));
            }
        }
        "semver" => {
            if let Some(e) = version_constraint_error(rtarget, r"|=|!=|>|<|>=|<=", GO_SEMVER) {
                errors.push(format!("Semver constraint is invalid: {e}"));
            }
        }
        "distinct_property" => {
            if !rtarget.is_empty() {
                match rtarget.parse::<u64>() {
                    Err(_) => errors.push(format!(
                        "Failed to convert RTarget {rtarget:?} to uint64: strconv.ParseUint: parsing {rtarget:?}: invalid syntax"
                    )),
                    Ok(0) => errors.push(
                        "Distinct Property must have an allowed count of 1 or greater: 0 < 1".into(),
                    ),
                    Ok(_) => {}
                }
            }
        }
        "is_set" | "is_not_set" => {
            if !rtarget.is_empty() {
                errors.push(format!("Operator {operand:?} does not support an RTarget"));
            }
        }
        "=" | "==" | "is" | "!=" | "not" | "<" | "<=" | ">" | ">=" => {
            if rtarget.is_empty() {
                errors.push(format!("Operator {operand:?} requires an RTarget"));
            }
        }
        _ => errors.push(format!("Unknown constraint type {operand:?}")),
    }
    if require_ltarget && ltarget.is_empty() {
        errors.push("No LTarget provided but is required by constraint".into());
    }
    errors
}
