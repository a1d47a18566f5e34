//! An agent configured ahead of its calls: what a vendor keeps in its console under an agent id
//! (Alibaba's `AIAgentId`, ZEGO's `AgentId`) and what the API calls then leave out: the LLM, the
//! voice, the recogniser, the greeting, the prompt, the turn-taking.
//!
//! A dialect that names an agent by id builds its spec in three layers: the model's defaults and
//! the dialect's own ([`AgentSpec::with_defaults`] and what the dialect changes), then the profile
//! ([`AgentProfile::apply_to`]), then what the request itself sent.

use serde::{Deserialize, Serialize};

use crate::{AgentSpec, Asr, Greeting, IdleTimeout, Interruption, Llm, SilencePrompt, Tts, TurnDetection};

/// The settings a configured agent fixes; `None` leaves the dialect's default.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentProfile {
    pub llm: Option<Llm>,
    pub asr: Option<Asr>,
    pub tts: Option<Tts>,
    pub turn_detection: Option<TurnDetection>,
    pub interruption: Option<Interruption>,
    pub greeting: Option<Greeting>,
    pub failure_message: Option<String>,
    pub max_history: Option<u32>,
    pub silence_prompt: Option<SilencePrompt>,
    pub idle_timeout: Option<IdleTimeout>,
}

impl AgentProfile {
    /// Sets on `spec` every setting this profile fixes.
    pub fn apply_to(&self, spec: &mut AgentSpec) {
        let AgentProfile {
            llm,
            asr,
            tts,
            turn_detection,
            interruption,
            greeting,
            failure_message,
            max_history,
            silence_prompt,
            idle_timeout,
        } = self;
        set(&mut spec.llm, llm);
        set(&mut spec.asr, asr);
        set(&mut spec.tts, tts);
        set(&mut spec.turn_detection, turn_detection);
        set(&mut spec.interruption, interruption);
        set(&mut spec.max_history, max_history);
        set(&mut spec.idle_timeout, idle_timeout);
        if greeting.is_some() {
            spec.greeting.clone_from(greeting);
        }
        if failure_message.is_some() {
            spec.failure_message.clone_from(failure_message);
        }
        if silence_prompt.is_some() {
            spec.silence_prompt.clone_from(silence_prompt);
        }
    }
}

fn set<T: Clone>(field: &mut T, value: &Option<T>) {
    if let Some(value) = value {
        field.clone_from(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AgentName, ChannelName};

    fn spec() -> AgentSpec {
        AgentSpec::with_defaults(AgentName::new("a").unwrap(), ChannelName::new("c").unwrap())
    }

    #[test]
    fn an_empty_profile_changes_nothing_and_a_set_field_replaces_the_default() {
        let mut changed = spec();
        AgentProfile::default().apply_to(&mut changed);
        assert_eq!(changed, spec());

        let profile = AgentProfile {
            greeting: Some(Greeting { text: "Hi".into(), interruptible: false }),
            max_history: Some(4),
            idle_timeout: Some(IdleTimeout::Never),
            ..AgentProfile::default()
        };
        profile.apply_to(&mut changed);
        assert_eq!(changed.greeting, profile.greeting);
        assert_eq!((changed.max_history, changed.idle_timeout), (4, IdleTimeout::Never));
        assert_eq!(changed.llm, spec().llm);
    }
}
