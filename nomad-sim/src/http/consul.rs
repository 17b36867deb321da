//! Consul's `/v1/...` routes: health, catalog, agent services and KV.

use axum::http::Method;
use base64_lite::encode;
use serde_json::{json, Value};

use super::{blocking, blocking_table, table, Reply, Req};
use crate::cluster::TableIndex;
use crate::consul;
use crate::error::{ApiError, ApiResult};
use crate::model::KvEntry;
use crate::Sim;

pub async fn handle(sim: &Sim, req: &Req) -> ApiResult<Reply> {
    let path = req.path.as_str();
    if let Some(key) = path.strip_prefix("/v1/kv/") {
        return kv(sim, req, key).await;
    }
    if req.method != Method::GET {
        return Err(ApiError::method_not_allowed());
    }
    // Consul's health answers change with checks, allocations and nodes alike.
    let consul_index = |t: &TableIndex| t.consul.max(t.allocs).max(t.nodes);
    if let Some(name) = path.strip_prefix("/v1/health/service/") {
        let passing = req.query.contains_key("passing")
            && !matches!(req.param("passing"), Some("false" | "0"));
        return blocking_table(sim, req, consul_index, |c| {
            Ok(json!(consul::health_service(c, name, passing)))
        })
        .await;
    }
    if let Some(name) = path.strip_prefix("/v1/health/checks/") {
        return blocking_table(sim, req, consul_index, |c| {
            Ok(json!(consul::health_checks(c, name)))
        })
        .await;
    }
    if let Some(state) = path.strip_prefix("/v1/health/state/") {
        if !matches!(state, "any" | "passing" | "warning" | "critical") {
            return Err(ApiError::bad_request(format!(
                "Bad check state \"{state}\""
            )));
        }
        return blocking_table(sim, req, consul_index, |c| {
            Ok(json!(consul::health_state(c, state)))
        })
        .await;
    }
    if let Some(node) = path.strip_prefix("/v1/health/node/") {
        return blocking_table(sim, req, consul_index, |c| {
            Ok(json!(consul::health_node(c, node)))
        })
        .await;
    }
    if path == "/v1/catalog/services" {
        return blocking_table(sim, req, consul_index, |c| Ok(consul::catalog_services(c))).await;
    }
    if let Some(name) = path.strip_prefix("/v1/catalog/service/") {
        return blocking_table(sim, req, consul_index, |c| {
            Ok(json!(consul::catalog_service(c, name)))
        })
        .await;
    }
    if let Some(name) = path.strip_prefix("/v1/agent/health/service/name/") {
        let (status, entries) = sim.read(|c| consul::agent_health(c, name));
        return Ok(Reply::Json {
            status,
            body: json!(entries),
            index: None,
        });
    }
    if path == "/v1/agent/services" {
        return Ok(Reply::ok(sim.read(consul::agent_services)));
    }
    if path == "/v1/status/leader" {
        return Ok(Reply::ok(json!("127.0.0.1:8300")));
    }
    Err(ApiError::not_found(String::new()))
}

fn kv_json(key: &str, entry: &KvEntry) -> Value {
    json!({
        "CreateIndex": entry.create_index,
        "ModifyIndex": entry.modify_index,
        "LockIndex": 0,
        "Key": key,
        "Flags": entry.flags,
        "Value": encode(&entry.value),
    })
}

async fn kv(sim: &Sim, req: &Req, key: &str) -> ApiResult<Reply> {
    match req.method {
        Method::GET => {
            let recurse = req.query.contains_key("recurse");
            let keys_only = req.query.contains_key("keys");
            if req.query.contains_key("raw") {
                let found = sim.read(|c| c.kv.get(key).map(|e| e.value.clone()));
                return match found {
                    Some(bytes) => Ok(Reply::ok(Value::String(
                        String::from_utf8_lossy(&bytes).into_owned(),
                    ))),
                    None => Err(ApiError::not_found(String::new())),
                };
            }
            blocking(sim, req, |c| {
                let index = table(c, |t| t.kv);
                let matching: Vec<(&String, &KvEntry)> =
                    c.kv.iter()
                        .filter(|(k, _)| {
                            if recurse || keys_only {
                                k.starts_with(key)
                            } else {
                                k.as_str() == key
                            }
                        })
                        .collect();
                if matching.is_empty() {
                    return (Err(ApiError::not_found(String::new())), index);
                }
                if keys_only {
                    return (
                        Ok(json!(matching
                            .iter()
                            .map(|(k, _)| k.as_str())
                            .collect::<Vec<_>>())),
                        index,
                    );
                }
                (
                    Ok(json!(matching
                        .iter()
                        .map(|(k, e)| kv_json(k, e))
                        .collect::<Vec<_>>())),
                    index,
                )
            })
            .await
        }
        Method::PUT => {
            let cas: Option<u64> = req.param("cas").and_then(|c| c.parse().ok());
            let flags: u64 = req.param("flags").and_then(|f| f.parse().ok()).unwrap_or(0);
            let value = req.body.to_vec();
            let stored = sim.write(|c| {
                let current = c.kv.get(key).map(|e| e.modify_index);
                let allowed = match (cas, current) {
                    (None, _) => true,
                    (Some(0), None) => true,
                    (Some(0), Some(_)) => false,
                    (Some(n), Some(m)) => n == m,
                    (Some(_), None) => false,
                };
                if !allowed {
                    return false;
                }
                let index = c.bump();
                let create_index = c.kv.get(key).map_or(index, |e| e.create_index);
                c.kv.insert(
                    key.to_string(),
                    KvEntry {
                        value,
                        flags,
                        create_index,
                        modify_index: index,
                    },
                );
                c.tables.kv = index;
                true
            });
            Ok(Reply::ok(json!(stored)))
        }
        Method::DELETE => {
            let recurse = req.query.contains_key("recurse");
            sim.write(|c| {
                let index = c.bump();
                c.kv.retain(|k, _| {
                    if recurse {
                        !k.starts_with(key)
                    } else {
                        k != key
                    }
                });
                c.tables.kv = index;
            });
            Ok(Reply::ok(json!(true)))
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

/// Standard base64, for KV values (a dozen lines do not justify a dependency).
mod base64_lite {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    pub fn encode(bytes: &[u8]) -> String {
        let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn encodes_like_rfc_4648() {
            assert_eq!(super::encode(b"test"), "dGVzdA==");
            assert_eq!(super::encode(b"ab"), "YWI=");
            assert_eq!(super::encode(b"abc"), "YWJj");
        }
    }
}
