//! The records under test, on either engine: every test of the suite runs once on a SQLite file
//! and once on a PostgreSQL database (`on_both_engines!`).

#![allow(dead_code)]

pub mod postgres;

use colloquy_model::{AgentId, AgentName, AgentRecord, AgentSpec, AgentState, AppId, ChannelName, UnixMillis};
use colloquy_store::{OutgoingWebhook, Store};

/// A STARTING agent of the native app named after its id, in channel `room`.
pub fn agent(id: &str, at: i64) -> AgentRecord {
    AgentRecord {
        id: AgentId::from_string(id.to_owned()),
        app: AppId::native(),
        spec: AgentSpec::with_defaults(AgentName::new(id).unwrap(), ChannelName::new("room").unwrap()),
        state: AgentState::Starting,
        created_at: UnixMillis(at),
        stopped_at: None,
    }
}

/// A delivery about `agent` to `url`, for an event at `at`.
pub fn webhook_to(url: &str, agent: &str, body: &str, at: i64) -> OutgoingWebhook {
    OutgoingWebhook {
        agent_id: AgentId::from_string(agent.to_owned()),
        url: url.to_owned(),
        headers: vec![("x-test".into(), "1".into())],
        body: body.to_owned(),
        created_at: UnixMillis(at),
    }
}

/// A delivery about `agent` to one receiver, for an event at time 1.
pub fn webhook(agent: &str, body: &str) -> OutgoingWebhook {
    webhook_to("http://127.0.0.1:9/hook", agent, body, 1)
}

/// A database for one test, opened as often as the test likes (a reopen is a restart).
#[derive(Debug)]
pub enum Db {
    Sqlite(tempfile::TempDir),
    /// A database of its own on the test binary's shared server.
    Postgres(String),
}

impl Db {
    pub fn sqlite() -> Db {
        Db::Sqlite(tempfile::tempdir().unwrap())
    }

    pub fn postgres() -> Db {
        Db::Postgres(postgres::shared().create_database())
    }

    pub async fn open(&self) -> Store {
        match self {
            Db::Sqlite(dir) => Store::open(&dir.path().join("colloquy.db")).await.unwrap(),
            Db::Postgres(url) => Store::open_postgres(url).await.unwrap(),
        }
    }
}

/// For each `async fn test(db: Db)` named, a test on SQLite (`sqlite::test`) and one on PostgreSQL
/// (`postgres::test`).
#[macro_export]
macro_rules! on_both_engines {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test($crate::common::Db::sqlite()).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test($crate::common::Db::postgres()).await
                }
            )*
        }
    };
}
