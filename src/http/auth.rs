//! Log-in with a user name and password (argon2 hashes), bearer tokens, and roles.
//! Tokens are random; the index stores only their SHA-256, so a copy of the index
//! does not let anyone log in.

use super::{ApiError, ApiJson, AppState, blocking};
use crate::archive::index::{Index, TokenDoc, UserDoc};
use crate::config::UserRole;
use crate::error::{Error, ErrorKind, Result};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use serde::Deserialize;

/// How long a login lasts (a court day).
pub const TOKEN_LIFETIME_S: i64 = 12 * 3600;

/// Argon2id's memory for new hashes, in KiB (7 MiB), with [`HASH_PASSES`] passes: one
/// of the configurations OWASP's password storage cheat sheet lists as equally strong
/// as the crate's default (19 MiB, 2 passes), with the same work per guess. A box holds
/// each check's memory while it runs: 7 MiB rather than 19 keeps a login's mark off
/// the recorder's memory (the whole job's peak, bench-record: 183 -> 171 MB). A hash
/// carries its own parameters, so hashes made with the default still verify.
const HASH_MEMORY_KIB: u32 = 7 * 1024;
const HASH_PASSES: u32 = 5;

pub fn hash_password(password: &str) -> Result<String> {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
        .map_err(|e| Error::new(ErrorKind::Internal, format!("making a salt: {e}")))?;
    let params = argon2::Params::new(HASH_MEMORY_KIB, HASH_PASSES, 1, None)
        .map_err(|e| Error::new(ErrorKind::Internal, format!("hash parameters: {e}")))?;
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::new(ErrorKind::Internal, format!("hashing password: {e}")))
}

fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            argon2::Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A caller who presented a valid token.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: String,
    pub role: UserRole,
    /// A party's one hearing.
    pub hearing: Option<String>,
    /// Where the request came from, for the audit log.
    pub remote: Option<String>,
    /// SHA-256 of the bearer token (which login this is, for the audit log).
    pub token_sha256: String,
}

impl Caller {
    /// Refuses (403) unless the caller has one of `roles`.
    pub fn require(&self, roles: &[UserRole], action: &str) -> Result<(), ApiError> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            Err(ApiError(Error::new(
                ErrorKind::PermissionDenied,
                format!("a {} may not {action}", self.role.as_str()),
            )))
        }
    }
}

pub(super) fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// The caller a token belongs to, with the account's *current* role: a token of an
/// account whose role or password changed since it was issued (its generation), or of
/// a removed account, no longer works.
pub(super) fn lookup(index: &Index, token: &str) -> Result<Caller> {
    let unauth = |m: &str| Error::new(ErrorKind::Unauthenticated, m.to_string());
    let sha = crate::archive::sha256_hex(token.as_bytes());
    let t = index
        .token(&sha)?
        .ok_or_else(|| unauth("unknown or expired token; log in again"))?;
    if t.expires_unix < chrono::Utc::now().timestamp() {
        index.remove_token(&sha)?;
        return Err(unauth("the login has expired; log in again"));
    }
    // A party's token lives only as long as its access code.
    if let Some(code_id) = &t.code_id {
        let live = index
            .access_code(code_id)?
            .is_some_and(|c| !c.revoked && c.expires_unix >= chrono::Utc::now().timestamp());
        if !live {
            return Err(unauth("the access code was revoked or has expired"));
        }
        return Ok(Caller {
            user: t.user,
            role: UserRole::Party,
            hearing: t.hearing,
            remote: None,
            token_sha256: sha,
        });
    }
    let user = index
        .user(&t.user)?
        .filter(|u| u.generation == t.generation)
        .ok_or_else(|| unauth("your account was changed or removed; log in again"))?;
    Ok(Caller {
        user: user.name,
        role: user.role,
        hearing: None,
        remote: None,
        token_sha256: sha,
    })
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(&parts.headers).ok_or_else(|| {
            ApiError(Error::new(
                ErrorKind::Unauthenticated,
                "missing `Authorization: Bearer <token>`; log in at POST /api/v1/login",
            ))
        })?;
        let mut caller = lookup(&state.index, token).map_err(ApiError)?;
        caller.remote = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip().to_string());
        Ok(caller)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    pub username: String,
    pub password: String,
}

