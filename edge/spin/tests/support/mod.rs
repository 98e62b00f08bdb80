//! A native `Platform` for the Spin host: rusqlite (bundled SQLite, the engine Spin embeds) for
//! `spin:sqlite`, the core tests' `FakeHost` for key-value, clock, randomness and the scripted
//! upstream, a map for variables, and a real HTTP client for the audit bucket.
#![allow(dead_code)]

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use asc_core::builtin_regions;
use asc_core::host::{ByteSource, Chunks, EgressApproved, Host, HostError, UpstreamResponse};
use asc_spin::platform::{Outbound, Platform, SqlValue};
use asc_spin::{sql_cache, sql_ledger, sql_trail};
use rusqlite::types::{Value, ValueRef};

#[path = "../../../../shared/tests/common/mod.rs"]
pub mod common;

use common::{FakeBody, FakeHost, KEY_SECRET, UPSTREAM_KEY};

/// The fake upstream's body, or a real response read whole.
pub enum TestBody {
    Fake(FakeBody),
    Read(Option<Vec<u8>>),
}

impl ByteSource for TestBody {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, HostError> {
        match self {
            TestBody::Fake(b) => b.next_chunk().await,
            TestBody::Read(b) => Ok(b.take()),
        }
    }
}

pub struct TestPlatform {
    pub fake: Rc<FakeHost>,
    pub db: Rc<rusqlite::Connection>,
    pub vars: Rc<RefCell<HashMap<String, String>>>,
    /// Requests to this prefix go to a real server (the local S3), others to the fake upstream.
    pub bucket_prefix: Option<String>,
    /// Every request sent to the bucket: method and URL.
    pub bucket_log: Rc<RefCell<Vec<(String, String)>>>,
}

pub fn open_db(path: Option<&std::path::Path>) -> rusqlite::Connection {
    let db = match path {
        Some(p) => rusqlite::Connection::open(p).expect("sqlite file"),
        None => rusqlite::Connection::open_in_memory().expect("sqlite"),
    };
    // As the component prepares each connection Spin opens (rusqlite's own default would hide
    // a missing busy timeout: the concurrent-instances test then fails with "database is locked").
    for s in asc_spin::app::CONNECTION_SETUP {
        run_sql(&db, s, &[]).expect("connection setup");
    }
    for s in sql_ledger::SCHEMA
        .iter()
        .chain(sql_trail::SCHEMA)
        .chain(sql_cache::SCHEMA)
    {
        db.execute_batch(s).expect("schema");
    }
    db
}

impl TestPlatform {
    /// A platform over a fresh database, with the variables a `local` deployment sets.
    pub fn new(fake: Rc<FakeHost>) -> Self {
        let vars: HashMap<String, String> = [
            ("asc_region", "local"),
            ("asc_credentials", "OPENAI_API_KEY, MISTRAL_API_KEY"),
            ("key_hash_secret", KEY_SECRET),
            ("openai_api_key", UPSTREAM_KEY),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        TestPlatform {
            fake,
            db: Rc::new(open_db(None)),
            vars: Rc::new(RefCell::new(vars)),
            bucket_prefix: None,
            bucket_log: Rc::default(),
        }
    }

    /// Another instance of the same deployment: same stores, same variables.
    pub fn instance(&self) -> Self {
        TestPlatform {
            fake: self.fake.clone(),
            db: self.db.clone(),
            vars: self.vars.clone(),
            bucket_prefix: self.bucket_prefix.clone(),
            bucket_log: self.bucket_log.clone(),
        }
    }

    pub fn set_var(&self, name: &str, value: &str) {
        self.vars.borrow_mut().insert(name.into(), value.into());
    }

    pub fn query(&self, sql: &str) -> Vec<Vec<SqlValue>> {
        run_sql(&self.db, sql, &[]).expect("query")
    }
}

pub fn run_sql(
    db: &rusqlite::Connection,
    statement: &str,
    params: &[SqlValue],
) -> Result<Vec<Vec<SqlValue>>, HostError> {
    let fail = |e: rusqlite::Error| HostError::Store(format!("sqlite: {e}"));
    // As Spin runs statements: through the connection's cache of prepared statements.
    let mut stmt = db.prepare_cached(statement).map_err(fail)?;
    let values: Vec<Value> = params
        .iter()
        .map(|p| match p {
            SqlValue::Null => Value::Null,
            SqlValue::Integer(i) => Value::Integer(*i),
            SqlValue::Text(s) => Value::Text(s.clone()),
        })
        .collect();
    let columns = stmt.column_count();
    let mut rows = stmt
        .query(rusqlite::params_from_iter(values))
        .map_err(fail)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(fail)? {
        let mut values = Vec::with_capacity(columns);
        for i in 0..columns {
            values.push(match row.get_ref(i).map_err(fail)? {
                ValueRef::Integer(n) => SqlValue::Integer(n),
                ValueRef::Text(t) => SqlValue::Text(String::from_utf8_lossy(t).into_owned()),
                ValueRef::Blob(b) => SqlValue::Text(String::from_utf8_lossy(b).into_owned()),
                _ => SqlValue::Null,
            });
        }
        out.push(values);
    }
    Ok(out)
}

/// The clock of a [`DbInstance`] until a test moves it.
pub const DB_NOW: u64 = 1_767_225_600_000;

/// An instance that only has the database: its own clock, its own random bytes (a counter from
/// its seed, so instances with different seeds draw different tokens) and a log of the
/// statements it runs. Each thread of a test can be an instance with its own connection.
pub struct DbInstance {
    pub db: Rc<rusqlite::Connection>,
    pub now_ms: Cell<u64>,
    random: Cell<u8>,
    pub statements: RefCell<Vec<String>>,
}

impl DbInstance {
    pub fn new(db: rusqlite::Connection) -> Self {
        DbInstance::sharing(Rc::new(db), 0)
    }

