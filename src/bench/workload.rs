//! What `crm bench api` asks for: the five operations and, for each call, its parameters (the
//! record, the filter, the search text, the new values). The HTTP side and the raw-SQL side
//! draw from one [`Workload`], so both do the same work on the same rows.

use super::dataset::{GIVEN, SURNAMES};
use std::sync::atomic::{AtomicU64, Ordering};
use uuid::Uuid;

/// The operations measured, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    GetById,
    FilteredList,
    Search,
    Create,
    Update,
}

impl Operation {
    pub const ALL: [Operation; 5] = [
        Operation::GetById,
        Operation::FilteredList,
        Operation::Search,
        Operation::Create,
        Operation::Update,
    ];

    /// The row label in the results table.
    pub fn label(self) -> &'static str {
        match self {
            Operation::GetById => "get by id",
            Operation::FilteredList => "list level+city, 20",
            Operation::Search => "search q=, 20",
            Operation::Create => "create",
            Operation::Update => "update",
        }
    }
}

/// The city every filtered list asks for (its level varies).
pub(crate) const LIST_CITY: &str = "上海";
/// Page size of lists and searches.
pub(crate) const PAGE: i64 = 20;

/// A customer to create.
pub(crate) struct NewCustomer {
    pub name: String,
    pub level: &'static str,
    /// Already in the E.164 form the server stores.
    pub phone: String,
    pub email: String,
}

/// Parameters of every call, shared by both sides.
pub(crate) struct Workload {
    ids: Vec<Uuid>,
    workers: usize,
    customers: usize,
    run: String,
    phone_base: u64,
    /// Creates and updates of both sides, numbered: each new phone, e-mail and value is unique,
    /// so no create is refused as a duplicate and every update changes something.
    sequence: AtomicU64,
    surnames: Vec<char>,
    given: Vec<char>,
}

impl Workload {
    /// `ids` are existing customers (at least one per worker); `customers` is about how many
    /// the tenant has.
    pub fn new(ids: Vec<Uuid>, workers: usize, customers: usize) -> anyhow::Result<Workload> {
        anyhow::ensure!(
            workers > 0 && ids.len() >= workers,
            "the tenant has {} customers to read and update, fewer than the {workers} connections; load more customers or use fewer --connections",
            ids.len()
        );
        let run = Uuid::new_v4().simple().to_string()[..8].to_owned();
        Ok(Workload {
            ids,
            workers,
            customers: customers.max(5),
            run,
            phone_base: u64::from(rand::random::<u32>()) % 100_000_000,
            sequence: AtomicU64::new(0),
            surnames: SURNAMES.chars().collect(),
            given: GIVEN.chars().collect(),
        })
    }

    /// A record to read: the workers spread over all sampled ids.
    pub fn record(&self, worker: usize, n: usize) -> Uuid {
        self.ids[(n * self.workers + worker) % self.ids.len()]
    }

    /// A record to update: each worker has its own share of the ids, so updates never wait
    /// for each other's row locks (on either side).
    pub fn own_record(&self, worker: usize, n: usize) -> Uuid {
        let per_worker = self.ids.len() / self.workers;
        self.ids[worker + self.workers * (n % per_worker)]
    }

    /// The level of a filtered list (the city is [`LIST_CITY`]).
    pub fn level(n: usize) -> &'static str {
        ["A", "B", "C", "D"][n % 4]
    }

    /// A search text: alternately a two-character Chinese name (the server's name-gram index)
    /// and a `Company<7 digits>` name of the loaded data (trigram `ILIKE`).
    pub fn search_text(&self, n: usize) -> String {
        if n % 2 == 0 {
            [
                self.surnames[(n / 2) % self.surnames.len()],
                self.given[(n * 7) % self.given.len()],
            ]
            .iter()
            .collect()
        } else {
            let i = (n * 655) % self.customers;
            format!("Company{:07}", i - i % 5)
        }
    }

    fn next(&self) -> u64 {
        self.sequence.fetch_add(1, Ordering::Relaxed)
    }

    /// A customer no one has created yet (phone and e-mail unique in this run).
    pub fn new_customer(&self) -> NewCustomer {
        let seq = self.next();
        NewCustomer {
            name: format!("压测客户{seq}"),
            level: Self::level(seq as usize),
            phone: format!("+86139{:08}", (self.phone_base + seq) % 100_000_000),
            email: format!("bench-{}-{seq}@create.example", self.run),
        }
    }

    /// A value of `industry` no record has yet.
    pub fn new_industry(&self) -> String {
        format!("压测行业-{}-{}", self.run, self.next())
    }
}
