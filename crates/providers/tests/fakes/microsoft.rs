//! A fake Azure AI Speech TTS REST endpoint (`POST /cognitiveservices/v1`); recognition is
//! `microsoft_stt.rs`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;

pub const KEY: &str = "azure-test-key";

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    Normal,
    /// 401 with an empty body, as Azure answers a bad key.
    WrongKey,
    /// 429 with `Retry-After: 1`.
    Throttled,
    /// Half the audio, then the connection breaks.
    CutMidStream,
    /// A 502 from a gateway, with an HTML page.
    BadGateway,
    /// The answer's headers only after this long.
    SlowFirstByte(std::time::Duration),
}

/// What the fake was sent: each request's SSML and output format.
#[derive(Clone, Debug, Default)]
pub struct Received {
    pub ssml: Vec<String>,
    pub formats: Vec<String>,
}

struct Fake {
    mode: Mode,
    synthesize: super::elevenlabs::Synthesizer,
    received: Arc<Mutex<Received>>,
}

pub struct Server {
    pub addr: SocketAddr,
    pub received: Arc<Mutex<Received>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn start(mode: Mode, synthesize: super::elevenlabs::Synthesizer) -> Server {
    let received = Arc::new(Mutex::new(Received::default()));
    let state = Arc::new(Fake { mode, synthesize, received: Arc::clone(&received) });
    let app = axum::Router::new().route("/cognitiveservices/v1", axum::routing::post(speak)).with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        // Without Nagle's delay, as `listen` (mod.rs) explains.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let _ = axum::serve(listener, app).await;
    });
    Server { addr, received, task }
}

async fn speak(State(fake): State<Arc<Fake>>, headers: HeaderMap, ssml: String) -> Response {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    if fake.mode == Mode::WrongKey || header("ocp-apim-subscription-key") != KEY {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    if fake.mode == Mode::Throttled {
        return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")], "Too many requests").into_response();
    }
    if let Mode::SlowFirstByte(delay) = fake.mode {
        tokio::time::sleep(delay).await;
    }
    if fake.mode == Mode::BadGateway {
        return (StatusCode::BAD_GATEWAY, "<html><body>502 Bad Gateway</body></html>").into_response();
    }
    if header("content-type") != "application/ssml+xml" || !ssml.starts_with("<speak") || !ssml.contains("<voice name=")
    {
        return (StatusCode::BAD_REQUEST, "The SSML is not valid").into_response();
    }
    let format = header("x-microsoft-outputformat");
    let Some(rate) = format
        .strip_prefix("raw-")
        .and_then(|f| f.strip_suffix("khz-16bit-mono-pcm"))
        .and_then(|k| k.parse::<u32>().ok())
    else {
        return (StatusCode::BAD_REQUEST, "unsupported output format").into_response();
    };
    let text = unescape(&inner_text(&ssml));
    {
        let mut received = fake.received.lock().unwrap();
        received.ssml.push(ssml.clone());
        received.formats.push(format);
    }
    let bytes: Vec<u8> = (fake.synthesize)(&text, rate * 1000).iter().flat_map(|s| s.to_le_bytes()).collect();
    let chunks: Vec<Vec<u8>> = bytes.chunks(3_333).map(<[u8]>::to_vec).collect();
    let cut = fake.mode == Mode::CutMidStream;
    let half = chunks.len() / 2;
    // Chunk after chunk, a few milliseconds apart, as a synthesiser streams; the first at once, so
    // that `bench vendors` times the client and not this pause.
    let stream = futures_util::stream::iter(chunks.into_iter().enumerate()).then(move |(i, chunk)| async move {
        if i > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(3)).await;
        }
        if cut && i == half.max(1) { Err(std::io::Error::other("cut")) } else { Ok(chunk) }
    });
    Response::builder().header("content-type", "audio/x-wav").body(Body::from_stream(stream)).unwrap()
}

/// The text of an SSML document: everything outside tags.
fn inner_text(ssml: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in ssml.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

fn unescape(text: &str) -> String {
    text.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&apos;", "'").replace("&amp;", "&")
}
