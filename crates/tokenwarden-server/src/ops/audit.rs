//! Audit records: who did what to which object, when, with what outcome. Never a secret.

use crate::AppContext;
use axum::http::request::Parts;
use tokenwarden_store::AuditEvent;

/// The object an audit record is about.
pub struct Object {
    pub kind: &'static str,
    pub id: Option<String>,
    pub name: Option<String>,
}

impl Object {
    pub fn new(kind: &'static str, id: impl ToString, name: impl ToString) -> Self {
        Self {
            kind,
            id: Some(id.to_string()),
            name: Some(name.to_string()),
        }
    }

    /// A route, for denials: the method and path, never the query string.
    pub fn route(parts: &Parts) -> Self {
        Self {
            kind: "route",
            id: None,
            // Cut to 200 characters: anyone can send long paths, and each denial is a row.
            name: Some(format!(
                "{} {}",
                parts.method,
                parts.uri.path().chars().take(200).collect::<String>()
            )),
        }
    }
}

pub use tokenwarden_domain::{AuditAction as Action, AuditOutcome as Outcome};

/// Appends an audit record. A failure to write it is logged, not returned: the audit log must
/// not turn a successful change into an error answer.
pub async fn record(
    ctx: &AppContext,
    actor: &str,
    action: Action,
    object: Object,
    outcome: Outcome,
    detail: serde_json::Value,
) {
    let event = event(ctx, actor, action, object, outcome, detail);
    if let Err(e) = ctx.store.append_audit(&event).await {
        tracing::error!(error = %e, action = action.as_str(), "could not write audit record");
    }
}

/// The record [`record`] appends, for a store write that appends it in its own transaction.
pub fn event(
    ctx: &AppContext,
    actor: &str,
    action: Action,
    object: Object,
    outcome: Outcome,
    detail: serde_json::Value,
) -> AuditEvent {
    let at = ctx.clock.now();
    AuditEvent {
        id: uuid::Uuid::new_v4().to_string(),
        at,
        actor: actor.to_owned(),
        action: action.as_str().to_owned(),
        object_type: object.kind.to_owned(),
        object_id: object.id,
        object_name: object.name,
        outcome: outcome.as_str().to_owned(),
        detail,
    }
}
