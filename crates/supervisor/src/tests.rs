//! The supervisor's lifecycle on paused time, against a real SQLite file.

use std::time::Duration;

use colloquy_model::{
    AgentName, AgentSpec, AgentState, AgentStatus, AppId, ChannelName, ExitReason, IdleTimeout, LlmParams, SpecUpdate,
};
use colloquy_store::Store;

use crate::session::Command;
use crate::{Supervisor, SupervisorConfig, SupervisorError};

struct Fixture {
    _dir: tempfile::TempDir,
    supervisor: Supervisor,
}

async fn fixture(max_agents: u32) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("colloquy.db")).await.unwrap();
    let supervisor = Supervisor::new(store, SupervisorConfig { max_agents });
    supervisor.recover().await.unwrap();
    Fixture { _dir: dir, supervisor }
}

fn spec(name: &str, idle: IdleTimeout) -> AgentSpec {
    let mut spec = AgentSpec::with_defaults(AgentName::new(name).unwrap(), ChannelName::new("room").unwrap());
    spec.idle_timeout = idle;
    spec
}

fn statuses(changes: &[colloquy_store::StateChange]) -> Vec<AgentStatus> {
    changes.iter().map(|c| c.state.status()).collect()
}

#[tokio::test]
async fn an_agent_runs_then_leaves_with_every_state_written() {
    let f = fixture(10).await;
    let app = AppId::native();
    let started = f.supervisor.start(app.clone(), spec("bot", IdleTimeout::Never)).await.unwrap();
    assert_eq!(started.state, AgentState::Running);
    assert_eq!(f.supervisor.get(&app, &started.id).await.unwrap().state, AgentState::Running);

    let left = f.supervisor.leave(&app, &started.id).await.unwrap();
    assert_eq!(left.state, AgentState::Stopped(ExitReason::Left));
    assert!(left.stopped_at.is_some());
    let changes = f.supervisor.state_changes(&app, &started.id).await.unwrap();
    use AgentStatus::*;
    assert_eq!(statuses(&changes), [Starting, Running, Stopping, Stopped]);
    // A retried leave answers the same record.
    assert_eq!(f.supervisor.leave(&app, &started.id).await.unwrap().state, left.state);
    // And the agent is no longer live.
    assert!(f.supervisor.live_counts().is_empty());
}

#[tokio::test]
async fn admission_refuses_past_the_limit_and_frees_on_leave() {
    let f = fixture(2).await;
    let app = AppId::native();
    let a = f.supervisor.start(app.clone(), spec("a", IdleTimeout::Never)).await.unwrap();
    f.supervisor.start(app.clone(), spec("b", IdleTimeout::Never)).await.unwrap();
    let err = f.supervisor.start(app.clone(), spec("c", IdleTimeout::Never)).await.unwrap_err();
    assert!(matches!(err, SupervisorError::AgentLimit { max: 2 }), "{err:?}");
    f.supervisor.leave(&app, &a.id).await.unwrap();
    f.supervisor.start(app.clone(), spec("c", IdleTimeout::Never)).await.unwrap();
}

#[tokio::test]
async fn a_running_name_is_taken_until_its_agent_leaves() {
    let f = fixture(10).await;
    let app = AppId::native();
    let first = f.supervisor.start(app.clone(), spec("bot", IdleTimeout::Never)).await.unwrap();
    let err = f.supervisor.start(app.clone(), spec("bot", IdleTimeout::Never)).await.unwrap_err();
    assert!(matches!(err, SupervisorError::NameTaken(ref n) if n == "bot"), "{err:?}");
    // Another app may use the name.
    f.supervisor.start(AppId::new("other").unwrap(), spec("bot", IdleTimeout::Never)).await.unwrap();
    f.supervisor.leave(&app, &first.id).await.unwrap();
    f.supervisor.start(app, spec("bot", IdleTimeout::Never)).await.unwrap();
}

