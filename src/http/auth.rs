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

pub fn hash_password(password: &str) -> Result<String> {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
        .map_err(|e| Error::new(ErrorKind::Internal, format!("making a salt: {e}")))?;
    argon2::Argon2::default()
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

fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

fn lookup(index: &Index, token: &str) -> Result<Caller> {
    let unauth = |m: &str| Error::new(ErrorKind::Unauthenticated, m.to_string());
    let t = index
        .token(&crate::archive::sha256_hex(token.as_bytes()))?
        .ok_or_else(|| unauth("unknown or expired token; log in again"))?;
    if t.expires_unix < chrono::Utc::now().timestamp() {
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
    }
    Ok(Caller {
        user: t.user,
        role: t.role,
        hearing: t.hearing,
        remote: None,
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

pub async fn login(
    State(st): State<AppState>,
    ApiJson(body): ApiJson<LoginBody>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let index = st.index.clone();
    blocking(move || {
        let user = index.user(&body.username)?;
        // Verify against a dummy hash when the user does not exist, so timing does not
        // tell which user names exist.
        let ok = match &user {
            Some(u) => verify_password(&u.password_hash, &body.password),
            None => {
                let _ = verify_password(dummy_hash(), &body.password);
                false
            }
        };
        let Some(user) = user.filter(|_| ok) else {
            return Err(Error::new(
                ErrorKind::Unauthenticated,
                "wrong user name or password",
            ));
        };
        let token = hex::encode(rand::random::<[u8; 32]>());
        let expires = chrono::Utc::now().timestamp() + TOKEN_LIFETIME_S;
        index.put_token(
            &crate::archive::sha256_hex(token.as_bytes()),
            &TokenDoc {
                user: user.name.clone(),
                role: user.role,
                expires_unix: expires,
                hearing: None,
                code_id: None,
            },
        )?;
        Ok(axum::Json(serde_json::json!({
            "token": token,
            "user": user.name,
            "role": user.role,
            "expires_at": crate::archive::records::format_wall(
                chrono::DateTime::from_timestamp(expires, 0).unwrap_or_default()),
        })))
    })
    .await
}

pub async fn logout(
    State(st): State<AppState>,
    headers: axum::http::HeaderMap,
) -> Result<axum::http::StatusCode, ApiError> {
    if let Some(t) = bearer(&headers) {
        st.index
            .remove_token(&crate::archive::sha256_hex(t.as_bytes()))?;
    }
    Ok(axum::http::StatusCode::NO_CONTENT)
}

fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password("not a password").unwrap_or_default())
}

/// Seeds users: the demo's `clerk`, `judge` and `admin` with password `demo`, and the
/// users of the config (with their configured hashes).
pub fn seed_users(index: &Index, cfg: &crate::config::Config) -> Result<()> {
    if cfg.demo {
        for (name, role) in [
            ("clerk", UserRole::Clerk),
            ("judge", UserRole::Judge),
            ("admin", UserRole::Admin),
        ] {
            let existing = index.user(name)?;
            if existing
                .as_ref()
                .is_some_and(|u| verify_password(&u.password_hash, "demo"))
            {
                continue;
            }
            index.put_user(&UserDoc {
                name: name.into(),
                role,
                password_hash: hash_password("demo")?,
            })?;
        }
    }
    for u in &cfg.users {
        let u = u.get_ref();
        index.put_user(&UserDoc {
            name: u.name.clone(),
            role: u.role,
            password_hash: u.password_hash.clone(),
        })?;
    }
    Ok(())
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
    ApiJson(body): ApiJson<CodeLoginBody>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let index = st.index.clone();
    blocking(move || {
        let norm = super::access::normalize_code(&body.code);
        let code = index
            .access_code_by_hash(&crate::archive::sha256_hex(norm.as_bytes()))?
            .filter(|c| !c.revoked && c.expires_unix >= chrono::Utc::now().timestamp())
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Unauthenticated,
                    "unknown, revoked or expired access code",
                )
            })?;
        let token = hex::encode(rand::random::<[u8; 32]>());
        let expires = (chrono::Utc::now().timestamp() + TOKEN_LIFETIME_S).min(code.expires_unix);
        let user = format!("party:{}", code.label);
        index.put_token(
            &crate::archive::sha256_hex(token.as_bytes()),
            &TokenDoc {
                user: user.clone(),
                role: UserRole::Party,
                expires_unix: expires,
                hearing: Some(code.hearing_id.clone()),
                code_id: Some(code.code_id.clone()),
            },
        )?;
        Ok(axum::Json(serde_json::json!({
            "token": token,
            "user": user,
            "role": UserRole::Party,
            "hearing_id": code.hearing_id,
            "expires_at": crate::archive::records::format_wall(
                chrono::DateTime::from_timestamp(expires, 0).unwrap_or_default()
            ),
        })))
    })
    .await
}
