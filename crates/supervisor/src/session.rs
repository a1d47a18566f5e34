//! One agent's session: its life from STARTING to STOPPED or FAILED, as a task of its own.
//!
//! With a [`MediaRuntime`](crate::MediaRuntime), the session first starts the agent's media (it joins
//! its channel and its conversation begins), then runs, handing commands and updates to the media,
//! until asked to leave, the node shuts down, or the media ends by itself (its idle timeout, a
//! failure, a panic). Without one, the session is the lifecycle alone, and its idle timer runs from
//! the start, as no participant can join.

use std::any::Any;
use std::time::Duration;

use colloquy_model::{
    AgentCommand, AgentEvent, AgentEventKind, AgentRecord, AgentState, AgentStatus, ExitReason, IdleTimeout,
    SpecUpdate, UnixMillis,
};
use colloquy_store::{Outbox, StoreError};
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::{MediaCommand, MediaSession, Supervisor, SupervisorError, now};

/// What the API asks of a live session.
#[derive(Debug)]
pub(crate) enum Command {
    /// Leave the channel; answer with the final record, or why it could not be recorded.
    Leave { done: oneshot::Sender<Result<AgentRecord, SupervisorError>> },
    /// Change the configuration; answer with the new snapshot.
    Update { update: SpecUpdate, done: oneshot::Sender<Result<AgentRecord, SupervisorError>> },
    /// Hand a command to the conversation.
    Agent { command: AgentCommand, done: oneshot::Sender<Result<(), SupervisorError>> },
    /// Panics inside the session, to prove a panic stays inside its session.
    #[cfg(test)]
    Panic,
}

/// Everything a session owns.
#[derive(Debug)]
pub(crate) struct SessionContext {
    pub supervisor: Supervisor,
    pub record: AgentRecord,
    pub commands: mpsc::Receiver<Command>,
    pub shutdown: watch::Receiver<bool>,
    /// Answered once the agent is RUNNING, or with why it could not start.
    pub started: oneshot::Sender<Result<AgentRecord, SupervisorError>>,
    /// The agent's admission; given back when the session is over.
    pub permit: OwnedSemaphorePermit,
    /// Dropped when the session is over; shutdown waits for every one of these.
    pub sessions_running: mpsc::Sender<()>,
}

/// Everything that can wake a session up.
enum SessionEvent {
    Command(Option<Command>),
    IdleTimeout,
    /// The media ended by itself, with its reason (none: its task panicked).
    MediaEnded(Option<ExitReason>),
    Shutdown,
}

/// How a session's life ended.
struct LifeEnded {
    reason: ExitReason,
    record: AgentRecord,
    commands: mpsc::Receiver<Command>,
    leave_waiters: Vec<LeaveWaiter>,
}

type LeaveWaiter = oneshot::Sender<Result<AgentRecord, SupervisorError>>;

pub(crate) fn spawn(context: SessionContext) {
    let SessionContext { supervisor, record, commands, shutdown, started, permit, sessions_running } = context;
    let id = record.id.clone();
    tokio::spawn(async move {
        // The life runs in a task of its own so that a panic in it ends here, as FAILED, and goes
        // no further: every other session and the node carry on.
        let life = tokio::spawn(live(supervisor.clone(), record.clone(), commands, shutdown, started));
        let ended = match life.await {
            Ok(ended) => ended,
            Err(e) => {
                let detail = if e.is_panic() { panic_message(e.into_panic()) } else { "cancelled".to_owned() };
                tracing::error!(agent_id = %id, detail, "agent session panicked");
                let (_, no_more_commands) = mpsc::channel(1);
                let record = supervisor.live_record(&record.app, &id).unwrap_or(record);
                LifeEnded {
                    reason: ExitReason::Panicked(detail),
                    record,
                    commands: no_more_commands,
                    leave_waiters: Vec::new(),
                }
            }
        };
        finish(&supervisor, ended).await;
        drop(permit);
        drop(sessions_running);
    });
}