// Real time, not paused: with paused time tokio jumps the clock while SQLite's worker thread runs,
// and the pool's acquire timeout fires. One second is short enough.
#[tokio::test]
async fn the_idle_timeout_stops_an_agent_nobody_joined() {
    let f = fixture(10).await;
    let app = AppId::native();
    let started_at = tokio::time::Instant::now();
    let agent = f.supervisor.start(app.clone(), spec("bot", IdleTimeout::AfterSecs(1))).await.unwrap();
    let record = loop {
        let record = f.supervisor.get(&app, &agent.id).await.unwrap();
        if record.state.status().is_terminal() {
            break record;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(record.state, AgentState::Stopped(ExitReason::IdleTimeout));
    assert!(started_at.elapsed() >= Duration::from_secs(1), "stopped after {:?}", started_at.elapsed());
}

#[tokio::test]
async fn updates_change_the_live_spec_and_the_record() {
    let f = fixture(10).await;
    let app = AppId::native();
    let agent = f.supervisor.start(app.clone(), spec("bot", IdleTimeout::Never)).await.unwrap();
    let params = LlmParams { temperature: 0.1, ..LlmParams::DEFAULT };
    let update = SpecUpdate { llm_params: Some(params), voice: Some("alto".into()), ..SpecUpdate::default() };
    let updated = f.supervisor.update(&app, &agent.id, update).await.unwrap();
    assert_eq!((updated.spec.llm.params, updated.spec.tts.voice.as_str()), (params, "alto"));
    let recorded = f.supervisor.store().agent(&app, &agent.id).await.unwrap().unwrap();
    assert_eq!(recorded.spec.tts.voice, "alto");
    f.supervisor.leave(&app, &agent.id).await.unwrap();
    let err = f.supervisor.update(&app, &agent.id, SpecUpdate::default()).await.unwrap_err();
    assert!(matches!(err, SupervisorError::NotRunning(AgentStatus::Stopped)), "{err:?}");
}

#[tokio::test]
async fn speak_needs_a_media_session_and_unknown_agents_are_not_found() {
    let f = fixture(10).await;
    let app = AppId::native();
    let agent = f.supervisor.start(app.clone(), spec("bot", IdleTimeout::Never)).await.unwrap();
    let err = f.supervisor.command(&app, &agent.id, colloquy_model::AgentCommand::Interrupt).await.unwrap_err();
    assert!(matches!(err, SupervisorError::NoMediaSession), "{err:?}");
    let other_app = AppId::new("other").unwrap();
    let err = f.supervisor.get(&other_app, &agent.id).await.unwrap_err();
    assert!(matches!(err, SupervisorError::NotFound), "{err:?}");
}

#[tokio::test]
async fn a_panicking_session_fails_alone() {
    let f = fixture(10).await;
    let app = AppId::native();
    let doomed = f.supervisor.start(app.clone(), spec("doomed", IdleTimeout::Never)).await.unwrap();
    let healthy = f.supervisor.start(app.clone(), spec("healthy", IdleTimeout::Never)).await.unwrap();
    f.supervisor.live_commands(&app, &doomed.id).unwrap().send(Command::Panic).await.unwrap();
    let failed = loop {
        let record = f.supervisor.get(&app, &doomed.id).await.unwrap();
        if record.state.status().is_terminal() {
            break record;
        }
        tokio::task::yield_now().await;
    };
    assert_eq!(failed.state, AgentState::Failed(ExitReason::Panicked("a test asked this session to panic".into())));
    assert_eq!(f.supervisor.get(&app, &healthy.id).await.unwrap().state, AgentState::Running);
    // Its admission was given back and its name freed.
    f.supervisor.start(app, spec("doomed", IdleTimeout::Never)).await.unwrap();
}

#[tokio::test]
async fn shutdown_stops_every_agent_and_refuses_new_ones() {
    let f = fixture(10).await;
    let app = AppId::native();
    let a = f.supervisor.start(app.clone(), spec("a", IdleTimeout::Never)).await.unwrap();
    let b = f.supervisor.start(app.clone(), spec("b", IdleTimeout::AfterSecs(600))).await.unwrap();
    f.supervisor.shutdown().await;
    for id in [&a.id, &b.id] {
        let record = f.supervisor.store().agent(&app, id).await.unwrap().unwrap();
        assert_eq!(record.state, AgentState::Stopped(ExitReason::NodeShutdown));
    }
    let err = f.supervisor.start(app, spec("c", IdleTimeout::Never)).await.unwrap_err();
    assert!(matches!(err, SupervisorError::ShuttingDown), "{err:?}");
}

#[tokio::test]
async fn lifecycle_events_follow_every_agent_and_end_with_shutdown() {
    use colloquy_model::AgentEventKind::{Failed, Started, Stopped};
    let f = fixture(10).await;
    let mut events = f.supervisor.take_events().unwrap();
    assert!(f.supervisor.take_events().is_none(), "there is one event stream");
    let app = AppId::native();
    let a = f.supervisor.start(app.clone(), spec("a", IdleTimeout::Never)).await.unwrap();
    f.supervisor.leave(&app, &a.id).await.unwrap();
    let b = f.supervisor.start(app.clone(), spec("b", IdleTimeout::Never)).await.unwrap();
    f.supervisor.live_commands(&app, &b.id).unwrap().send(Command::Panic).await.unwrap();
    while !f.supervisor.get(&app, &b.id).await.unwrap().state.status().is_terminal() {
        tokio::task::yield_now().await;
    }
    f.supervisor.start(app.clone(), spec("c", IdleTimeout::Never)).await.unwrap();
    f.supervisor.shutdown().await;
    let mut seen = Vec::new();
    while let Some(event) = events.recv().await {
        seen.push((
            event.agent.spec.name.to_string(),
            event.kind.clone(),
            event.agent.state.reason().map(|r| r.code()),
        ));
    }
    let name = |s: &str| s.to_owned();
    assert_eq!(
        seen,
        [
            (name("a"), Started, None),
            (name("a"), Stopped, Some("left")),
            (name("b"), Started, None),
            (name("b"), Failed, Some("panicked")),
            (name("c"), Started, None),
            (name("c"), Stopped, Some("node_shutdown")),
        ]
    );
}

/// A media runtime whose sessions obey a few words: `think "panic"` panics inside the media task,
/// `think "finish"` ends it with an error, `think "speak"` reports the conversation speaking; an
/// agent named "broken" cannot start.
#[derive(Debug)]
struct ScriptedMedia;

impl crate::MediaRuntime for ScriptedMedia {
    fn start(
        &self,
        agent: colloquy_model::AgentRecord,
        _stats: std::sync::Arc<crate::TurnStats>,
        events: crate::ConversationEvents,
    ) -> crate::MediaStart {
        Box::pin(async move {
            events.set_state(colloquy_model::ConversationState::Listening);
            if agent.spec.name.as_str() == "broken" {
                return Err("no channel for this one".to_owned());
            }
            let (commands_tx, mut commands) = tokio::sync::mpsc::channel(4);
            let (ended_tx, ended) = tokio::sync::oneshot::channel();
            tokio::spawn(async move {
                while let Some(command) = commands.recv().await {
                    match command {
                        crate::MediaCommand::Agent(colloquy_model::AgentCommand::Think { text, .. })
                            if text == "panic" =>
                        {
                            panic!("the media session panicked on purpose")
                        }
                        crate::MediaCommand::Agent(colloquy_model::AgentCommand::Think { text, .. })
                            if text == "finish" =>
                        {
                            let _ = ended_tx.send(ExitReason::Error("the media gave up".into()));
                            return;
                        }
                        crate::MediaCommand::Agent(colloquy_model::AgentCommand::Think { text, .. })
                            if text == "speak" =>
                        {
                            events.set_state(colloquy_model::ConversationState::Speaking);
                        }
                        crate::MediaCommand::Stop => {
                            let _ = ended_tx.send(ExitReason::Left);
                            return;
                        }
                        _ => {}
                    }
                }
            });
            Ok(crate::MediaSession { commands: commands_tx, ended })
        })
    }
}

#[tokio::test]
async fn media_that_panics_fails_or_cannot_start_ends_its_agent_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("colloquy.db")).await.unwrap();
    let supervisor =
        Supervisor::with_media(store, SupervisorConfig { max_agents: 10 }, std::sync::Arc::new(ScriptedMedia));
    let app = AppId::native();
    let think = |text: &str| colloquy_model::AgentCommand::think(text);

    let broken = supervisor.start(app.clone(), spec("broken", IdleTimeout::Never)).await.unwrap_err();
    assert!(matches!(broken, SupervisorError::StartFailed(ref detail) if detail.contains("no channel")), "{broken:?}");

    let calm = supervisor.start(app.clone(), spec("calm", IdleTimeout::Never)).await.unwrap();
    let wild = supervisor.start(app.clone(), spec("wild", IdleTimeout::Never)).await.unwrap();
    let tired = supervisor.start(app.clone(), spec("tired", IdleTimeout::Never)).await.unwrap();
    supervisor.command(&app, &wild.id, think("panic")).await.unwrap();
    supervisor.command(&app, &tired.id, think("finish")).await.unwrap();
    let ended = |id: colloquy_model::AgentId| {
        let supervisor = supervisor.clone();
        let app = app.clone();
        async move {
            for _ in 0..200 {
                let record = supervisor.get(&app, &id).await.unwrap();
                if record.state.status().is_terminal() {
                    return record.state;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            panic!("the agent did not end")
        }
    };
    assert!(matches!(ended(wild.id.clone()).await, AgentState::Failed(ExitReason::Panicked(_))));
    assert!(
        matches!(ended(tired.id.clone()).await, AgentState::Failed(ExitReason::Error(ref d)) if d.contains("gave up"))
    );
    // The calm one carries on, takes commands, and leaves through its media.
    supervisor.command(&app, &calm.id, think("hello")).await.unwrap();
    use colloquy_model::ConversationState::{Listening, Speaking};
    assert_eq!(supervisor.conversation_state(&app, &calm.id), Some(Listening));
    supervisor.command(&app, &calm.id, think("speak")).await.unwrap();
    for _ in 0..100 {
        if supervisor.conversation_state(&app, &calm.id) == Some(Speaking) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(supervisor.conversation_state(&app, &calm.id), Some(Speaking));
    assert_eq!(supervisor.conversation_state(&AppId::new("other").unwrap(), &calm.id), None);
    assert_eq!(supervisor.get(&app, &calm.id).await.unwrap().state, AgentState::Running);
    assert_eq!(supervisor.leave(&app, &calm.id).await.unwrap().state, AgentState::Stopped(ExitReason::Left));
    assert_eq!(supervisor.conversation_state(&app, &calm.id), None);
}

/// Fills the capped database with templates, ever smaller, until not even a small one fits;
/// answers their ids.
async fn fill(store: &Store) -> Vec<String> {
    let app = AppId::native();
    let mut ids = Vec::new();
    for size in [3000, 1000, 300, 100, 30, 10] {
        for i in 0..10_000 {
            let id = format!("filler-{size}-{i}");
            match store.insert_template(&app, "test", &id, &"x".repeat(size), colloquy_model::UnixMillis(1)).await {
                Ok(_) => ids.push(id),
                Err(_) => break,
            }
        }
    }
    ids
}

async fn free(store: &Store, ids: &[String]) {
    for id in ids {
        store.delete_template(&AppId::native(), "test", id).await.unwrap();
    }
}

async fn full_fixture() -> (tempfile::TempDir, Supervisor, Store) {
    let dir = tempfile::tempdir().unwrap();
    let options = colloquy_store::StoreOptions { max_page_count: Some(48) };
    let store = Store::open_with(&dir.path().join("colloquy.db"), options).await.unwrap();
    let supervisor = Supervisor::new(store.clone(), SupervisorConfig { max_agents: 40 });
    supervisor.recover().await.unwrap();
    (dir, supervisor, store)
}

#[tokio::test]
async fn with_the_disk_full_nothing_is_answered_that_is_not_recorded() {
    let (_dir, supervisor, store) = full_fixture().await;
    let app = AppId::native();
    let mut running = Vec::new();
    for i in 0..10 {
        running.push(supervisor.start(app.clone(), spec(&format!("a{i}"), IdleTimeout::Never)).await.unwrap().id);
    }
    let filler = fill(&store).await;

    let mut refused = 0;
    let mut still_running = Vec::new();
    for id in &running {
        match supervisor.leave(&app, id).await {
            Ok(left) => {
                assert_eq!(left.state, AgentState::Stopped(ExitReason::Left));
                assert_eq!(
                    store.agent(&app, id).await.unwrap().unwrap().state,
                    left.state,
                    "answered but not recorded"
                );
            }
            Err(SupervisorError::Store(_)) => {
                // Refused and nothing done: the agent runs on, and its record says so.
                refused += 1;
                assert_eq!(supervisor.get(&app, id).await.unwrap().state, AgentState::Running);
                assert_eq!(store.agent(&app, id).await.unwrap().unwrap().state, AgentState::Running);
                still_running.push(id.clone());
            }
            Err(e) => panic!("{e:?}"),
        }
    }
    for i in 0..10 {
        match supervisor.start(app.clone(), spec(&format!("b{i}"), IdleTimeout::Never)).await {
            Ok(started) => {
                assert_eq!(store.agent(&app, &started.id).await.unwrap().unwrap().state, AgentState::Running);
                still_running.push(started.id);
            }
            Err(SupervisorError::Store(_)) => refused += 1,
            Err(e) => panic!("{e:?}"),
        }
    }
    assert!(refused > 0, "the disk never filled");
    assert!(!store.unrecorded().is_empty());

    // Once there is room, the same requests work and are recorded.
    free(&store, &filler).await;
    for id in &still_running {
        let left = supervisor.leave(&app, id).await.unwrap();
        assert_eq!(store.agent(&app, id).await.unwrap().unwrap().state, left.state);
    }
    supervisor.start(app.clone(), spec("after", IdleTimeout::Never)).await.unwrap();
    assert_eq!(supervisor.shutdown().await, crate::ShutdownReport::default());
}

#[tokio::test]
async fn shutdown_names_the_agents_whose_final_state_it_could_not_record() {
    let (_dir, supervisor, store) = full_fixture().await;
    let app = AppId::native();
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(supervisor.start(app.clone(), spec(&format!("a{i}"), IdleTimeout::Never)).await.unwrap().id);
    }
    fill(&store).await;
    let report = supervisor.shutdown().await;
    assert!(!report.unrecorded.is_empty(), "the disk never filled");
    for id in &ids {
        let recorded = store.agent(&app, id).await.unwrap().unwrap().state;
        match report.unrecorded.iter().find(|(unrecorded, _)| unrecorded == id) {
            // The records still say it is live: the next start marks it FAILED (node restarted).
            Some((_, error)) => {
                assert!(!recorded.status().is_terminal(), "{id} reported unrecorded but is {recorded:?}");
                assert!(error.contains("full"), "{error}");
            }
            None => assert_eq!(recorded, AgentState::Stopped(ExitReason::NodeShutdown)),
        }
    }
}
