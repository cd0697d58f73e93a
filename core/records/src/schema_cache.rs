//! Object schemas remembered per tenant and metadata version, so a steady-state request does
//! not read `field_defs`. Every change to a tenant's fields bumps its `metadata_version` in the
//! same transaction (`fields::bump_metadata_version`), and the credential check reads that
//! version in the request's own transaction: a request that sees version `v` uses the schema
//! cached for `v`, or reads it in its transaction and remembers it. The cache is keyed by
//! tenant id, never shared between tenants, and bounded (least recently used tenants go).

use crate::meta::ObjectKey;
use crate::schema::ObjectSchema;
use crm_core::db::TenantTx;
use crm_core::Result;
use lru::LruCache;
use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use uuid::Uuid;

struct Versioned {
    metadata_version: i64,
    objects: HashMap<ObjectKey, Arc<ObjectSchema>>,
}

/// A bounded per-tenant cache of [`ObjectSchema`]s.
pub struct SchemaCache {
    tenants: Mutex<LruCache<Uuid, Versioned>>,
}

impl SchemaCache {
    /// A cache holding the schemas of at most `tenants` tenants.
    pub fn new(tenants: usize) -> Self {
        let capacity = NonZeroUsize::new(tenants.max(1)).unwrap_or(NonZeroUsize::MIN);
        Self {
            tenants: Mutex::new(LruCache::new(capacity)),
        }
    }

    /// Number of tenants with cached schemas (for metrics).
    pub fn cached_tenants(&self) -> usize {
        self.tenants.lock().map_or(0, |t| t.len())
    }

    /// `object`'s schema at `metadata_version` (the version the request's credential check
    /// read in `tx`), from the cache or read in `tx`.
    pub async fn get(
        &self,
        tx: &mut TenantTx,
        object: ObjectKey,
        metadata_version: i64,
    ) -> Result<Arc<ObjectSchema>> {
        let tenant = tx.tenant().id;
        if let Some(hit) = self.lookup(tenant, object, metadata_version) {
            return Ok(hit);
        }
        let schema = Arc::new(ObjectSchema::load(tx, object).await?);
        if let Ok(mut tenants) = self.tenants.lock() {
            let stale = tenants
                .peek(&tenant)
                .is_none_or(|v| v.metadata_version < metadata_version);
            if stale {
                tenants.put(
                    tenant,
                    Versioned {
                        metadata_version,
                        objects: HashMap::new(),
                    },
                );
            }
            if let Some(v) = tenants
                .get_mut(&tenant)
                .filter(|v| v.metadata_version == metadata_version)
            {
                v.objects.insert(object, schema.clone());
            }
        }
        Ok(schema)
    }

    fn lookup(
        &self,
        tenant: Uuid,
        object: ObjectKey,
        metadata_version: i64,
    ) -> Option<Arc<ObjectSchema>> {
        let mut tenants = self.tenants.lock().ok()?;
        tenants
            .get(&tenant)
            .filter(|v| v.metadata_version == metadata_version)
            .and_then(|v| v.objects.get(&object).cloned())
    }
}
