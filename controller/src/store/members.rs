//! The etcd members a store talks to, and what to do when one attempt fails.
//!
//! Contract: every unary call goes to one member at a time, starting with the one that answered
//! last. Within the call's budget ([`super::REQUEST_TIMEOUT`]) a call moves on to the next
//! member when the one it asked is down, and waits a little and asks again when etcd says the
//! request was not carried out (a leader election). A write is never sent twice when its fate is
//! unknown (a timeout after it was sent): that error goes back to the caller, who re-reads. The
//! answer is [`StoreError::Unreachable`] only when no member answered at all.
//!
//! One client per member instead of etcd-client's balanced channel: that channel keeps handing
//! requests to a member it cannot connect to, so with one of three members down a third of all
//! calls failed with "tcp connect error".

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use etcd_client::{Client, ConnectOptions};
use tokio::sync::OnceCell;
use tokio::time::Instant;

use super::error::{Result, StoreError};

/// The longest one attempt may take before the next member is tried (reads) or the call gives
/// up (writes): well under the call's budget, so a member that hangs leaves time for others.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
/// The first pause after etcd said "not now"; it doubles up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(50);
const MAX_PAUSE: Duration = Duration::from_millis(800);

/// Whether a request may be sent again when it is unknown whether the last try was carried out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Idempotence {
    /// Reads, lease renewals, watches: asking twice changes nothing.
    Read,
    /// Puts, transactions with writes, lease grants: asked twice, they could happen twice.
    Write,
}

/// What one failed attempt says about the next one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Failure {
    /// The member could not be reached; nothing was sent. Ask the next member.
    MemberDown,
    /// etcd answered that it did not carry the request out (no leader, an election under way,
    /// too busy). Ask again after a pause.
    NotCarriedOut,
    /// Sent, and then the answer was lost or late: it may or may not have happened.
    Unknown,
    /// etcd's real answer (a compacted revision, a refused permission): asking again is useless.
    Final,
}

/// One rule: a name, a test on the error, and what it means. The first rule that matches wins.
struct Rule {
    name: &'static str,
    matches: fn(&etcd_client::Error, &str) -> bool,
    failure: Failure,
}

/// etcd server errors ("etcdserver: ...") that are returned before the request is proposed to
/// raft, so the request did not happen (etcd's `v3rpc/rpctypes` and `etcdserver/v3_server.go`).
const NOT_CARRIED_OUT: &[&str] = &[
    "etcdserver: no leader",
    "etcdserver: leader changed",
    "etcdserver: not enough started members",
    "etcdserver: too many requests",
    "etcdserver: unhealthy cluster",
];

const RULES: &[Rule] = &[
    // The transport never got a connection (refused, no route, DNS, TLS handshake): the request
    // was not sent. tonic reports this either as a transport error or as Unavailable.
    Rule {
        name: "connect failed",
        matches: |e, text| {
            matches!(
                e,
                etcd_client::Error::TransportError(_) | etcd_client::Error::GRpcStatus(_)
            ) && (text.contains("tcp connect error")
                || text.contains("Connection refused")
                || text.contains("error trying to connect"))
        },
        failure: Failure::MemberDown,
    },
    // A member without a leader, or during an election, refuses before proposing anything.
    Rule {
        name: "etcd says not now",
        matches: |_, text| NOT_CARRIED_OUT.iter().any(|m| text.contains(m)),
        failure: Failure::NotCarriedOut,
    },
    // A member that stops while serving, a connection cut mid-request, a proposal that timed
    // out: the request may have been applied.
    Rule {
        name: "answer lost",
        matches: |e, _| {
            matches!(
                e,
                etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_)
            ) || matches!(e, etcd_client::Error::GRpcStatus(s)
                    if matches!(s.code(), tonic::Code::Unavailable | tonic::Code::DeadlineExceeded
                        | tonic::Code::Cancelled | tonic::Code::Unknown))
        },
        failure: Failure::Unknown,
    },
    // Everything else is etcd's answer to this request.
    Rule {
        name: "etcd answered",
        matches: |_, _| true,
        failure: Failure::Final,
    },
];

/// Which rule an error falls under.
pub(super) fn classify(e: &etcd_client::Error) -> (Failure, &'static str) {
    let text = root_cause(e);
    let rule = RULES
        .iter()
        .find(|rule| (rule.matches)(e, &text))
        .expect("the last rule matches everything");
    (rule.failure, rule.name)
}

/// The members, one lazily connected client each, and the one that answered last.
pub(super) struct Members {
    urls: Vec<String>,
    options: ConnectOptions,
    clients: Vec<OnceCell<Client>>,
    preferred: AtomicUsize,
}

impl Members {
    pub(super) fn new(urls: &[String], options: ConnectOptions) -> Members {
        Members {
            urls: urls.to_vec(),
            options,
            clients: urls.iter().map(|_| OnceCell::new()).collect(),
            preferred: AtomicUsize::new(0),
        }
    }