/// Guards password checks: the back-off per account and per address, and at most a
/// few Argon2 hashes at once (each takes 7 MiB, or 19 MiB for a hash made with the
/// crate's default: a flood of logins must not take the box's memory).
pub struct LoginGuard {
    pub throttle: super::throttle::Throttle,
    hashers: tokio::sync::Semaphore,
}

impl LoginGuard {
    /// The guard `[login]` asks for (a box and the archive server alike).
    pub fn from_config(login: &crate::config::Login) -> LoginGuard {
        LoginGuard::new(
            super::throttle::Policy {
                free_attempts: login.free_attempts,
                base: std::time::Duration::from_millis(login.backoff_base_ms),
                max: std::time::Duration::from_secs(login.backoff_max_s),
            },
            login.max_hashes,
        )
    }

    pub fn new(policy: super::throttle::Policy, max_hashes: usize) -> LoginGuard {
        LoginGuard {
            throttle: super::throttle::Throttle::new(policy),
            hashers: tokio::sync::Semaphore::new(max_hashes.max(1)),
        }
    }
}

/// An address allows this many times an account's free attempts.
const ADDRESS_SCALE: u32 = 4;
/// How long a login waits for a free hasher before it is told to try again.
const HASHER_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The caller's address, for the audit log and the back-off ("unknown" without one).
pub struct Remote(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Remote {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Remote(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map_or_else(|| "unknown".into(), |c| c.0.ip().to_string()),
        ))
    }
}

/// 429 with `Retry-After`.
pub(crate) fn too_many(wait: std::time::Duration, msg: &str) -> axum::response::Response {
    use axum::response::IntoResponse;
    let secs = wait.as_secs().max(1);
    let mut r = ApiError(Error::new(
        ErrorKind::TooMany,
        format!("{msg}; try again in {secs} s"),
    ))
    .into_response();
    if let Ok(v) = axum::http::HeaderValue::from_str(&secs.to_string()) {
        r.headers_mut().insert(axum::http::header::RETRY_AFTER, v);
    }
    r
}

/// Checks a password for `username` under the guard. `Ok(Err(wait))`: throttled.
async fn check_password(
    st: &AppState,
    username: &str,
    password: String,
    remote: &str,
) -> Result<std::result::Result<Option<UserDoc>, std::time::Duration>, ApiError> {
    let now = std::time::Instant::now();
    let (user_key, ip_key) = (format!("user:{username}"), format!("ip:{remote}"));
    let guard = &st.login;
    if let Some(w) = guard
        .throttle
        .wait(&user_key, now)
        .max(guard.throttle.wait(&ip_key, now))
    {
        return Ok(Err(w));
    }
    let Ok(Ok(_permit)) = tokio::time::timeout(HASHER_WAIT, guard.hashers.acquire()).await else {
        return Ok(Err(std::time::Duration::from_secs(2)));
    };
    let index = st.index.clone();
    let name = username.to_string();
    let user = blocking(move || {
        let user = index.user(&name)?;
        // Verify against a dummy hash when the user does not exist, so timing does not
        // tell which user names exist.
        let ok = match &user {
            Some(u) => verify_password(&u.password_hash, &password),
            None => {
                let _ = verify_password(dummy_hash(), &password);
                false
            }
        };
        Ok(user.filter(|_| ok))
    })
    .await?;
    if user.is_some() {
        guard.throttle.succeeded(&user_key);
        guard.throttle.succeeded(&ip_key);
    } else {
        let now = std::time::Instant::now();
        let a = guard.throttle.failed(&user_key, 1, now);
        let b = guard.throttle.failed(&ip_key, ADDRESS_SCALE, now);
        if let Some(w) = a.max(b) {
            return Ok(Err(w));
        }
    }
    Ok(Ok(user))
}

fn audit_auth(
    st: &AppState,
    user: &str,
    role: &str,
    action: &str,
    detail: String,
    remote: &str,
) -> Result<(), ApiError> {
    super::access::record_audit(
        st,
        crate::archive::audit::AuditEvent {
            user: user.to_string(),
            role: role.to_string(),
            hearing: None,
            action: action.into(),
            detail,
            remote: Some(remote.to_string()),
            sign_now: false,
        },
    )
}