    /// Another instance on the same connection, drawing random bytes from `seed`.
    pub fn sharing(db: Rc<rusqlite::Connection>, seed: u8) -> Self {
        DbInstance {
            db,
            now_ms: Cell::new(DB_NOW),
            random: Cell::new(seed),
            statements: RefCell::default(),
        }
    }
}

impl Platform for DbInstance {
    type Body = Chunks;
    fn now_ms(&self) -> u64 {
        self.now_ms.get()
    }
    fn fill_random(&self, buf: &mut [u8]) {
        for b in buf.iter_mut() {
            self.random.set(self.random.get().wrapping_add(1));
            *b = self.random.get();
        }
    }
    async fn variable(&self, _name: &str) -> Result<Option<String>, HostError> {
        Ok(None)
    }
    async fn kv_get(&self, _key: &str) -> Result<Option<Vec<u8>>, HostError> {
        Ok(None)
    }
    async fn kv_set(&self, _key: &str, _value: &[u8]) -> Result<(), HostError> {
        Ok(())
    }
    async fn sql(
        &self,
        statement: &str,
        params: &[SqlValue],
    ) -> Result<Vec<Vec<SqlValue>>, HostError> {
        self.statements.borrow_mut().push(statement.to_string());
        run_sql(&self.db, statement, params)
    }
    async fn send(&self, _req: Outbound) -> Result<UpstreamResponse<Chunks>, HostError> {
        Err(HostError::Unreachable("no network here".into()))
    }
    async fn sleep(&self, _ms: u64) {}
}

pub fn real_http(req: Outbound) -> Result<UpstreamResponse<TestBody>, HostError> {
    let agent = ureq::AgentBuilder::new()
        .timeout(std::time::Duration::from_millis(req.timeout_ms))
        .build();
    let mut r = agent.request(&req.method, &req.url);
    for (n, v) in &req.headers {
        if !n.eq_ignore_ascii_case("host") {
            r = r.set(n, v);
        }
    }
    let resp = match r.send_bytes(&req.body) {
        Ok(resp) => resp,
        Err(ureq::Error::Status(_, resp)) => resp,
        Err(e) => return Err(HostError::Unreachable(e.to_string())),
    };
    let status = resp.status();
    let headers = resp
        .headers_names()
        .iter()
        .filter_map(|n| {
            resp.header(n)
                .map(|v| (n.to_ascii_lowercase(), v.to_string()))
        })
        .collect();
    let mut body = Vec::new();
    std::io::Read::read_to_end(&mut resp.into_reader(), &mut body)
        .map_err(|e| HostError::Unreachable(e.to_string()))?;
    Ok(UpstreamResponse {
        status,
        headers,
        body: TestBody::Read(Some(body)),
    })
}

impl Platform for TestPlatform {
    type Body = TestBody;

    /// The simulated clock moves instead of waiting, as in the core's fake host.
    async fn sleep(&self, ms: u64) {
        self.fake.sleep(ms).await;
    }

    fn now_ms(&self) -> u64 {
        self.fake.now().0
    }

    fn fill_random(&self, buf: &mut [u8]) {
        self.fake.fill_random(buf);
    }

    async fn variable(&self, name: &str) -> Result<Option<String>, HostError> {
        Ok(self.vars.borrow().get(name).cloned())
    }

    async fn kv_get(&self, key: &str) -> Result<Option<Vec<u8>>, HostError> {
        self.fake.kv_get(key).await
    }

    async fn kv_set(&self, key: &str, value: &[u8]) -> Result<(), HostError> {
        if self.fake.config_store_down.get() {
            return Err(HostError::Store("key-value store unavailable".into()));
        }
        self.fake
            .kv
            .borrow_mut()
            .insert(key.to_string(), value.to_vec());
        Ok(())
    }

    async fn sql(
        &self,
        statement: &str,
        params: &[SqlValue],
    ) -> Result<Vec<Vec<SqlValue>>, HostError> {
        run_sql(&self.db, statement, params)
    }

    async fn send(&self, req: Outbound) -> Result<UpstreamResponse<TestBody>, HostError> {
        if let Some(prefix) = &self.bucket_prefix {
            if req.url.starts_with(prefix.as_str()) {
                self.bucket_log
                    .borrow_mut()
                    .push((req.method.clone(), req.url.clone()));
                return real_http(req);
            }
        }
        // Upstream calls: the same fake upstream the core's scenario tests script.
        let region = builtin_regions()
            .expect("regions")
            .get("local")
            .expect("local")
            .clone();
        let method: &'static str = match req.method.as_str() {
            "GET" => "GET",
            _ => "POST",
        };
        let url = url::Url::parse(&req.url).map_err(|e| HostError::Unreachable(e.to_string()))?;
        let approved =
            EgressApproved::check(&region, url, method, req.headers, req.body, req.timeout_ms)
                .map_err(|e| HostError::Unreachable(format!("{e:?}")))?;
        let resp = self.fake.send(approved).await?;
        Ok(UpstreamResponse {
            status: resp.status,
            headers: resp.headers,
            body: TestBody::Fake(resp.body),
        })
    }
}
