//! Sign-up, login, logout, `/me` and changing one's own password. Logout, `/me` and the
//! password change admit a restricted session ([`SetupAuth`]).

use super::auth::request_meta;
use super::error::ApiResult;
use super::setup_auth::SetupAuth;
use super::users::UserOut;
use super::{Created, NoContent, Tag};
use crate::server::AppState;
use chrono::{DateTime, Utc};
use crm_core::audit::{self, Actor};
use crm_core::authz::policy;
use crm_core::domain::Email;
use crm_core::identity::{sessions, PrincipalKind, Restriction};
use crm_core::{mfa, users, Error};
use crm_tenants::login::{self, LoggedIn, LoginStep};
use crm_tenants::password;
use crm_tenants::signup::{self, SignupForm};
use poem::Request;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use uuid::Uuid;

pub struct AccountApi(pub AppState);

/// A company signing up.
#[derive(Object)]
pub struct SignupRequest {
    /// 3-40 characters a-z, 0-9, '-': the company's short name in URLs and logins.
    pub tenant_slug: String,
    pub tenant_name: String,
    pub admin_email: String,
    /// At least 10 characters, not a common password (the default password policy).
    pub admin_password: String,
    pub admin_name: String,
}

/// A tenant as its users see it.
#[derive(Object)]
pub struct TenantOut {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
}

/// Whether a company code (tenant slug) can be signed up now.
#[derive(Object)]
pub struct SlugAvailability {
    pub slug: String,
    pub available: bool,
    /// Why not: `invalid_slug`, `reserved_slug` or `taken`.
    #[oai(skip_serializing_if_is_none)]
    pub reason: Option<String>,
    /// What to do instead, in words.
    #[oai(skip_serializing_if_is_none)]
    pub message: Option<String>,
}

#[derive(Object)]
pub struct SignupResponse {
    pub tenant: TenantOut,
    pub user: UserOut,
    /// Session token of the new administrator.
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Object)]
pub struct LoginRequest {
    /// The tenant's slug.
    pub tenant: String,
    pub email: String,
    pub password: String,
}

/// A login's answer: a session, or (`mfa_required`) a token for the second step.
#[derive(Object)]
pub struct LoginResponse {
    /// Send as `Authorization: Bearer <token>`. Absent when `mfa_required`.
    #[oai(skip_serializing_if_is_none)]
    pub token: Option<String>,
    /// When the session (or, with `mfa_required`, the `mfa_token`) expires.
    pub expires_at: DateTime<Utc>,
    /// Absent when `mfa_required`.
    #[oai(skip_serializing_if_is_none)]
    pub user: Option<UserOut>,
    /// The user has MFA: send `mfa_token` and a code to `POST /api/v1/auth/login/mfa`.
    pub mfa_required: bool,
    #[oai(skip_serializing_if_is_none)]
    pub mfa_token: Option<String>,
    /// The password expired under the company's policy: this session only reaches `/me`,
    /// logout and `POST /api/v1/me/password` until it is changed.
    pub password_change_required: bool,
    /// A role of the user requires MFA: this session only reaches `/me`, logout and
    /// `/api/v1/account/mfa/enroll|confirm` until the user enrols.
    pub mfa_enrollment_required: bool,
}

impl From<LoggedIn> for LoginResponse {
    fn from(done: LoggedIn) -> Self {
        LoginResponse {
            token: Some(done.token),
            expires_at: done.expires_at,
            user: Some(done.user.into()),
            mfa_required: false,
            mfa_token: None,
            password_change_required: done.restriction == Some(Restriction::PasswordChange),
            mfa_enrollment_required: done.restriction == Some(Restriction::MfaEnrollment),
        }
    }
}

/// Who is calling.
#[derive(Object)]
pub struct PrincipalOut {
    /// `user` or `api_key`.
    pub kind: String,
    pub id: Uuid,
    pub name: String,
}

