//! Sign-up, the use case: the company's and its administrator's details validated together
//! (every bad field named at once), the password hashed before any connection is taken, the
//! tenant claimed from the warm pool (`crate::pool`) or, with none ready, provisioned inline,
//! and the administrator logged in and sent the link that verifies the sign-up address.

use crate::pool;
use crate::provision::{provision_tenant, NewAdmin, NewTenant, Provisioned};
use crate::slug::TenantSlug;
use crate::throttle::{self, ThrottlePolicy};
use chrono::Duration;
use crm_core::context::RequestMeta;
use crm_core::db::Db;
use crm_core::domain::{DisplayName, Email, Password, Validator};
use crm_core::identity::{self, sessions, sessions::NewSession};
use crm_core::password_policy::PasswordPolicy;
use crm_core::{Error, Result};

/// A sign-up form as sent.
pub struct SignupForm<'a> {
    pub tenant_slug: &'a str,
    pub tenant_name: &'a str,
    pub admin_email: &'a str,
    pub admin_name: &'a str,
    pub admin_password: &'a str,
}

/// Why a company code cannot be signed up: its form (`invalid_slug`), a reserved name
/// (`reserved_slug`) or another company's (`taken`), with what to do in words.
pub struct SlugRefusal {
    pub code: &'static str,
    pub message: String,
}

/// Whether `raw` can be signed up now, by the rules sign-up applies; says nothing else about
/// the company holding a taken code.
pub async fn slug_refusal(db: &Db, raw: &str) -> Result<Option<SlugRefusal>> {
    let slug = match TenantSlug::parse("slug", raw) {
        Ok(slug) => slug,
        Err(e) => {
            return Ok(Some(SlugRefusal {
                code: e.code,
                message: e.message,
            }))
        }
    };
    Ok(crate::registry::by_slug(&db.pool, slug.as_str())
        .await?
        .map(|_| SlugRefusal {
            code: "taken",
            message: format!("'{raw}' is taken by another company; choose another code"),
        }))
}

/// Validates the form, creates the tenant with its administrator and opens the
/// administrator's first session (lasting `ttl`). Each client address may sign up
/// `per_address` companies in a burst (every attempt counts; the count fades after 15 quiet
/// minutes); beyond, 429 `signup.throttled` for an hour — a tenant is a role, a schema and
/// some forty tables, not a free resource. With `use_pool` the tenant comes from the warm
/// pool when an entry is ready.
pub async fn sign_up(
    db: &Db,
    form: SignupForm<'_>,
    ttl: Duration,
    meta: &RequestMeta,
    per_address: i32,
    use_pool: bool,
) -> Result<(Provisioned, NewSession)> {
    let address = throttle::ip_key(&format!(
        "signup {}",
        meta.ip.as_deref().unwrap_or("unknown")
    ));
    let policy = ThrottlePolicy {
        max_failures: per_address.max(1),
        max_failures_per_address: per_address.max(1),
        base_lock_secs: 3600,
        max_lock_secs: 3600,
    };
    if let Err(secs) = throttle::begin_attempt(&db.pool, &[address], policy).await? {
        return Err(Error::TooManyRequests {
            code: "signup.throttled",
            message: format!(
                "too many companies signed up from this address; try again in {} minutes",
                secs.div_ceil(60)
            ),
            retry_after_secs: secs,
        });
    }
    let mut v = Validator::new();
    let slug = v.check(TenantSlug::parse("tenant_slug", form.tenant_slug));
    let tenant_name = v.check(DisplayName::parse("tenant_name", form.tenant_name));
    let email = v.check(Email::parse("admin_email", form.admin_email));
    let admin_name = v.check(DisplayName::parse("admin_name", form.admin_name));
    let password = v.check(Password::parse("admin_password", form.admin_password));
    v.finish()?;
    let (Some(slug), Some(name), Some(email), Some(admin_name), Some(password)) =
        (slug, tenant_name, email, admin_name, password)
    else {
        return Err(Error::internal("validated value missing"));
    };
    // No tenant yet, so no tenant policy: the defaults.
    let password = PasswordPolicy::default()
        .vet("admin_password", password.expose(), &[])
        .await?;
    let password_hash = identity::hash_password(password.expose()).await?;
    let provisioned = create_tenant(
        db,
        NewTenant { slug, name },
        NewAdmin {
            email,
            name: admin_name,
            password_hash,
        },
        use_pool,
    )
    .await?;
    let session = first_session(db, &provisioned, ttl, meta).await?;
    Ok((provisioned, session))
}

/// The tenant with its first administrator: a pooled entry claimed when `use_pool` and one
/// is ready, else provisioned inline. A pooled entry that fails for any reason but the slug
/// is logged and sign-up provisions inline instead, so one broken entry cannot stop sign-ups.
pub async fn create_tenant(
    db: &Db,
    new: NewTenant,
    admin: NewAdmin,
    use_pool: bool,
) -> Result<Provisioned> {
    if use_pool {
        match pool::claim(db, &new, &admin).await {
            Ok(Some(claimed)) => return Ok(claimed),
            Ok(None) => tracing::debug!("sign-up pool empty; provisioning inline"),
            Err(e @ Error::Conflict { .. }) => return Err(e),
            Err(e) => {
                tracing::warn!(error = %e, "cannot claim a pooled tenant; provisioning inline");
            }
        }
    }
    provision_tenant(db, new, admin).await
}

/// The administrator's first session in their new tenant, lasting `ttl`, and the mail with
/// the link that verifies the sign-up address (`crm_core::mail::verification`), in one
/// transaction.
pub async fn first_session(
    db: &Db,
    provisioned: &Provisioned,
    ttl: Duration,
    meta: &RequestMeta,
) -> Result<NewSession> {
    let ctx = provisioned.tenant.ctx()?;
    let mut tx = db.tenant_tx(&ctx).await?;
    let session = sessions::create(
        &mut tx,
        provisioned.admin.id,
        ttl,
        meta.ip.as_deref(),
        meta.user_agent.as_deref(),
    )
    .await?;
    crm_core::mail::verification::send_signup_verification(&mut tx, &provisioned.admin.email)
        .await?;
    tx.commit().await?;
    Ok(session)
}
