//! The pool's connection manager and connection type: bb8-postgres' connector, a checkout
//! test that costs no round trip, and a per-connection cache of prepared statements.

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};

use bb8::ManageConnection;
use bb8_postgres::PostgresConnectionManager;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Error, GenericClient, Row, Statement};
use tokio_postgres_rustls::MakeRustlsConnect;

/// Distinct statements kept per connection; past it the cache starts over (statements
/// differ by query shape and page bounds, so a varied workload must not grow it forever).
const MAX_CACHED_STATEMENTS: usize = 64;

/// bb8-postgres' manager tests every checked-out connection with an empty query: a round
/// trip (~0.09 ms here, a twentieth of a keyword search) on every statement. This one asks
/// the client whether its connection task has ended instead. When the server restarts or
/// a backend is terminated, the server closes the socket, the connection task sees it and
/// ends, and the dead client is replaced on checkout, before any caller uses it
/// (`tests/restart.rs` proves it). Only a closed client pays for the empty query, whose
/// error is what bb8 needs to discard it.
pub(crate) struct Manager(pub PostgresConnectionManager<MakeRustlsConnect>);

impl ManageConnection for Manager {
    type Connection = Connection;
    type Error = Error;

    async fn connect(&self) -> Result<Connection, Error> {
        Ok(Connection {
            client: self.0.connect().await?,
            statements: Default::default(),
        })
    }

    async fn is_valid(&self, conn: &mut Connection) -> Result<(), Error> {
        if conn.client.is_closed() {
            conn.client.simple_query("").await.map(|_| ())
        } else {
            Ok(())
        }
    }

    fn has_broken(&self, conn: &mut Connection) -> bool {
        conn.client.is_closed()
    }
}

/// A pooled client (it derefs to [`Client`]) with the statements it has prepared.
pub(crate) struct Connection {
    client: Client,
    statements: StatementCache,
}

/// Statements prepared on one connection, by SQL text. Shared (`Arc`) so that a
/// transaction, which borrows the client, can still use and fill it.
#[derive(Clone, Default)]
pub(crate) struct StatementCache(Arc<Mutex<HashMap<String, Statement>>>);

impl StatementCache {
    /// The statement for `sql`, prepared on `client` (a transaction of this
    /// connection's client) the first time. Named statements outlive the transaction.
    pub(crate) async fn get<C: GenericClient + Sync>(
        &self,
        client: &C,
        sql: &str,
    ) -> Result<Statement, Error> {
        if let Some(s) = self.lock().get(sql) {
            return Ok(s.clone());
        }
        let s = client.prepare(sql).await?;
        let mut cache = self.lock();
        if cache.len() >= MAX_CACHED_STATEMENTS {
            cache.clear();
        }
        cache.insert(sql.to_owned(), s.clone());
        Ok(s)
    }

    /// Forgets every statement, e.g. after an error that may come from a schema changed
    /// under them ("cached plan must not change result type").
    pub(crate) fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Statement>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Deref for Connection {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

impl DerefMut for Connection {
    fn deref_mut(&mut self) -> &mut Client {
        &mut self.client
    }
}

impl Connection {
    /// This connection's statement cache (a cheap handle).
    pub(crate) fn statements(&self) -> StatementCache {
        self.statements.clone()
    }

    /// Runs `sql` as a named statement prepared once per connection. Besides the parse,
    /// this lets Postgres keep a generic plan after a few executions (its `auto` plan
    /// cache mode, which still plans per call when the generic plan looks costlier):
    /// planning is a fifth of a keyword search over 100k entries.
    pub(crate) async fn query_cached(
        &self,
        sql: &str,
        params: &[(&(dyn ToSql + Sync), Type)],
    ) -> Result<Vec<Row>, Error> {
        let cached = self.statements.lock().get(sql).cloned();
        let statement = match cached {
            Some(s) => s,
            None => {
                let types: Vec<Type> = params.iter().map(|(_, t)| t.clone()).collect();
                let s = self.client.prepare_typed(sql, &types).await?;
                let mut cache = self.statements.lock();
                if cache.len() >= MAX_CACHED_STATEMENTS {
                    cache.clear();
                }
                cache.insert(sql.to_owned(), s.clone());
                s
            }
        };
        let values: Vec<&(dyn ToSql + Sync)> = params.iter().map(|(v, _)| *v).collect();
        let rows = self.client.query(&statement, &values).await;
        if rows.is_err() {
            // E.g. "cached plan must not change result type" after another process
            // migrated the schema: prepare afresh next time.
            self.statements.lock().remove(sql);
        }
        rows
    }
}