#[derive(Object)]
pub struct MeResponse {
    /// The user, when the credential is a session (absent for API keys).
    #[oai(skip_serializing_if_is_none)]
    pub user: Option<UserOut>,
    pub principal: PrincipalOut,
    pub tenant: TenantOut,
    pub roles: Vec<String>,
    pub permissions: Vec<String>,
    #[oai(skip_serializing_if_is_none)]
    pub session_expires_at: Option<DateTime<Utc>>,
    /// Whether the user has MFA on (false for API keys).
    pub mfa_enabled: bool,
    /// `password_change` or `mfa_enrollment` when the session is restricted to that.
    #[oai(skip_serializing_if_is_none)]
    pub session_restriction: Option<String>,
    /// Whether the company's sign-up address is verified (until then its mail goes only to
    /// its own users and its records' contacts and customers).
    pub tenant_verified: bool,
}

#[derive(Object)]
pub struct ChangePasswordRequest {
    pub current_password: String,
    pub new_password: String,
}

#[OpenApi(tag = "Tag::Account")]
impl AccountApi {
    /// Whether a company code can be signed up (the sign-up form asks while the user types):
    /// the same rules as sign-up — form, reserved names, codes already taken. Says nothing
    /// else about the company that holds a code.
    #[oai(path = "/signup/slug-availability", method = "get")]
    async fn slug_availability(
        &self,
        slug: poem_openapi::param::Query<String>,
    ) -> ApiResult<Json<SlugAvailability>> {
        let slug = slug.0.trim().to_owned();
        let refusal = signup::slug_refusal(&self.0.db, &slug).await?;
        let answer = SlugAvailability {
            available: refusal.is_none(),
            reason: refusal.as_ref().map(|r| r.code.to_owned()),
            message: refusal.map(|r| r.message),
            slug,
        };
        Ok(Json(answer))
    }

    /// Sign a company up: creates the tenant, its first administrator, and logs them in. The
    /// administrator is mailed a link that verifies the company's address.
    #[oai(path = "/signup", method = "post")]
    async fn signup(
        &self,
        req: &Request,
        body: Json<SignupRequest>,
    ) -> ApiResult<Created<SignupResponse>> {
        let state = &self.0;
        let form = SignupForm {
            tenant_slug: &body.tenant_slug,
            tenant_name: &body.tenant_name,
            admin_email: &body.admin_email,
            admin_name: &body.admin_name,
            admin_password: &body.admin_password,
        };
        let meta = request_meta(req, state);
        let per_address = state.config.signup_max_per_address;
        let ttl = state.session_ttl();
        let use_pool = state.config.signup_pool_size > 0;
        let signed_up = signup::sign_up(&state.db, form, ttl, &meta, per_address, use_pool).await;
        state.metrics.signup(match &signed_up {
            Ok(_) => "created",
            Err(_) => "refused",
        });
        let (provisioned, session) = signed_up?;
        tracing::info!(tenant = %provisioned.tenant.slug, "tenant signed up");
        Ok(Created::Created(Json(SignupResponse {
            tenant: TenantOut {
                id: provisioned.tenant.id,
                slug: provisioned.tenant.slug,
                name: provisioned.tenant.name,
            },
            user: provisioned.admin.into(),
            token: session.token,
            expires_at: session.expires_at,
        })))
    }

    /// Log in with e-mail and password. After repeated failures the account and the client
    /// address are locked for a growing time (429 with Retry-After).
    #[oai(path = "/auth/login", method = "post")]
    async fn login(
        &self,
        req: &Request,
        body: Json<LoginRequest>,
    ) -> ApiResult<Json<LoginResponse>> {
        let state = &self.0;
        let meta = request_meta(req, state);
        let email = Email::parse("email", &body.email)?;
        let attempt = login::login(
            &state.db,
            state.config.throttle_policy(),
            state.session_ttl(),
            login::Credentials {
                tenant: &body.tenant,
                email: &email,
                password: &body.password,
            },
            &meta,
        )
        .await?;
        state.metrics.login(attempt.outcome.as_str());
        Ok(Json(match attempt.result? {
            LoginStep::Session(done) => (*done).into(),
            LoginStep::MfaRequired {
                mfa_token,
                expires_at,
            } => LoginResponse {
                token: None,
                expires_at,
                user: None,
                mfa_required: true,
                mfa_token: Some(mfa_token),
                password_change_required: false,
                mfa_enrollment_required: false,
            },
        }))
    }