async fn live(
    supervisor: Supervisor,
    mut record: AgentRecord,
    mut commands: mpsc::Receiver<Command>,
    mut shutdown: watch::Receiver<bool>,
    started: oneshot::Sender<Result<AgentRecord, SupervisorError>>,
) -> LifeEnded {
    let mut media = match supervisor.inner.media.clone() {
        Some(runtime) => match runtime
            .start(record.clone(), supervisor.turn_stats().clone(), supervisor.conversation_events(&record))
            .await
        {
            Ok(media) => Some(media),
            Err(detail) => {
                tracing::warn!(agent_id = %record.id, detail, "agent could not start");
                let _ = started.send(Err(SupervisorError::StartFailed(detail.clone())));
                return LifeEnded { reason: ExitReason::Error(detail), record, commands, leave_waiters: Vec::new() };
            }
        },
        None => None,
    };
    // RUNNING, its `started` webhook and a fresh crash ending, in one write; only then the answer.
    if let Err(e) =
        transition(&supervisor, &mut record, AgentState::Running, now(), Some(AgentEventKind::Started), true).await
    {
        let detail = format!("its start could not be recorded: {e}");
        let _ = started.send(Err(SupervisorError::Store(e)));
        if let Some(media) = media {
            stop_media(&record, media).await;
        }
        return LifeEnded { reason: ExitReason::Error(detail), record, commands, leave_waiters: Vec::new() };
    }
    tracing::info!(agent_id = %record.id, "agent running");
    // The caller may have gone away (a dropped HTTP request); the agent runs all the same.
    let _ = started.send(Ok(record.clone()));

    // With media, the conversation keeps the idle timeout (it sees who comes and goes).
    let idle_deadline = match record.spec.idle_timeout {
        _ if media.is_some() => None,
        IdleTimeout::Never => None,
        IdleTimeout::AfterSecs(secs) => Some(Instant::now() + Duration::from_secs(u64::from(secs))),
    };
    let idle = async {
        match idle_deadline {
            Some(deadline) => tokio::time::sleep_until(deadline).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(idle);

    let (reason, leave_waiters) = loop {
        let media_ended = async {
            match media.as_mut() {
                Some(media) => (&mut media.ended).await.ok(),
                None => std::future::pending().await,
            }
        };
        let event = tokio::select! {
            command = commands.recv() => SessionEvent::Command(command),
            () = &mut idle => SessionEvent::IdleTimeout,
            reason = media_ended => SessionEvent::MediaEnded(reason),
            _ = shutdown.wait_for(|shutting_down| *shutting_down) => SessionEvent::Shutdown,
        };
        match event {
            SessionEvent::Command(Some(Command::Leave { done })) => {
                // STOPPING is written before the agent does anything: when it cannot be, the
                // answer says so and the agent runs on.
                let stopping = AgentState::Stopping(ExitReason::Left);
                match transition(&supervisor, &mut record, stopping, now(), None, false).await {
                    Ok(()) => break (ExitReason::Left, vec![done]),
                    Err(e) => {
                        let _ = done.send(Err(SupervisorError::Store(e)));
                    }
                }
            }
            SessionEvent::Command(Some(Command::Agent { command, done })) => {
                let result = match &media {
                    Some(media) => media
                        .commands
                        .send(MediaCommand::Agent(command))
                        .await
                        .map_err(|_| SupervisorError::NotRunning(AgentStatus::Stopping)),
                    None => Err(SupervisorError::NoMediaSession),
                };
                let _ = done.send(result);
            }
            SessionEvent::Command(Some(Command::Update { update, done })) => {
                // Recorded first; an update that cannot be recorded is not made.
                let mut spec = record.spec.clone();
                update.apply_to(&mut spec);
                if let Err(e) = supervisor.store().set_spec(&record.id, &spec).await {
                    let _ = done.send(Err(SupervisorError::Store(e)));
                    continue;
                }
                if let Some(media) = &media {
                    let _ = media.commands.send(MediaCommand::Update(update)).await;
                }
                record.spec = spec;
                supervisor.publish(&record);
                let _ = done.send(Ok(record.clone()));
            }
            #[cfg(test)]
            SessionEvent::Command(Some(Command::Panic)) => panic!("a test asked this session to panic"),
            // The supervisor is gone; nobody can reach this agent any more.
            SessionEvent::Command(None) | SessionEvent::Shutdown => break (ExitReason::NodeShutdown, Vec::new()),
            SessionEvent::IdleTimeout => break (ExitReason::IdleTimeout, Vec::new()),
            SessionEvent::MediaEnded(reason) => {
                let reason = reason.unwrap_or_else(|| ExitReason::Panicked("the media session panicked".into()));
                media = None;
                break (reason, Vec::new());
            }
        }
    };
    if let Some(media) = media {
        stop_media(&record, media).await;
    }
    LifeEnded { reason, record, commands, leave_waiters }
}

/// How long a media session gets to leave its channel before the agent is recorded as stopped anyway.
const MEDIA_STOP_TIMEOUT: Duration = Duration::from_secs(3);

/// Asks the media to leave its channel and waits (briefly) until it has.
async fn stop_media(record: &AgentRecord, media: MediaSession) {
    let MediaSession { commands, ended } = media;
    let _ = commands.send(MediaCommand::Stop).await;
    if tokio::time::timeout(MEDIA_STOP_TIMEOUT, ended).await.is_err() {
        tracing::warn!(agent_id = %record.id, "media session did not stop in time");
    }
}

/// Writes STOPPING (unless written already) then STOPPED (or FAILED) with the ending's webhooks,
/// retires the agent from the registry, and answers whoever asked it to leave, including requests
/// that arrived while it was ending. A final state that cannot be written is retried until it can
/// be; at shutdown, for [`FINAL_WRITE_GRACE`] only, after which the report names the agent.
async fn finish(supervisor: &Supervisor, ended: LifeEnded) {
    let LifeEnded { reason, mut record, mut commands, mut leave_waiters } = ended;
    tracing::info!(agent_id = %record.id, reason = reason.code(), "agent stopping");
    if !matches!(record.state, AgentState::Stopping(_)) {
        let stopping = AgentState::Stopping(reason.clone());
        if let Err(e) = transition(supervisor, &mut record, stopping, now(), None, false).await {
            tracing::warn!(agent_id = %record.id, error = %e, "STOPPING not recorded; going on to the final state");
        }
    }
    // The conversation events it sent before go to the outbox before its ending does.
    supervisor.events_caught_up(EVENTS_CATCH_UP).await;
    let final_state = AgentState::exited(reason);
    let kind = match final_state.status() {
        AgentStatus::Failed => AgentEventKind::Failed,
        _ => AgentEventKind::Stopped,
    };
    let mut shutdown = supervisor.inner.shutdown.subscribe();
    let mut delay = Duration::from_millis(50);
    let mut give_up_at = None;
    let recorded = loop {
        match transition(supervisor, &mut record, final_state.clone(), now(), Some(kind.clone()), false).await {
            Ok(()) => break true,
            Err(e) => {
                // Whoever waits hears the truth now, not when the disk has room again.
                for waiter in leave_waiters.drain(..) {
                    let _ = waiter.send(Err(SupervisorError::NotRecorded(format!(
                        "the agent left its channel, but its final state could not be recorded yet: {e}"
                    ))));
                }
                if *shutdown.borrow() {
                    let deadline = *give_up_at.get_or_insert_with(|| Instant::now() + FINAL_WRITE_GRACE);
                    if Instant::now() >= deadline {
                        tracing::error!(agent_id = %record.id, error = %e, "final state not recorded; giving up");
                        supervisor.unrecorded(&record.id, e.to_string());
                        break false;
                    }
                }
                tracing::warn!(agent_id = %record.id, error = %e, "final state not recorded; retrying");
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    _ = shutdown.wait_for(|s| *s), if !*shutdown.borrow() => {}
                }
                delay = (delay * 2).min(Duration::from_secs(1));
            }
        }
    };
    supervisor.retire(&record);
    if recorded {
        tracing::info!(agent_id = %record.id, status = %record.state.status(), "agent over");
    }

    commands.close();
    while let Ok(command) = commands.try_recv() {
        match command {
            Command::Leave { done } => leave_waiters.push(done),
            Command::Update { done, .. } => {
                let _ = done.send(Err(SupervisorError::NotRunning(record.state.status())));
            }
            Command::Agent { done, .. } => {
                let _ = done.send(Err(SupervisorError::NotRunning(record.state.status())));
            }
            #[cfg(test)]
            Command::Panic => {}
        }
    }
    for waiter in leave_waiters {
        let _ = waiter.send(if recorded {
            Ok(record.clone())
        } else {
            Err(SupervisorError::NotRecorded(
                "the agent left its channel, but its final state could not be recorded".into(),
            ))
        });
    }
}

/// How long an ending waits for its agent's earlier events to reach the outbox.
const EVENTS_CATCH_UP: Duration = Duration::from_secs(2);

/// At shutdown, how long a session keeps retrying a final state that cannot be written.
pub(crate) const FINAL_WRITE_GRACE: Duration = Duration::from_secs(3);

/// Moves the agent to `state`: writes it down (with the webhooks of `event`, and a fresh crash
/// ending when `reserve_crash_ending`), and only then publishes the snapshot and the event. When
/// the write fails nothing changes: the snapshot stays the last state the records hold.
async fn transition(
    supervisor: &Supervisor,
    record: &mut AgentRecord,
    state: AgentState,
    at: UnixMillis,
    event: Option<AgentEventKind>,
    reserve_crash_ending: bool,
) -> Result<(), StoreError> {
    let mut next = record.clone();
    if state.status().is_terminal() {
        next.stopped_at = Some(at);
    }
    next.state = state;
    let deliver = match &event {
        Some(kind) => supervisor.format_webhooks(&AgentEvent { kind: kind.clone(), agent: next.clone(), at }).await,
        None => Vec::new(),
    };
    let crash_ending = match reserve_crash_ending {
        true => Some(supervisor.crash_ending(&next, at).await),
        false => None,
    };
    let outbox = Outbox { deliver: &deliver, crash_ending: crash_ending.as_deref() };
    if let Err(e) = supervisor.store().set_state_with(&next.id, &next.state, at, outbox).await {
        tracing::error!(agent_id = %record.id, state = %next.state.status(), error = %e, "could not record a state change");
        return Err(e);
    }
    *record = next;
    supervisor.publish(record);
    if let Some(kind) = event {
        supervisor.emit(AgentEvent { kind, agent: record.clone(), at });
    }
    Ok(())
}

/// The message a panic carried, for records and logs.
pub fn panic_message(payload: Box<dyn Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(message) => *message,
        Err(payload) => match payload.downcast::<&'static str>() {
            Ok(message) => (*message).to_owned(),
            Err(_) => "a panic without a message".to_owned(),
        },
    }
}
