import re, sys
root='/work/wt-i12-keypair/crates/'
def patch(path, old, new, count=1, must=True):
    p=root+path
    s=open(p).read()
    if old not in s:
        print("MISSING in", path, ":", old[:80].replace("\n","\\n")); 
        if must: return False
        return False
    s=s.replace(old,new,count)
    open(p,'w').write(s); return True

# 1. start(): keypair arm
patch('tokenwarden-server/src/ops/grant/mod.rs', '''        Grant::SnowflakeKeypair => Err(Error::Invalid(
            "Snowflake key-pair tokens are not available yet".into(),
        )),''', '''        Grant::SnowflakeKeypair => Ok(Started::Ready(Box::new(
            keypair::activate(ctx, t, actor).await?,
        ))),''')
# renewable
patch('tokenwarden-server/src/ops/grant/mod.rs', '''        Grant::ClientCredentials | Grant::SnowflakeKeypair => false,''', '''        // A key-pair token mints its JWT from its key: renewable once activated.
        Grant::SnowflakeKeypair => t.material.access_token.is_some(),
        Grant::ClientCredentials => false,''')
# client_secrets: private_key_jwt -> a fresh client assertion
patch('tokenwarden-server/src/ops/grant/mod.rs', '''/// The stored client secrets, opened, in the order they are tried.
pub async fn client_secrets(ctx: &AppContext, t: &TokenRecord) -> Result<Vec<SecretString>> {
    let mut out = Vec::new();''', '''/// The stored client secrets, opened, in the order they are tried. For a token that
/// authenticates with `private_key_jwt`: one fresh client assertion (RFC 7523) signed with the
/// token's key, what the token endpoint gets instead of a secret.
pub async fn client_secrets(ctx: &AppContext, t: &TokenRecord) -> Result<Vec<SecretString>> {
    if t.client_auth == Some(tokenwarden_domain::ClientAuthMethod::PrivateKeyJwt) {
        let provider = resolve(ctx, t)?;
        let key = keypair::client_key(ctx, t).await?;
        let assertion = tokenwarden_oauth::client::client_assertion(
            &key,
            t.client_id.as_deref().unwrap_or_default(),
            &provider.token_url,
            ctx.clock.now().timestamp(),
        )
        .map_err(Error::internal)?;
        return Ok(vec![SecretString::from(assertion)]);
    }
    let mut out = Vec::new();''')
# 2. refresh renewal arm
patch('tokenwarden-server/src/ops/grant/refresh.rs', '''    /// Authorization code and device code: the stored refresh token (sealed, as read).
    RefreshToken(tokenwarden_store::Sealed),
}''', '''    /// Authorization code and device code: the stored refresh token (sealed, as read).
    RefreshToken(tokenwarden_store::Sealed),
    /// Snowflake key pair: a JWT minted from the token's key (no provider call).
    KeypairJwt,
}''')
patch('tokenwarden-server/src/ops/grant/refresh.rs', '''            Renewal::RefreshToken(sealed) => current.material.refresh_token.as_ref() == Some(sealed),''', '''            Renewal::RefreshToken(sealed) => current.material.refresh_token.as_ref() == Some(sealed),
            Renewal::KeypairJwt => true,''')
patch('tokenwarden-server/src/ops/grant/refresh.rs', '''            Renewal::RefreshToken(_) => TokenStatus::NeedsReauthorization,''', '''            Renewal::RefreshToken(_) | Renewal::KeypairJwt => TokenStatus::NeedsReauthorization,''')
patch('tokenwarden-server/src/ops/grant/refresh.rs', '''        tokenwarden_domain::Grant::SnowflakeKeypair => Err(RefreshError::Core(Error::Invalid(
            "renewing Snowflake key-pair tokens is not available yet".into(),
        ))),''', '''        tokenwarden_domain::Grant::SnowflakeKeypair => Ok(Renewal::KeypairJwt),''')
patch('tokenwarden-server/src/ops/grant/refresh.rs', '''    let answer = match &renewal {''', '''    let answer = match &renewal {
        // Minted here: nothing is sent anywhere, so it cannot be refused.
        Renewal::KeypairJwt => Ok(super::keypair::mint(ctx, &t).await?),''')
# provider for keypair refresh: no refresh validity
# 3. test arm
patch('tokenwarden-server/src/ops/grant/test.rs', '''            Grant::SnowflakeKeypair => {
                Err("not available yet for Snowflake key-pair tokens".to_owned())
            }''', '''            Grant::SnowflakeKeypair => {
                ctx.oauth
                    .test_connection_typed(
                        &provider,
                        &token.access,
                        tokenwarden_oauth::snowflake_keypair::TOKEN_TYPE,
                    )
                    .await
            }''')
# 4. client.rs PrivateKeyJwt arm
patch('tokenwarden-oauth/src/client.rs', '''            ClientAuth::PrivateKeyJwt => {
                // Filled in by the key-pair work (issue 12): a client assertion signed with
                // the token's key. Until then nothing is sent.
                return Err(TokenError::Refused {
                    status: 0,
                    error: "unsupported_client_auth".into(),
                    description: Some("private_key_jwt is not available yet".into()),
                    message: None,
                });
            }''', '''            ClientAuth::PrivateKeyJwt => {
                // RFC 7523 2.2: the "secret" is a client assertion the caller signed with the
                // token's key ([`client_assertion`]), fresh for this request.
                form.push(("client_id", client_id.into()));
                form.push(("client_assertion_type", CLIENT_ASSERTION_TYPE.into()));
                form.push(("client_assertion", secret.expose_secret().into()));
            }''')
# 5. tokens::create: keys
patch('tokenwarden-server/src/ops/tokens.rs', '''    check_token(ctx, &token)?;
    ctx.store.create_token(&token).await.map_err(|e| match e {
        StoreError::Conflict(_) => name_taken(&token.name, new.app.as_ref()),
        other => other.into(),
    })?;''', '''    check_token(ctx, &token)?;
    if token.grant == Grant::SnowflakeKeypair {
        // The JWTs must name an account and a user: refused now, not at the first mint.
        crate::ops::grant::keypair::identity(&token)?;
    }
    ctx.store.create_token(&token).await.map_err(|e| match e {
        StoreError::Conflict(_) => name_taken(&token.name, new.app.as_ref()),
        other => other.into(),
    })?;
    // A key-pair token and a private_key_jwt client get their key now (shown with its SQL or
    // JWKS by GET /tokens/{id}/keys).
    let keypair = token.grant == Grant::SnowflakeKeypair;
    if keypair || token.client_auth == Some(ClientAuthMethod::PrivateKeyJwt) {
        if let Err(e) = crate::ops::grant::keypair::create_first_key(
            ctx,
            &token,
            tokenwarden_crypto::keypair::KeyAlgorithm::Rs256,
            keypair,
        )
        .await
        {
            let _ = ctx.store.delete_token(token.id).await;
            return Err(e);
        }
    }''')