/// `POST /api/v1/login`: a token for a user name and password. Audited (`login`,
/// `login_failed`); throttled (429 with `Retry-After`).
pub async fn login(
    State(st): State<AppState>,
    Remote(remote): Remote,
    ApiJson(body): ApiJson<LoginBody>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let name = body.username.chars().take(64).collect::<String>();
    let user = match check_password(&st, &name, body.password, &remote).await? {
        Ok(Some(u)) => u,
        Ok(None) => {
            audit_auth(
                &st,
                &name,
                "",
                "login_failed",
                "wrong user name or password".into(),
                &remote,
            )?;
            return Err(ApiError(Error::new(
                ErrorKind::Unauthenticated,
                "wrong user name or password",
            )));
        }
        Err(wait) => {
            // Sampled: only the failure that starts a wait is logged, not every refusal.
            if st
                .login
                .throttle
                .wait(&format!("user:{name}"), std::time::Instant::now())
                .is_some_and(|w| w + std::time::Duration::from_millis(500) >= wait)
            {
                audit_auth(
                    &st,
                    &name,
                    "",
                    "login_throttled",
                    format!("wait {} s", wait.as_secs().max(1)),
                    &remote,
                )?;
            }
            return Ok(too_many(wait, "too many failed logins"));
        }
    };
    // Logged before the token exists: no login goes unaudited.
    audit_auth(
        &st,
        &user.name,
        user.role.as_str(),
        "login",
        String::new(),
        &remote,
    )?;
    let token = hex::encode(rand::random::<[u8; 32]>());
    let expires = chrono::Utc::now().timestamp() + TOKEN_LIFETIME_S;
    let index = st.index.clone();
    let doc = TokenDoc {
        user: user.name.clone(),
        role: user.role,
        expires_unix: expires,
        hearing: None,
        code_id: None,
        generation: user.generation,
    };
    let sha = crate::archive::sha256_hex(token.as_bytes());
    blocking(move || index.put_token(&sha, &doc)).await?;
    let mut r = axum::Json(serde_json::json!({
        "token": token,
        "user": user.name,
        "role": user.role,
        "expires_at": crate::archive::records::format_wall(
            chrono::DateTime::from_timestamp(expires, 0).unwrap_or_default()),
    }))
    .into_response();
    r.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    Ok(r)
}

/// `POST /api/v1/logout`: ends this login (audited).
pub async fn logout(
    State(st): State<AppState>,
    Remote(remote): Remote,
    headers: axum::http::HeaderMap,
) -> Result<axum::http::StatusCode, ApiError> {
    if let Some(t) = bearer(&headers) {
        let index = st.index.clone();
        let t = t.to_string();
        let caller = blocking(move || {
            let c = lookup(&index, &t).ok();
            index.remove_token(&crate::archive::sha256_hex(t.as_bytes()))?;
            Ok(c)
        })
        .await?;
        if let Some(c) = caller {
            audit_auth(
                &st,
                &c.user,
                c.role.as_str(),
                "logout",
                String::new(),
                &remote,
            )?;
        }
    }
    Ok(axum::http::StatusCode::NO_CONTENT)
}

fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password("not a password").unwrap_or_default())
}

/// Seeds users that do not exist yet: the demo's `clerk`, `judge` and `admin` with
/// password `demo`, and the users of the config (with their configured hashes). An
/// account changed through the API (role, password) stays changed across restarts:
/// the config only gives an account its first password.
pub fn seed_users(index: &Index, cfg: &crate::config::Config) -> Result<()> {
    let mut seeds: Vec<(String, UserRole, Option<String>)> = Vec::new();
    if cfg.demo {
        for (name, role) in [
            ("clerk", UserRole::Clerk),
            ("judge", UserRole::Judge),
            ("admin", UserRole::Admin),
        ] {
            seeds.push((name.into(), role, None));
        }
    }
    for u in &cfg.users {
        let u = u.get_ref();
        seeds.push((u.name.clone(), u.role, Some(u.password_hash.clone())));
    }
    for (name, role, hash) in seeds {
        if index.user(&name)?.is_some() {
            continue;
        }
        let password_hash = match hash {
            Some(h) => h,
            None => hash_password("demo")?,
        };
        index.put_user(&UserDoc {
            name,
            role,
            password_hash,
            generation: 0,
        })?;
    }
    Ok(())
}