    pub(super) fn joined(&self) -> String {
        self.urls.join(",")
    }

    /// This member's client, connecting it on first use (with etcd auth, connecting asks the
    /// member for a token, which fails while it is down; the next call tries again).
    async fn client(&self, member: usize) -> std::result::Result<Client, etcd_client::Error> {
        self.clients[member]
            .get_or_try_init(|| {
                Client::connect([self.urls[member].as_str()], Some(self.options.clone()))
            })
            .await
            .cloned()
    }

    /// Runs `request` against the members as the module doc says, within `budget`.
    pub(super) async fn call<T, F, Fut>(
        &self,
        idempotence: Idempotence,
        budget: Duration,
        mut request: F,
    ) -> Result<T>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        let deadline = Instant::now() + budget;
        let mut member = self.preferred.load(Ordering::Relaxed) % self.urls.len();
        let mut pause = FIRST_PAUSE;
        // Members found down since one last answered: when that is all of them, pause too.
        let mut down_in_a_row = 0;
        let mut last_down = String::new();
        let mut last_refusal: Option<String> = None;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(self.out_of_time(budget, last_refusal, last_down));
            }
            let attempt = async {
                let client = self.client(member).await?;
                request(client).await
            };
            let failure = match tokio::time::timeout(left.min(ATTEMPT_TIMEOUT), attempt).await {
                Ok(Ok(value)) => {
                    self.preferred.store(member, Ordering::Relaxed);
                    return Ok(value);
                }
                Ok(Err(e)) => {
                    let (failure, _) = classify(&e);
                    match failure {
                        Failure::MemberDown => last_down = root_cause(&e),
                        Failure::NotCarriedOut => last_refusal = Some(root_cause(&e)),
                        Failure::Unknown if idempotence == Idempotence::Read => {
                            last_refusal = Some(root_cause(&e))
                        }
                        Failure::Unknown => {
                            return Err(StoreError::Unknown {
                                endpoint: self.urls[member].clone(),
                                detail: root_cause(&e),
                            })
                        }
                        Failure::Final => return Err(e.into()),
                    }
                    failure
                }
                // A member that does not answer at all: as good as down for a read; a write
                // may have been received (a member waiting for an election holds it).
                Err(_) if idempotence == Idempotence::Read => {
                    last_down = format!("{} did not answer", self.urls[member]);
                    Failure::MemberDown
                }
                Err(_) => {
                    return Err(StoreError::Unknown {
                        endpoint: self.urls[member].clone(),
                        detail: format!("no answer within {:?}", left.min(ATTEMPT_TIMEOUT)),
                    })
                }
            };
            match failure {
                Failure::MemberDown => {
                    member = (member + 1) % self.urls.len();
                    down_in_a_row += 1;
                    if down_in_a_row >= self.urls.len() {
                        down_in_a_row = 0;
                        pause = self.pause(pause, deadline).await;
                    }
                }
                _ => {
                    down_in_a_row = 0;
                    // A member that just lost its leader may stay without one; the next member
                    // may already know the new leader.
                    member = (member + 1) % self.urls.len();
                    pause = self.pause(pause, deadline).await;
                }
            }
        }
    }

    /// Sleeps `pause` (not past the deadline) and returns the next, longer pause.
    async fn pause(&self, pause: Duration, deadline: Instant) -> Duration {
        tokio::time::sleep_until((Instant::now() + pause).min(deadline)).await;
        (pause * 2).min(MAX_PAUSE)
    }

    fn out_of_time(
        &self,
        budget: Duration,
        last_refusal: Option<String>,
        last_down: String,
    ) -> StoreError {
        match last_refusal {
            // Some member answered, so etcd is there, only not serving.
            Some(detail) => StoreError::Unavailable { budget, detail },
            None => StoreError::Unreachable {
                endpoints: self.joined(),
                detail: if last_down.is_empty() {
                    format!("no answer within {budget:?}")
                } else {
                    last_down
                },
            },
        }
    }
}

