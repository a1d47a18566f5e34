//! A full disk, for real: the database is capped with `max_page_count`, so writes past it fail with
//! SQLITE_FULL as they do when the file system has no room left; space is freed by deleting rows
//! from another connection.

mod common;

use colloquy_model::{AgentId, AgentState, AppId, ExitReason, HistoryEntry, Speaker, UnixMillis};
use colloquy_store::{Outbox, Store, StoreOptions};
use common::{agent, webhook};

fn entry(content: String) -> HistoryEntry {
    HistoryEntry { turn_id: 1, speaker: Speaker::User, content, interrupted: false, at: UnixMillis(1) }
}

/// Fills the capped file with history until a write fails.
async fn fill(store: &Store, filler: &AgentId) {
    for _ in 0..10_000 {
        if store.append_history(filler, &entry("x".repeat(3000))).await.is_err() {
            return;
        }
    }
    panic!("the cap never filled");
}

async fn free_space(path: &std::path::Path) {
    let raw = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display())).await.unwrap();
    sqlx::query("DELETE FROM history").execute(&raw).await.unwrap();
    raw.close().await;
}

#[tokio::test]
async fn a_full_disk_refuses_writes_whole_and_the_store_recovers_once_space_is_freed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("colloquy.db");
    let store = Store::open_with(&path, StoreOptions { max_page_count: Some(64) }).await.unwrap();
    store.insert_agent(&agent("filler", 0)).await.unwrap();
    let filler = AgentId::from_string("filler".into());
    fill(&store, &filler).await;

    // While full: every write either fails or is really there.
    let mut answered_ok = Vec::new();
    for i in 0..20 {
        let mut a = agent(&format!("a{i}"), i);
        a.spec.failure_message = Some("y".repeat(2000));
        if store.insert_agent_with(&a, &[webhook(a.id.as_str(), "crash ending")]).await.is_ok() {
            answered_ok.push(a.id.clone());
        }
    }
    let stopped = AgentState::exited(ExitReason::Left);
    let ended = store
        .set_state_with(
            &filler,
            &stopped,
            UnixMillis(5),
            Outbox { deliver: &[webhook("filler", "ended")], crash_ending: None },
        )
        .await;
    assert!(!store.unrecorded().is_empty(), "some writes failed and were counted");

    free_space(&path).await;
    // Every kind of write works again, on every connection of the pool.
    for i in 100..120 {
        store.insert_agent(&agent(&format!("b{i}"), i)).await.expect("writes work once there is room");
        store.append_history(&filler, &entry("z".into())).await.unwrap();
    }
    if ended.is_err() {
        store
            .set_state_with(
                &filler,
                &stopped,
                UnixMillis(6),
                Outbox { deliver: &[webhook("filler", "ended")], crash_ending: None },
            )
            .await
            .unwrap();
    }
    store.close().await;

    // What the writes answered is what a fresh open finds.
    let store = Store::open(&path).await.unwrap();
    for id in &answered_ok {
        assert!(store.agent(&AppId::native(), id).await.unwrap().is_some(), "{id} was answered ok but is not recorded");
    }
    for i in 100..120 {
        let id = AgentId::from_string(format!("b{i}"));
        assert!(store.agent(&AppId::native(), &id).await.unwrap().is_some(), "{id} lost");
    }
    let filler = store.agent(&AppId::native(), &filler).await.unwrap().unwrap();
    assert_eq!(filler.state, stopped);
    // The ending's webhook went in with its state, once.
    assert_eq!(store.webhook_counts().await.unwrap(), (1, 0));
}

/// A tmpfs of 2 MiB mounted for one test, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// `None` when this process may not mount (it is not root).
    fn mount() -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .ok()?;
        status.success().then_some(Tmpfs { dir })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(self.dir.path()).status();
    }
}

/// The disk itself fills (ENOSPC on the WAL), which is what left a connection holding the write
/// lock: every later write failed with "database is locked" after the space came back.
#[tokio::test]
async fn a_full_file_system_and_then_room_again() {
    let Some(tmpfs) = Tmpfs::mount() else {
        let root = std::process::Command::new("id").arg("-u").output().map(|o| o.stdout == b"0\n").unwrap_or(false);
        assert!(!root, "root could not mount a tmpfs");
        eprintln!("skipped: mounting a tmpfs needs root (the max_page_count test above covers the store's side)");
        return;
    };
    let ballast = tmpfs.dir.path().join("ballast");
    std::fs::write(&ballast, vec![0u8; 1200 * 1024]).unwrap();
    let path = tmpfs.dir.path().join("colloquy.db");
    let store = Store::open(&path).await.unwrap();
    store.insert_agent(&agent("filler", 0)).await.unwrap();
    let filler = AgentId::from_string("filler".into());
    fill(&store, &filler).await;
    let mut answered_ok = Vec::new();
    for i in 0..10 {
        let a = agent(&format!("a{i}"), i);
        if store.insert_agent(&a).await.is_ok() {
            answered_ok.push(a.id.clone());
        }
    }
    std::fs::remove_file(&ballast).unwrap();
    for i in 100..105 {
        let a = agent(&format!("b{i}"), i);
        store.insert_agent(&a).await.expect("writes work once the file system has room");
        answered_ok.push(a.id.clone());
    }
    store.close().await;
    let store = Store::open(&path).await.unwrap();
    for id in &answered_ok {
        assert!(store.agent(&AppId::native(), id).await.unwrap().is_some(), "{id} was answered ok but is not recorded");
    }
    store.close().await;
}
