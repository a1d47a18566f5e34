//! The records, on both engines: a SQLite file in a temporary directory and a PostgreSQL database on
//! a server of the test's own.

mod common;

use common::Db;

use colloquy_model::{
    AgentId, AgentName, AgentRecord, AgentSpec, AgentState, AgentStatus, AppId, ChannelName, ExitReason, HistoryEntry,
    InterruptCause, LlmProvider, RemoteEndpoint, Secret, Speaker, TurnDetail, TurnEnd, TurnMetrics, TurnRecord,
    TurnStart, Uid, UnixMillis,
};
use colloquy_store::{AgentFilter, StoreError};

fn agent(id: &str, name: &str, channel: &str, at: i64) -> AgentRecord {
    AgentRecord {
        id: AgentId::from_string(id.to_owned()),
        app: AppId::native(),
        spec: AgentSpec::with_defaults(AgentName::new(name).unwrap(), ChannelName::new(channel).unwrap()),
        state: AgentState::Running,
        created_at: UnixMillis(at),
        stopped_at: None,
    }
}

on_both_engines!(
    agents_round_trip_with_secrets_redacted,
    a_live_name_is_unique_per_app_and_freed_by_stopping,
    lists_page_newest_first_with_filters,
    records_survive_reopening_and_orphans_fail,
    templates_are_kept_per_app_and_dialect_and_survive_a_reopen,
    a_nonce_is_taken_once_per_scope_until_it_is_forgotten_and_survives_a_reopen,
);

async fn agents_round_trip_with_secrets_redacted(db: Db) {
    let store = db.open().await;
    let mut a = agent("a1", "bot", "room", 1);
    a.spec.llm.provider = LlmProvider::OpenAiCompatible(RemoteEndpoint {
        url: "http://127.0.0.1:9/v1".into(),
        api_key: Some(Secret::new("sk-secret")),
        model: "m".into(),
        headers: vec![],
        timeout_ms: 1000,
        max_retries: 0,
        key_header: Default::default(),
    });
    store.insert_agent(&a).await.unwrap();
    let back = store.agent(&AppId::native(), &a.id).await.unwrap().unwrap();
    let LlmProvider::OpenAiCompatible(endpoint) = &back.spec.llm.provider else { panic!("provider lost") };
    assert_eq!(endpoint.api_key.as_ref().unwrap().expose(), Secret::REDACTED);
    assert_eq!(back.state, AgentState::Running);
    // Another app does not see it.
    assert!(store.agent(&AppId::new("other").unwrap(), &a.id).await.unwrap().is_none());
}

async fn a_live_name_is_unique_per_app_and_freed_by_stopping(db: Db) {
    let store = db.open().await;
    store.insert_agent(&agent("a1", "bot", "room", 1)).await.unwrap();
    let err = store.insert_agent(&agent("a2", "bot", "room", 2)).await.unwrap_err();
    assert!(matches!(err, StoreError::NameTaken(name) if name == "bot"));
    let mut other_app = agent("a3", "bot", "room", 3);
    other_app.app = AppId::new("app2").unwrap();
    store.insert_agent(&other_app).await.unwrap();

    let stopped = AgentState::exited(ExitReason::Left);
    store.set_state(&AgentId::from_string("a1".into()), &stopped, UnixMillis(5)).await.unwrap();
    store.insert_agent(&agent("a4", "bot", "room", 6)).await.unwrap();
    let a1 = store.agent(&AppId::native(), &AgentId::from_string("a1".into())).await.unwrap().unwrap();
    assert_eq!(a1.state, stopped);
    assert_eq!(a1.stopped_at, Some(UnixMillis(5)));
    let changes = store.state_changes(&a1.id).await.unwrap();
    let states: Vec<_> = changes.iter().map(|c| (c.at.0, c.state.status())).collect();
    assert_eq!(states, [(1, AgentStatus::Running), (5, AgentStatus::Stopped)]);
}

