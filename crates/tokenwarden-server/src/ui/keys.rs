//! The "Signing key" card of a token's page (issue 12): the public key, its fingerprint and the
//! Snowflake SQL (or the JWKS for `private_key_jwt`), and the rotation buttons (htmx, each
//! answering the card again). Adapters of `ops::grant::keypair`.

use super::tokens::load;
use super::{AdminSession, UiResult, page};
use crate::AppContext;
use crate::ops::grant::keypair::{self, KeysView};
use askama::Template;
use axum::Form;
use axum::extract::{Extension, Path, State};
use serde::Deserialize;

/// The CSRF token the card's buttons send.
pub struct CardLayout {
    pub csrf: String,
}

#[derive(Template)]
#[template(path = "partials/token_keys.html")]
pub struct KeysCard {
    pub l: CardLayout,
    pub id: String,
    pub keys: Option<KeysView>,
    pub keys_message: String,
    pub keys_ok: bool,
    /// Shown as step 2 of a key-pair token's form rather than on the token's page.
    pub in_form: bool,
}

/// What the card's buttons send besides the CSRF token (checked before this).
#[derive(Debug, Default, Deserialize)]
pub struct CardForm {
    /// "true" when the card is step 2 of the token's form.
    #[serde(default)]
    in_form: String,
    /// Finishing a rotation: the admin says the new key is assigned (no test).
    #[serde(default)]
    confirmed: Option<String>,
}

impl CardForm {
    fn in_form(&self) -> bool {
        self.in_form == "true"
    }
}

fn card(
    s: &AdminSession,
    id: &str,
    form: &CardForm,
    keys: Option<KeysView>,
    message: String,
    ok: bool,
) -> UiResult {
    page(&KeysCard {
        l: CardLayout {
            csrf: s.csrf.clone(),
        },
        id: id.to_string(),
        keys,
        keys_message: message,
        keys_ok: ok,
        in_form: form.in_form(),
    })
}

/// The card after a rotation step: the keys it left and what happened, or the keys as they
/// are and why the step was refused.
async fn after(
    ctx: &AppContext,
    s: &AdminSession,
    id: &str,
    form: &CardForm,
    t: &tokenwarden_store::TokenRecord,
    done: crate::ops::Result<(KeysView, String)>,
) -> UiResult {
    match done {
        Ok((keys, message)) => card(s, id, form, Some(keys), message, true),
        Err(e) => card(
            s,
            id,
            form,
            keypair::view(ctx, t).await?,
            e.to_string(),
            false,
        ),
    }
}

pub async fn rotate(
    State(ctx): State<AppContext>,
    Extension(s): Extension<AdminSession>,
    Path(id): Path<String>,
    Form(form): Form<CardForm>,
) -> UiResult {
    let t = load(&ctx, &id).await?;
    let done = keypair::rotate(&ctx, &t, &s.actor()).await.map(|v| {
        (
            v,
            "A new key was generated; the current key signs until you switch.".to_owned(),
        )
    });
    after(&ctx, &s, &id, &form, &t, done).await
}

pub async fn finish(
    State(ctx): State<AppContext>,
    Extension(s): Extension<AdminSession>,
    Path(id): Path<String>,
    Form(form): Form<CardForm>,
) -> UiResult {
    let t = load(&ctx, &id).await?;
    let confirmed = form
        .confirmed
        .as_deref()
        .is_some_and(|c| !c.is_empty() && c != "0");
    let done = keypair::finish_rotation(&ctx, &t, &s.actor(), confirmed)
        .await
        .map(|done| {
            let message = format!(
                "{}{}",
                match &done.test {
                    Some(m) => format!("The new key works ({m}) and signs from now on."),
                    None => "The new key signs from now on.".into(),
                },
                if done.keys.unset_old_sql.is_some() {
                    " Once the old key's JWTs have expired (an hour at most), remove the old key (“After a rotation” below)."
                } else {
                    ""
                }
            );
            (done.keys, message)
        });
    after(&ctx, &s, &id, &form, &t, done).await
}

pub async fn cancel(
    State(ctx): State<AppContext>,
    Extension(s): Extension<AdminSession>,
    Path(id): Path<String>,
    Form(form): Form<CardForm>,
) -> UiResult {
    let t = load(&ctx, &id).await?;
    let done = keypair::cancel_rotation(&ctx, &t, &s.actor())
        .await
        .map(|v| {
            (
                v,
                "The rotation was cancelled; the current key signs on.".to_owned(),
            )
        });
    after(&ctx, &s, &id, &form, &t, done).await
}
