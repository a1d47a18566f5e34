//! A fake Tencent Cloud real-time ASR (`/asr/v2/<appid>`), checking the URL's signature.

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use super::{Fake, Handshake, listen};

pub const APPID: &str = "1259228442";
pub const SECRET_ID: &str = "AKIDtest";
pub const SECRET_KEY: &str = "tencent-secret-key";

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    Normal,
    /// The stream's handshake answer is code 4006: too many streams at once.
    Busy,
    /// A result that is not Tencent's JSON, after half a second of audio.
    Garbage,
    /// The handshake's answer only after this long.
    SlowStart(std::time::Duration),
    /// The connection drops after half a second of audio, without a final result.
    CutMidStream,
}

pub async fn start(mode: Mode, transcribe: super::deepgram::Transcriber) -> Fake {
    listen(|_: &Handshake| Ok(()), move |socket, shake| serve(socket, shake, mode, Arc::clone(&transcribe))).await
}

fn answer(code: i64, message: &str, voice_id: &str, result: Option<serde_json::Value>, last: bool) -> Message {
    let mut answer = json!({"code": code, "message": message, "voice_id": voice_id, "message_id": format!("{voice_id}_1"),
                            "final": i64::from(last)});
    if let Some(result) = result {
        answer["result"] = result;
    }
    Message::text(answer.to_string())
}

async fn serve(
    mut socket: tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
    shake: Handshake,
    mode: Mode,
    transcribe: super::deepgram::Transcriber,
) {
    let voice_id = shake.query("voice_id").unwrap_or_default().to_owned();
    // The signature: HMAC-SHA1 over host, path and the other parameters sorted by name.
    let mut params: Vec<(String, String)> = shake.query.iter().filter(|(k, _)| k != "signature").cloned().collect();
    params.sort();
    let plain: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let original = format!("{}{}?{}", shake.header("host").unwrap_or_default(), shake.path, plain.join("&"));
    let expected = colloquy_providers::vendors::tencent::sign(SECRET_KEY, &original);
    let signed = shake.query("signature") == Some(expected.as_str())
        && shake.path == format!("/asr/v2/{APPID}")
        && shake.query("secretid") == Some(SECRET_ID);
    if !signed {
        let _ = socket.send(answer(4002, "authentication failed: signature", &voice_id, None, false)).await;
        return;
    }
    if mode == Mode::Busy {
        let _ = socket.send(answer(4006, "concurrency limit exceeded", &voice_id, None, false)).await;
        return;
    }
    if let Mode::SlowStart(delay) = mode {
        tokio::time::sleep(delay).await;
    }
    let _ = socket.send(answer(0, "success", &voice_id, None, false)).await;
    let (mut samples, mut last) = (Vec::<i16>::new(), 0);
    while let Some(Ok(message)) = socket.next().await {
        match message {
            Message::Binary(bytes) => {
                samples.extend(bytes.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])));
                if samples.len() - last >= 8_000 {
                    if mode == Mode::Garbage {
                        let _ = socket.send(Message::text("<html>gateway</html>")).await;
                        return;
                    }
                    if mode == Mode::CutMidStream {
                        return; // dropped, no close frame
                    }
                    last = samples.len();
                    let result = json!({"slice_type": 1, "index": 0, "start_time": 0, "end_time": samples.len() / 16,
                                        "voice_text_str": transcribe(&samples, false), "word_size": 0, "word_list": []});
                    let _ = socket.send(answer(0, "success", &voice_id, Some(result), false)).await;
                }
            }
            Message::Text(text) => {
                let message: serde_json::Value = serde_json::from_str(text.as_str()).unwrap_or_default();
                if message["type"] == "end" {
                    let result = json!({"slice_type": 2, "index": 0, "start_time": 0, "end_time": samples.len() / 16,
                                        "voice_text_str": transcribe(&samples, true), "word_size": 0, "word_list": []});
                    let _ = socket.send(answer(0, "success", &voice_id, Some(result), false)).await;
                    let _ = socket.send(answer(0, "success", &voice_id, None, true)).await;
                    return;
                }
            }
            _ => {}
        }
    }
}