/// Access codes compare without spaces, dashes or case.
pub fn normalize_code(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeLoginBody {
    pub code: String,
}

/// `POST /api/v1/login/code`: a party logs in with a hearing's access code and gets a
/// token that opens that hearing alone, for as long as the code lives.
pub async fn login_code(
    State(st): State<AppState>,
    Remote(remote): Remote,
    ApiJson(body): ApiJson<CodeLoginBody>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let ip_key = format!("code-ip:{remote}");
    if let Some(w) = st.login.throttle.wait(&ip_key, std::time::Instant::now()) {
        return Ok(too_many(w, "too many wrong access codes"));
    }
    let index = st.index.clone();
    let code = blocking(move || {
        let norm = normalize_code(&body.code);
        Ok(index
            .access_code_by_hash(&crate::archive::sha256_hex(norm.as_bytes()))?
            .filter(|c| !c.revoked && c.expires_unix >= chrono::Utc::now().timestamp()))
    })
    .await?;
    let Some(code) = code else {
        audit_auth(&st, "", "", "login_code_failed", String::new(), &remote)?;
        if let Some(w) = st
            .login
            .throttle
            .failed(&ip_key, ADDRESS_SCALE, std::time::Instant::now())
        {
            return Ok(too_many(w, "too many wrong access codes"));
        }
        return Err(ApiError(Error::new(
            ErrorKind::Unauthenticated,
            "unknown, revoked or expired access code",
        )));
    };
    st.login.throttle.succeeded(&ip_key);
    let user = format!("party:{}", code.label);
    let mut ev_detail = format!("code {}", code.code_id);
    ev_detail.truncate(200);
    super::access::record_audit(
        &st,
        crate::archive::audit::AuditEvent {
            user: user.clone(),
            role: UserRole::Party.as_str().into(),
            hearing: Some(code.hearing_id.clone()),
            action: "login_code".into(),
            detail: ev_detail,
            remote: Some(remote.clone()),
            sign_now: false,
        },
    )?;
    let token = hex::encode(rand::random::<[u8; 32]>());
    let expires = (chrono::Utc::now().timestamp() + TOKEN_LIFETIME_S).min(code.expires_unix);
    let doc = TokenDoc {
        user: user.clone(),
        role: UserRole::Party,
        expires_unix: expires,
        hearing: Some(code.hearing_id.clone()),
        code_id: Some(code.code_id.clone()),
        generation: 0,
    };
    let index = st.index.clone();
    let sha = crate::archive::sha256_hex(token.as_bytes());
    blocking(move || index.put_token(&sha, &doc)).await?;
    let mut r = axum::Json(serde_json::json!({
        "token": token,
        "user": user,
        "role": UserRole::Party,
        "hearing_id": code.hearing_id,
        "expires_at": crate::archive::records::format_wall(
            chrono::DateTime::from_timestamp(expires, 0).unwrap_or_default()
        ),
    }))
    .into_response();
    r.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_hashes_take_7_mib_and_older_default_hashes_still_verify() {
        let h = hash_password("demo").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=7168,t=5,p=1$"), "{h}");
        assert!(verify_password(&h, "demo"));
        assert!(!verify_password(&h, "demo "));
        // A hash made with the crate's default parameters (19 MiB, 2 passes), as
        // `hash-password` made them before: its own parameters are used to check it.
        let salt = SaltString::encode_b64(&[7u8; 16]).unwrap();
        let old = argon2::Argon2::default()
            .hash_password(b"demo", &salt)
            .unwrap()
            .to_string();
        assert!(old.contains("m=19456,t=2,p=1"), "{old}");
        assert!(verify_password(&old, "demo"));
        assert!(!verify_password(&old, "other"));
    }
}
