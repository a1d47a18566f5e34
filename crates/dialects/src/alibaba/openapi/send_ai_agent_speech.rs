//! `SendAIAgentSpeech`: have the instance `InstanceId` say `Text` (at most
//! [`MAX_SPEECH_CHARS`] characters; `Type` must be `Text`, this server cannot play an `AudioUrl`),
//! cutting off what it says unless `EnableInterrupt` is false; answers `{}`.

use colloquy_model::{AgentCommand, SpeakPriority};
use serde_json::{Value, json};

use super::{MAX_SPEECH_CHARS, Params, text_up_to};
use crate::alibaba::errors::Failure;
use crate::alibaba::instance;
use colloquy_http::AppState;
use colloquy_http::apps::App;

pub(super) async fn handle(state: &AppState, app: &App, params: &Params) -> Result<Value, Failure> {
    let id = params.required("InstanceId")?;
    let text = text_up_to("Text", params.required("Text")?, MAX_SPEECH_CHARS)?;
    match params.get("Type").unwrap_or("Text") {
        "Text" | "" => {}
        "AudioUrl" => {
            return Err(Failure::invalid(
                "Type AudioUrl is not supported: this server cannot fetch and play audio files; send Type Text",
            ));
        }
        other => return Err(Failure::invalid(format!("Type is {other:?}; it must be Text or AudioUrl"))),
    }
    let interrupt = params.bool("EnableInterrupt", true)?;
    let priority = if interrupt { SpeakPriority::Interrupt } else { SpeakPriority::Append };
    let record = instance(state, app, id).await?;
    let command = AgentCommand::Speak { text, priority, interruptible: true };
    state.supervisor().command(&app.id, &record.id, command).await?;
    Ok(json!({}))
}
