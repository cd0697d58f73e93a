//! Batching against N+1: the records a page's relation fields point to are read in one
//! statement per object and level (`engine::fetch_many`), and the related lists of a page's
//! records in one statement per list (`relations::related_of_many`), both through the
//! caller's scope and masking. One [`DataLoader`] per request, object and list.

use crate::session::Session;
use crate::values::Rec;
use async_graphql::dataloader::{DataLoader, Loader};
use crm_core::read_limit::Via;
use crm_records::engine::{self, Visibility};
use crm_records::ObjectKey;
use std::collections::HashMap;
use std::sync::{Arc, Weak};
use uuid::Uuid;

/// Records of one object by id.
pub struct RecordLoader {
    session: Weak<Session>,
    object: ObjectKey,
}

impl Loader<Uuid> for RecordLoader {
    type Value = Rec;
    type Error = async_graphql::Error;

    async fn load(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, Rec>, Self::Error> {
        let session = self.session.upgrade().ok_or_else(gone)?;
        let (mut tx, schema) = session.begin(self.object).await?;
        let found = engine::fetch_many(
            &mut tx,
            &schema,
            &session.access(self.object),
            ids,
            Visibility::Live,
        )
        .await
        .map_err(|e| session.fail(e))?;
        session.spend(found.len())?;
        let ids: Vec<Uuid> = found.keys().copied().collect();
        session
            .account(&mut tx, self.object, Via::List, &ids)
            .await?;
        Ok(found.into_iter().map(|(k, v)| (k, Rec::new(v))).collect())
    }
}

/// The records of `child` whose relation field `via` points to each parent id, at most
/// `per_parent` each, newest first.
pub struct RelatedLoader {
    session: Weak<Session>,
    child: ObjectKey,
    via: String,
    per_parent: i64,
}

impl Loader<Uuid> for RelatedLoader {
    type Value = Vec<Rec>;
    type Error = async_graphql::Error;

    async fn load(&self, parents: &[Uuid]) -> Result<HashMap<Uuid, Vec<Rec>>, Self::Error> {
        let session = self.session.upgrade().ok_or_else(gone)?;
        let (mut tx, schema) = session.begin(self.child).await?;
        let found = crm_records::query::related_of_many(
            &mut tx,
            &schema,
            &session.access(self.child),
            &self.via,
            parents,
            self.per_parent,
        )
        .await
        .map_err(|e| session.fail(e))?;
        session.spend(found.values().map(Vec::len).sum())?;
        let ids: Vec<Uuid> = found
            .values()
            .flatten()
            .filter_map(|r| r["id"].as_str().and_then(|s| s.parse().ok()))
            .collect();
        session
            .account(&mut tx, self.child, Via::List, &ids)
            .await?;
        Ok(found
            .into_iter()
            .map(|(k, v)| (k, v.into_iter().map(Rec::new).collect()))
            .collect())
    }
}

fn gone() -> async_graphql::Error {
    async_graphql::Error::new("the GraphQL request has ended")
}

/// The request's loader of `object`'s records.
pub fn records(session: &Arc<Session>, object: ObjectKey) -> Arc<DataLoader<RecordLoader>> {
    loader(session, format!("record:{object}"), || RecordLoader {
        session: Arc::downgrade(session),
        object,
    })
}

/// The request's loader of a related list.
pub fn related(
    session: &Arc<Session>,
    child: ObjectKey,
    via: &str,
    per_parent: i64,
) -> Arc<DataLoader<RelatedLoader>> {
    loader(
        session,
        format!("related:{child}:{via}:{per_parent}"),
        || RelatedLoader {
            session: Arc::downgrade(session),
            child,
            via: via.to_owned(),
            per_parent,
        },
    )
}

fn loader<L: Send + Sync + 'static>(
    session: &Arc<Session>,
    key: String,
    make: impl FnOnce() -> L,
) -> Arc<DataLoader<L>> {
    let mut loaders = match session.loaders.lock() {
        Ok(l) => l,
        Err(poisoned) => poisoned.into_inner(),
    };
    if let Some(found) = loaders
        .get(&key)
        .and_then(|l| l.clone().downcast::<DataLoader<L>>().ok())
    {
        return found;
    }
    let made = Arc::new(DataLoader::new(make(), tokio::spawn));
    loaders.insert(key, made.clone());
    made
}