async fn lists_page_newest_first_with_filters(db: Db) {
    let store = db.open().await;
    for i in 0..7 {
        let channel = if i % 2 == 0 { "even" } else { "odd" };
        let mut record = agent(&format!("a{i}"), &format!("bot{i}"), channel, i);
        if i == 3 {
            record.spec.agent_uid = Uid::new("1003").unwrap();
        }
        store.insert_agent(&record).await.unwrap();
    }
    store
        .set_state(&AgentId::from_string("a0".into()), &AgentState::exited(ExitReason::Left), UnixMillis(9))
        .await
        .unwrap();
    let app = AppId::native();

    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = store.list_agents(&app, &AgentFilter::default(), cursor, 3).await.unwrap();
        assert!(page.agents.len() <= 3);
        seen.extend(page.agents.iter().map(|a| a.id.to_string()));
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, ["a6", "a5", "a4", "a3", "a2", "a1", "a0"]);

    let even = AgentFilter { channel: Some(ChannelName::new("even").unwrap()), ..AgentFilter::default() };
    let page = store.list_agents(&app, &even, None, 10).await.unwrap();
    assert_eq!(page.agents.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(), ["a6", "a4", "a2", "a0"]);
    assert!(page.next.is_none());

    let stopped = AgentFilter { statuses: vec![AgentStatus::Stopped, AgentStatus::Failed], ..AgentFilter::default() };
    let page = store.list_agents(&app, &stopped, None, 10).await.unwrap();
    assert_eq!(page.agents.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(), ["a0"]);

    // Counts match the lists, with every filter; creation times are inclusive at both ends.
    assert_eq!(store.count_agents(&app, &AgentFilter::default()).await.unwrap(), 7);
    assert_eq!(store.count_agents(&app, &even).await.unwrap(), 4);
    assert_eq!(store.count_agents(&app, &stopped).await.unwrap(), 1);
    let window =
        AgentFilter { created_from: Some(UnixMillis(2)), created_to: Some(UnixMillis(4)), ..AgentFilter::default() };
    let page = store.list_agents(&app, &window, None, 10).await.unwrap();
    assert_eq!(page.agents.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(), ["a4", "a3", "a2"]);
    assert_eq!(store.count_agents(&app, &window).await.unwrap(), 3);
    let by_uid = AgentFilter { agent_uid: Some(Uid::new("1003").unwrap()), ..AgentFilter::default() };
    let page = store.list_agents(&app, &by_uid, None, 10).await.unwrap();
    assert_eq!(page.agents.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(), ["a3"]);
    assert_eq!(store.count_agents(&app, &by_uid).await.unwrap(), 1);
}

async fn records_survive_reopening_and_orphans_fail(db: Db) {
    {
        let store = db.open().await;
        store.insert_agent(&agent("live", "bot", "room", 1)).await.unwrap();
        store.insert_agent(&agent("done", "bot2", "room", 2)).await.unwrap();
        store
            .set_state(
                &AgentId::from_string("done".into()),
                &AgentState::exited(ExitReason::IdleTimeout),
                UnixMillis(3),
            )
            .await
            .unwrap();
        let id = AgentId::from_string("live".into());
        store
            .append_history(
                &id,
                &HistoryEntry {
                    turn_id: 1,
                    speaker: Speaker::User,
                    content: "hello".into(),
                    interrupted: false,
                    at: UnixMillis(4),
                },
            )
            .await
            .unwrap();
        store
            .record_turn(
                &id,
                &TurnRecord {
                    turn_id: 1,
                    start: TurnStart::VoiceInput,
                    end: TurnEnd::Interrupted,
                    started_at: UnixMillis(4),
                    ended_at: UnixMillis(5),
                    metrics: TurnMetrics { e2e_ms: Some(812), ..TurnMetrics::default() },
                    detail: TurnDetail {
                        speech_duration_ms: Some(1200),
                        playback_ms: Some(640),
                        interrupted_by: Some(InterruptCause::ApiSpeak),
                        ..TurnDetail::default()
                    },
                },
            )
            .await
            .unwrap();
        store.close().await;
    }
    let store = db.open().await;
    let failed = store.fail_orphans(UnixMillis(10)).await.unwrap();
    assert_eq!(failed.iter().map(AgentId::as_str).collect::<Vec<_>>(), ["live"]);
    let app = AppId::native();
    let live = store.agent(&app, &AgentId::from_string("live".into())).await.unwrap().unwrap();
    assert_eq!(live.state, AgentState::Failed(ExitReason::NodeRestarted));
    let done = store.agent(&app, &AgentId::from_string("done".into())).await.unwrap().unwrap();
    assert_eq!(done.state, AgentState::Stopped(ExitReason::IdleTimeout));
    let history = store.history(&live.id).await.unwrap();
    assert_eq!((history[0].speaker, history[0].content.as_str()), (Speaker::User, "hello"));
    let turns = store.turns(&live.id).await.unwrap();
    assert_eq!((turns[0].end, turns[0].metrics.e2e_ms), (TurnEnd::Interrupted, Some(812)));
    assert_eq!(turns[0].detail.interrupted_by, Some(InterruptCause::ApiSpeak));
    assert_eq!((turns[0].detail.speech_duration_ms, turns[0].detail.playback_ms), (Some(1200), Some(640)));
}

