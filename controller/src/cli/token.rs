//! `nomarch token create|list|revoke`: bearer tokens for the controller's HTTP API. The secret
//! is printed once by `create`; etcd keeps only its SHA-256.

use std::time::Duration;

use chrono::Utc;
use clap::Subcommand;

use super::{say, CliError, StoreArgs};
use crate::store::{new_secret, secret_sha256, Role, TokenRecord};

#[derive(Subcommand, Debug)]
pub enum TokenAction {
    /// Create a token and print its secret (once: it is not stored)
    ///
    /// Example: nomarch token create alice-pubs --namespace alice --role operator --expires 30d
    Create {
        /// A name to list and revoke it by (DNS label)
        name: String,
        /// The one namespace it sees and acts in
        #[arg(long, conflicts_with = "all", required_unless_present = "all")]
        namespace: Option<String>,
        /// Every namespace
        #[arg(long)]
        all: bool,
        /// viewer reads; operator also acts (reconcile, suspend, stop/start, rollouts, run);
        /// admin also applies and deletes
        #[arg(long, value_enum)]
        role: Role,
        /// Refused after this long (e.g. 30d, 12h); never, without it
        #[arg(long, value_parser = humantime::parse_duration)]
        expires: Option<Duration>,
    },
    /// List tokens (never their secrets)
    List,
    /// Revoke a token: refused from its next request on
    Revoke { name: String },
}

pub async fn run(store_args: &StoreArgs, action: TokenAction) -> Result<(), CliError> {
    match action {
        TokenAction::Create {
            name,
            namespace,
            all: _,
            role,
            expires,
        } => {
            if let Some(problem) = crds::validate::dns_label_problem(&name) {
                return Err(CliError::Usage(format!("token name: {problem}")));
            }
            if let Some(problem) = namespace
                .as_deref()
                .and_then(crds::validate::dns_label_problem)
            {
                return Err(CliError::Usage(format!("--namespace: {problem}")));
            }
            let now = Utc::now();
            let expires = match expires {
                Some(after) => Some(
                    now + chrono::Duration::from_std(after)
                        .map_err(|_| CliError::Usage("--expires is too far away".into()))?,
                ),
                None => None,
            };
            let secret = new_secret();
            let record = TokenRecord {
                name,
                namespace,
                role,
                created: now,
                expires,
                secret_sha256: secret_sha256(&secret),
            };
            let store = store_args.connect().await?;
            store.create_token(&record).await?;
            say!("{secret}");
            eprintln!(
                "token {} created ({} in {}{}); the secret above is shown only now",
                record.name,
                record.role.as_str(),
                record.namespace.as_deref().unwrap_or("every namespace"),
                record
                    .expires
                    .map_or(String::new(), |at| format!(", expires {}", at.to_rfc3339()))
            );
            Ok(())
        }
        TokenAction::List => {
            let store = store_args.connect().await?;
            let now = Utc::now();
            say!("NAME\tROLE\tNAMESPACE\tEXPIRES\tCREATED");
            for token in store.list_tokens().await? {
                let expires = match token.expires {
                    Some(at) if at <= now => format!("expired {}", at.to_rfc3339()),
                    Some(at) => at.to_rfc3339(),
                    None => "never".into(),
                };
                say!(
                    "{}\t{}\t{}\t{expires}\t{}",
                    token.name,
                    token.role.as_str(),
                    token.namespace.as_deref().unwrap_or("*"),
                    token.created.to_rfc3339()
                );
            }
            Ok(())
        }
        TokenAction::Revoke { name } => {
            let store = store_args.connect().await?;
            if store.revoke_token(&name).await? {
                say!("token {name} revoked");
                Ok(())
            } else {
                Err(CliError::NotFound(format!("token {name} does not exist")))
            }
        }
    }
}
