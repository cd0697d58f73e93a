//! Sign-up, login, logout, `/me` and changing one's own password.

use super::auth::{request_meta, Auth};
use super::error::ApiResult;
use super::users::UserOut;
use super::{checked, Created, NoContent, Tag};
use crate::server::AppState;
use chrono::{DateTime, Utc};
use crm_core::audit::{self, Actor};
use crm_core::authz::policy;
use crm_core::domain::{DisplayName, Email, Password, Validator};
use crm_core::identity::{self, sessions, PrincipalKind};
use crm_core::{users, Error};
use crm_tenants::{login, throttle};
use crm_tenants::{provision_tenant, NewAdmin, NewTenant, TenantSlug};
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
    /// At least 10 characters.
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

#[derive(Object)]
pub struct LoginResponse {
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    pub expires_at: DateTime<Utc>,
    pub user: UserOut,
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
}

#[derive(Object)]
pub struct ChangePasswordRequest {
    pub current_password: String,
    pub new_password: String,
}

#[OpenApi(tag = "Tag::Account")]
impl AccountApi {
    /// Sign a company up: creates the tenant, its first administrator, and logs them in.
    #[oai(path = "/signup", method = "post")]
    async fn signup(
        &self,
        req: &Request,
        body: Json<SignupRequest>,
    ) -> ApiResult<Created<SignupResponse>> {
        let state = &self.0;
        let mut v = Validator::new();
        let slug = v.check(TenantSlug::parse("tenant_slug", &body.tenant_slug));
        let tenant_name = v.check(DisplayName::parse("tenant_name", &body.tenant_name));
        let email = v.check(Email::parse("admin_email", &body.admin_email));
        let admin_name = v.check(DisplayName::parse("admin_name", &body.admin_name));
        let password = v.check(Password::parse("admin_password", &body.admin_password));
        v.finish()?;
        let password_hash = identity::hash_password(checked(password)?.expose()).await?;
        let provisioned = provision_tenant(
            &state.db,
            NewTenant {
                slug: checked(slug)?,
                name: checked(tenant_name)?,
            },
            NewAdmin {
                email: checked(email)?,
                name: checked(admin_name)?,
                password_hash,
            },
        )
        .await;
        state.metrics.signup(if provisioned.is_ok() {
            "created"
        } else {
            "refused"
        });
        let provisioned = provisioned?;
        let ctx = provisioned.tenant.ctx()?;
        let meta = request_meta(req, state);
        let mut tx = state.db.tenant_tx(&ctx).await?;
        let session = sessions::create(
            &mut tx,
            provisioned.admin.id,
            state.session_ttl(),
            meta.ip.as_deref(),
            meta.user_agent.as_deref(),
        )
        .await?;
        tx.commit().await?;
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
        let done = attempt.result?;
        Ok(Json(LoginResponse {
            token: done.token,
            expires_at: done.expires_at,
            user: done.user.into(),
        }))
    }

    /// Log out: revokes the session token used for this request.
    #[oai(path = "/auth/logout", method = "post")]
    async fn logout(&self, auth: Auth) -> ApiResult<NoContent> {
        let ctx = auth.0;
        let Some(session_id) = ctx.principal.session_id else {
            return Err(Error::bad_request(
                "auth.not_a_session",
                "API keys do not log out; revoke them with DELETE /api/v1/api-keys/{id}",
            )
            .into());
        };
        let mut tx = self.0.db.tenant_tx(&ctx.tenant).await?;
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
    async fn me(&self, auth: Auth) -> ApiResult<Json<MeResponse>> {
        let state = &self.0;
        let ctx = auth.0;
        let permissions = state.permissions_of(&ctx).await?;
        let tenant = crm_tenants::registry::by_id(&state.db.pool, ctx.tenant.id)
            .await?
            .ok_or_else(|| Error::not_found("tenant.not_found", "tenant vanished"))?;
        let mut tx = state.db.tenant_tx(&ctx.tenant).await?;
        let roles = policy::subject_roles(&mut tx, &ctx.principal.subject()).await?;
        let user = match ctx.principal.kind {
            PrincipalKind::User => Some(users::get(&mut tx, ctx.principal.id).await?.into()),
            PrincipalKind::ApiKey => None,
        };
        let session_expires_at = match ctx.principal.session_id {
            Some(id) => sessions::expires_at(&mut tx, id).await?,
            None => None,
        };
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
            permissions: permissions.iter().map(|p| p.as_str().to_owned()).collect(),
            session_expires_at,
        }))
    }

    /// Change one's own password; every other session of the user is logged out.
    #[oai(path = "/me/password", method = "post")]
    async fn change_password(
        &self,
        auth: Auth,
        body: Json<ChangePasswordRequest>,
    ) -> ApiResult<NoContent> {
        let state = &self.0;
        let ctx = auth.0;
        let user_id = ctx
            .principal
            .user_id()
            .ok_or_else(|| Error::bad_request("auth.not_a_user", "API keys have no password"))?;
        let new_password = Password::parse("new_password", &body.new_password)?;
        if body.new_password == body.current_password {
            return Err(Error::invalid_field(
                "new_password",
                "unchanged",
                "must differ from the current password",
            )
            .into());
        }
        // Guessing the current password with a stolen session is throttled like a login.
        let pool = &state.db.pool;
        let mut tx = state.db.tenant_tx(&ctx.tenant).await?;
        let profile = users::get(&mut tx, user_id).await?;
        let stored = users::password_hash(&mut tx, user_id).await?;
        tx.commit().await?;
        let account_key = throttle::account_key(ctx.tenant.id, &profile.email);
        if let Some(secs) = throttle::locked_for(pool, std::slice::from_ref(&account_key)).await? {
            return Err(login::throttled(secs).into());
        }
        if !identity::verify_password(&body.current_password, Some(stored)).await? {
            throttle::record_failure(pool, &[account_key], state.config.throttle_policy()).await?;
            return Err(Error::invalid_field(
                "current_password",
                "incorrect",
                "the current password is wrong",
            )
            .into());
        }
        let hash = identity::hash_password(new_password.expose()).await?;
        let mut tx = state.db.tenant_tx(&ctx.tenant).await?;
        users::set_password(&mut tx, user_id, &hash).await?;
        sessions::revoke_all_of_user(&mut tx, user_id, ctx.principal.session_id).await?;
        audit::record(
            &mut tx,
            &Actor::of(&ctx),
            "user.password_changed",
            Some(("user", user_id.to_string())),
            serde_json::json!({}),
        )
        .await?;
        tx.commit().await?;
        Ok(NoContent::NoContent)
    }
}