async fn templates_are_kept_per_app_and_dialect_and_survive_a_reopen(db: Db) {
    let app = AppId::new("app1").unwrap();
    let other = AppId::new("app2").unwrap();
    {
        let store = db.open().await;
        assert!(store.insert_template(&app, "zego", "t1", r#"{"Name":"one"}"#, UnixMillis(1)).await.unwrap());
        assert!(store.insert_template(&app, "zego", "t2", r#"{"Name":"two"}"#, UnixMillis(2)).await.unwrap());
        // An id is taken once per app and dialect.
        assert!(!store.insert_template(&app, "zego", "t1", "{}", UnixMillis(3)).await.unwrap());
        assert!(store.insert_template(&other, "zego", "t1", r#"{"Name":"other"}"#, UnixMillis(3)).await.unwrap());
        assert!(store.update_template(&app, "zego", "t2", r#"{"Name":"2"}"#, UnixMillis(4)).await.unwrap());
        assert!(!store.update_template(&app, "zego", "missing", "{}", UnixMillis(4)).await.unwrap());
        store.close().await;
    }
    let store = db.open().await;
    let t2 = store.template(&app, "zego", "t2").await.unwrap().unwrap();
    assert_eq!((t2.body.as_str(), t2.created_at, t2.updated_at), (r#"{"Name":"2"}"#, UnixMillis(2), UnixMillis(4)));
    assert_eq!(store.template(&app, "alibaba", "t2").await.unwrap(), None);
    let ids = |page: Vec<colloquy_store::Template>| page.into_iter().map(|t| t.id).collect::<Vec<_>>();
    assert_eq!(ids(store.list_templates(&app, "zego", None, 10).await.unwrap()), ["t1", "t2"]);
    assert_eq!(ids(store.list_templates(&app, "zego", Some("t1"), 10).await.unwrap()), ["t2"]);
    assert_eq!(ids(store.list_templates(&app, "zego", None, 1).await.unwrap()), ["t1"]);
    assert!(store.delete_template(&app, "zego", "t1").await.unwrap());
    assert!(!store.delete_template(&app, "zego", "t1").await.unwrap());
    assert_eq!(store.template(&other, "zego", "t1").await.unwrap().unwrap().body, r#"{"Name":"other"}"#);
}

async fn a_nonce_is_taken_once_per_scope_until_it_is_forgotten_and_survives_a_reopen(db: Db) {
    let store = db.open().await;
    let (t0, until) = (UnixMillis(1_000), UnixMillis(2_000));
    assert!(store.use_nonce("zego:1", "n1", t0, until).await.unwrap());
    assert!(!store.use_nonce("zego:1", "n1", UnixMillis(1_500), until).await.unwrap());
    assert!(store.use_nonce("zego:2", "n1", t0, until).await.unwrap(), "another credential's nonce");
    store.close().await;

    // Across a restart, the nonce is still used; once its time is past, it is forgotten.
    let store = db.open().await;
    assert!(!store.use_nonce("zego:1", "n1", UnixMillis(1_999), until).await.unwrap());
    assert!(store.use_nonce("zego:1", "n1", UnixMillis(2_000), UnixMillis(3_000)).await.unwrap());
}
