//! `GET /openapi.json`, generated from the handlers and wire types by utoipa.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::native;

#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "colloquy",
        description = "A self-hosted, real-time conversational AI engine. The native API starts AI agents in \
                       voice channels and steers them. Errors share one envelope: \
                       `{\"error\": {\"code\", \"message\", \"field\"}}`."
    ),
    paths(
        native::start_agent,
        native::list_agents,
        native::get_agent,
        native::leave_agent,
        native::update_agent,
        native::speak,
        native::interrupt,
        native::think,
        native::history,
        native::turns,
        crate::rtc::issue_token,
        crate::rtc::channel,
        crate::rtc::whip_join,
        crate::rtc::whip_renew,
        crate::rtc::whip_leave,
        crate::nodes::list_nodes,
        crate::healthz,
    ),
    modifiers(&BasicAuth),
    tags(
        (name = "agents", description = "Start, list, inspect, update and stop agents"),
        (name = "conversation", description = "Steer a live conversation and read what it left behind"),
        (name = "rtc", description = "RTC tokens and WHIP signaling into the channel server"),
        (name = "server", description = "Health, and the nodes serving the API"),
    )
)]
pub struct ApiDoc;

struct BasicAuth;

impl Modify for BasicAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some("Your API key and secret (COLLOQUY_API_KEY / COLLOQUY_API_SECRET)"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An RTC token from POST /v1/tokens"))
                    .build(),
            ),
        );
    }
}

/// The OpenAPI document.
pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