/// The innermost cause ("Connection refused (os error 111)"), which is what a person can act
/// on; gRPC and hyper wrap it several layers deep.
pub(super) fn root_cause(e: &etcd_client::Error) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    match e {
        etcd_client::Error::GRpcStatus(status)
            if !std::ptr::eq(cause, e as &dyn std::error::Error) =>
        {
            format!("{}: {cause}", status.message())
        }
        etcd_client::Error::GRpcStatus(status) => status.message().to_string(),
        _ => cause.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: tonic::Code, message: &str) -> etcd_client::Error {
        etcd_client::Error::GRpcStatus(tonic::Status::new(code, message))
    }

    /// One case per rule, in the rule table's order, plus the near misses that must fall
    /// through to a later rule.
    #[test]
    fn errors_fall_under_the_rule_that_says_what_they_mean() {
        let cases = [
            (
                status(tonic::Code::Unavailable, "tcp connect error"),
                Failure::MemberDown,
            ),
            (
                status(
                    tonic::Code::Unavailable,
                    "error trying to connect: Connection refused",
                ),
                Failure::MemberDown,
            ),
            (
                status(tonic::Code::Unavailable, "etcdserver: leader changed"),
                Failure::NotCarriedOut,
            ),
            (
                status(tonic::Code::Unavailable, "etcdserver: no leader"),
                Failure::NotCarriedOut,
            ),
            (
                status(
                    tonic::Code::ResourceExhausted,
                    "etcdserver: too many requests",
                ),
                Failure::NotCarriedOut,
            ),
            (
                status(tonic::Code::Unavailable, "etcdserver: request timed out"),
                Failure::Unknown,
            ),
            (
                status(tonic::Code::Unavailable, "transport is closing"),
                Failure::Unknown,
            ),
            (
                status(tonic::Code::DeadlineExceeded, "deadline"),
                Failure::Unknown,
            ),
            (
                status(
                    tonic::Code::OutOfRange,
                    "etcdserver: mvcc: required revision has been compacted",
                ),
                Failure::Final,
            ),
            (
                status(
                    tonic::Code::PermissionDenied,
                    "etcdserver: permission denied",
                ),
                Failure::Final,
            ),
            (
                etcd_client::Error::InvalidArgs("bad".into()),
                Failure::Final,
            ),
        ];
        for (error, expected) in cases {
            assert_eq!(classify(&error).0, expected, "{error}");
        }
    }

    fn refused_url() -> String {
        // A port that was free a moment ago: nothing listens there.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        format!("http://127.0.0.1:{port}")
    }

    /// With no member listening, a call ends as Unreachable within its budget, naming every
    /// endpoint; it does not hang and does not report etcd as merely unavailable.
    #[tokio::test]
    async fn no_member_answering_is_unreachable() {
        let urls = vec![refused_url(), refused_url()];
        let members = Members::new(&urls, ConnectOptions::new());
        let mut attempts = 0;
        let error = members
            .call(Idempotence::Read, Duration::from_millis(400), |client| {
                attempts += 1;
                async move { client.clone().status().await }
            })
            .await
            .unwrap_err();
        assert!(
            matches!(&error, StoreError::Unreachable { endpoints, .. } if endpoints == &urls.join(",")),
            "{error}"
        );
        assert!(attempts >= 2, "each member was tried: {attempts}");
    }

    /// A write whose fate is unknown is handed back at once, never sent a second time.
    #[tokio::test]
    async fn a_write_with_an_unknown_outcome_is_not_sent_twice() {
        let members = Members::new(&[refused_url()], ConnectOptions::new());
        let mut attempts = 0;
        let error = members
            .call(Idempotence::Write, Duration::from_secs(2), |_client| {
                attempts += 1;
                async {
                    Err::<(), _>(status(
                        tonic::Code::Unavailable,
                        "etcdserver: request timed out",
                    ))
                }
            })
            .await
            .unwrap_err();
        assert!(matches!(error, StoreError::Unknown { .. }), "{error}");
        assert_eq!(attempts, 1);
    }

    /// "Not carried out" is asked again, and a success after it is the call's answer; the same
    /// error for a read with an unknown outcome is retried too.
    #[tokio::test]
    async fn refusals_are_asked_again_until_one_is_served() {
        for (idempotence, message) in [
            (Idempotence::Write, "etcdserver: leader changed"),
            (Idempotence::Read, "etcdserver: request timed out"),
        ] {
            let members = Members::new(&[refused_url()], ConnectOptions::new());
            let mut attempts = 0;
            let answer = members
                .call(idempotence, Duration::from_secs(3), |_client| {
                    attempts += 1;
                    let this = attempts;
                    async move {
                        if this < 3 {
                            Err(status(tonic::Code::Unavailable, message))
                        } else {
                            Ok(this)
                        }
                    }
                })
                .await
                .unwrap();
            assert_eq!(answer, 3, "{message}");
        }
    }

    /// Refusals until the budget runs out: Unavailable with etcd's own words, not Unreachable.
    #[tokio::test]
    async fn refusals_past_the_budget_say_etcd_is_unavailable() {
        let members = Members::new(&[refused_url()], ConnectOptions::new());
        let error = members
            .call(
                Idempotence::Read,
                Duration::from_millis(300),
                |_client| async {
                    Err::<(), _>(status(tonic::Code::Unavailable, "etcdserver: no leader"))
                },
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&error, StoreError::Unavailable { detail, .. } if detail.contains("no leader")),
            "{error}"
        );
    }
}