    /// Log out: revokes the session token used for this request.
    #[oai(path = "/auth/logout", method = "post")]
    async fn logout(&self, auth: SetupAuth) -> ApiResult<NoContent> {
        let (mut tx, _, ctx) = self.0.begin_setup(&auth).await?;
        let Some(session_id) = ctx.principal.session_id else {
            return Err(Error::bad_request(
                "auth.not_a_session",
                "API keys do not log out; revoke them with DELETE /api/v1/api-keys/{id}",
            )
            .into());
        };
        sessions::revoke(&mut tx, session_id).await?;
        audit::record(
            &mut tx,
            &Actor::of(&ctx),
            "auth.logout",
            Some(("user", ctx.principal.id.to_string())),
            serde_json::json!({ "session_id": session_id }),
        )
        .await?;
        tx.commit().await?;
        Ok(NoContent::NoContent)
    }

    /// The caller: user, tenant, roles and effective permissions.
    #[oai(path = "/me", method = "get")]
    async fn me(&self, auth: SetupAuth) -> ApiResult<Json<MeResponse>> {
        let state = &self.0;
        let (mut tx, caller, ctx) = state.begin_setup(&auth).await?;
        let permissions = caller.permissions();
        let tenant = state
            .tenants
            .by_id(ctx.tenant.id)
            .await?
            .ok_or_else(|| Error::not_found("tenant.not_found", "tenant vanished"))?;
        let roles = policy::subject_roles(&mut tx, &ctx.principal.subject()).await?;
        let user = match ctx.principal.kind {
            PrincipalKind::User => Some(users::get(&mut tx, ctx.principal.id).await?.into()),
            PrincipalKind::ApiKey | PrincipalKind::Plugin => None,
        };
        let session_expires_at = match ctx.principal.session_id {
            Some(id) => sessions::expires_at(&mut tx, id).await?,
            None => None,
        };
        let mfa_enabled = match ctx.principal.user_id() {
            Some(id) => mfa::is_enrolled(&mut tx, id).await?,
            None => false,
        };
        let tenant_verified = crm_core::mail::verification::is_verified(&mut tx).await?;
        tx.commit().await?;
        Ok(Json(MeResponse {
            user,
            principal: PrincipalOut {
                kind: ctx.principal.kind.as_str().to_owned(),
                id: ctx.principal.id,
                name: ctx.principal.name.clone(),
            },
            tenant: TenantOut {
                id: tenant.id,
                slug: tenant.slug,
                name: tenant.name,
            },
            roles,
            permissions: permissions.iter().map(ToString::to_string).collect(),
            session_expires_at,
            mfa_enabled,
            session_restriction: ctx.principal.restriction.map(|r| r.as_str().to_owned()),
            tenant_verified,
        }))
    }

    /// Change one's own password; every other session of the user is logged out. The new
    /// password must meet the company's password policy (422 `password.policy` naming every
    /// rule it breaks). Works for a session whose password expired.
    #[oai(path = "/me/password", method = "post")]
    async fn change_password(
        &self,
        auth: SetupAuth,
        body: Json<ChangePasswordRequest>,
    ) -> ApiResult<NoContent> {
        let state = &self.0;
        let (current, new) = (&body.current_password, &body.new_password);
        let policy = state.config.throttle_policy();
        let ctx = state.authenticated_setup(&auth).await?;
        let actor = Actor::of(&ctx);
        password::change_own(
            &state.db,
            &ctx.tenant,
            &ctx.principal,
            &actor,
            current,
            new,
            policy,
        )
        .await?;
        Ok(NoContent::NoContent)
    }
}
