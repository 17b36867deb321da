//! Who may do what through the HTTP API: an ordered rule table over the request's token, the
//! action and the object's namespace. Pure; the handlers carry the decision out.

use chrono::{DateTime, Utc};

use crate::store::{Role, TokenRecord};

/// What a request does, by the role it needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Objects, status, events, logs, diffs.
    Read,
    /// Reconcile, suspend and resume, stop and start, rollout actions, run now.
    Act,
    /// Apply and delete.
    Write,
}

impl Action {
    pub fn needs(self) -> Role {
        match self {
            Action::Read => Role::Viewer,
            Action::Act => Role::Operator,
            Action::Write => Role::Admin,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// 401: no token, an unknown one, or one past its time.
    Unauthenticated(&'static str),
    /// 404: the object is in a namespace the token does not see, so whether it exists is not
    /// said either.
    Hidden,
    /// 403: the token sees the object but its role may not do this.
    Forbidden(String),
}

pub struct Request<'a> {
    /// The token the bearer secret matched, if any.
    pub token: Option<&'a TokenRecord>,
    pub action: Action,
    /// The object's namespace; `None` for a request across namespaces (a listing, which a
    /// one-namespace token gets narrowed to its namespace instead of refused).
    pub namespace: Option<&'a str>,
    pub now: DateTime<Utc>,
}

type Rule = (&'static str, fn(&Request) -> Option<Decision>);

/// First match wins; no match allows.
const RULES: &[Rule] = &[
    // Denied by default: nothing without a token that matched.
    ("no token", |r| {
        r.token.is_none().then_some(Decision::Unauthenticated(
            "a valid bearer token is required",
        ))
    }),
    // An expired token is as good as none (its holder should get a new one, not a 403).
    ("expired", |r| {
        r.token?
            .is_expired(r.now)
            .then_some(Decision::Unauthenticated("the token has expired"))
    }),
    // Before the role: a tenant's token must not learn that another tenant's object exists,
    // whatever it asks to do with it.
    ("other namespace", |r| {
        let scope = r.token?.namespace.as_deref()?;
        let namespace = r.namespace?;
        (namespace != scope).then_some(Decision::Hidden)
    }),
    ("role too low", |r| {
        let token = r.token?;
        let needs = r.action.needs();
        (token.role < needs).then(|| {
            Decision::Forbidden(format!(
                "token {} is {}; this needs {}",
                token.name,
                token.role.as_str(),
                needs.as_str()
            ))
        })
    }),
];

pub fn decide(request: &Request) -> Decision {
    RULES
        .iter()
        .find_map(|(_, rule)| rule(request))
        .unwrap_or(Decision::Allow)
}

/// Whether a token sees `namespace` at all (what a listing keeps).
pub fn sees(token: &TokenRecord, namespace: &str) -> bool {
    token
        .namespace
        .as_deref()
        .is_none_or(|scope| scope == namespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(role: Role, namespace: Option<&str>) -> TokenRecord {
        TokenRecord {
            name: "t".into(),
            namespace: namespace.map(String::from),
            role,
            created: Utc::now(),
            expires: None,
            secret_sha256: String::new(),
        }
    }

    fn decision(token: Option<&TokenRecord>, action: Action, namespace: Option<&str>) -> Decision {
        decide(&Request {
            token,
            action,
            namespace,
            now: Utc::now(),
        })
    }

    /// Every role against every action, in its own namespace and in another.
    #[test]
    fn every_role_and_action() {
        use Action::*;
        use Role::*;
        let table = [
            (Viewer, Read, true),
            (Viewer, Act, false),
            (Viewer, Write, false),
            (Operator, Read, true),
            (Operator, Act, true),
            (Operator, Write, false),
            (Admin, Read, true),
            (Admin, Act, true),
            (Admin, Write, true),
        ];
        for (role, action, allowed) in table {
            for scope in [None, Some("alice")] {
                let t = token(role, scope);
                let got = decision(Some(&t), action, Some("alice"));
                assert_eq!(
                    got == Decision::Allow,
                    allowed,
                    "{role:?} {action:?} in {scope:?}: {got:?}"
                );
                if !allowed {
                    assert!(matches!(got, Decision::Forbidden(_)), "{got:?}");
                }
                let elsewhere = decision(Some(&t), action, Some("bob"));
                match scope {
                    Some(_) => assert_eq!(elsewhere, Decision::Hidden, "{role:?} {action:?}"),
                    None => assert_eq!(elsewhere == Decision::Allow, allowed),
                }
            }
        }
    }

    #[test]
    fn no_token_or_an_expired_one_is_unauthenticated_before_anything_else() {
        assert!(matches!(
            decision(None, Action::Read, Some("alice")),
            Decision::Unauthenticated(_)
        ));
        let mut old = token(Role::Admin, Some("alice"));
        old.expires = Some(Utc::now() - chrono::Duration::seconds(1));
        assert!(matches!(
            decision(Some(&old), Action::Read, Some("bob")),
            Decision::Unauthenticated(_)
        ));
    }

    #[test]
    fn listings_are_narrowed_not_refused() {
        let tenant = token(Role::Viewer, Some("alice"));
        assert_eq!(decision(Some(&tenant), Action::Read, None), Decision::Allow);
        assert!(sees(&tenant, "alice") && !sees(&tenant, "bob"));
        assert!(sees(&token(Role::Viewer, None), "bob"));
    }
}
