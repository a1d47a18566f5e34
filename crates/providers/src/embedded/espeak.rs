//! Phonemes from the `espeak-ng` command, kept running as one subprocess (never spawned per
//! sentence, and never linked: espeak-ng is GPL).
//!
//! espeak-ng reads all of a pipe before it speaks, but a terminal line by line, so it runs under
//! `script` (util-linux), which gives it a pseudo-terminal with echo off. After each text we send a
//! sentinel word whose phonemes we learnt at start-up; the lines before the sentinel's are the text's.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Mutex;

use crate::ProviderError;

const SENTINEL: &str = "colloquyend";

/// A running espeak-ng for one voice.
#[derive(Debug)]
pub struct Espeak {
    inner: Mutex<Process>,
}

#[derive(Debug)]
struct Process {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    /// The sentinel's phonemes, learnt at start-up.
    sentinel: String,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Espeak {
    /// Starts `espeak-ng -v <voice> --ipa`.
    pub fn start(voice: &str) -> Result<Espeak, String> {
        if !voice.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(format!("{voice:?} is not an espeak-ng voice name"));
        }
        let mut child = Command::new("script")
            .args(["-q", "-f", "-c", &format!("stty -echo; exec espeak-ng -q -v {voice} --ipa"), "/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run `script` for espeak-ng (util-linux): {e}"))?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        let mut process = Process { child, stdin, stdout, sentinel: String::new() };
        writeln!(process.stdin, "{SENTINEL}").map_err(|e| e.to_string())?;
        // A line written before `stty -echo` ran comes back as itself: skip it.
        for _ in 0..10 {
            let line = process.read_line().map_err(|e| format!("espeak-ng did not answer (is it installed?): {e}"))?;
            if !line.is_empty() && line != SENTINEL {
                process.sentinel = line;
                break;
            }
        }
        if process.sentinel.is_empty() {
            return Err("espeak-ng answered nothing but echoes".into());
        }
        Ok(Espeak { inner: Mutex::new(process) })
    }

    /// The IPA phonemes of `text`, one entry per clause espeak-ng found.
    pub fn phonemes(&self, text: &str) -> Result<Vec<String>, ProviderError> {
        let line: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
        let mut process =
            self.inner.lock().map_err(|_| ProviderError::Unavailable("espeak-ng lock poisoned".into()))?;
        let fail = |e: std::io::Error| ProviderError::Unavailable(format!("espeak-ng: {e}"));
        writeln!(process.stdin, "{line}").map_err(fail)?;
        writeln!(process.stdin, "{SENTINEL}").map_err(fail)?;
        process.stdin.flush().map_err(fail)?;
        let mut clauses = Vec::new();
        loop {
            let clause = process.read_line().map_err(fail)?;
            if clause == process.sentinel {
                return Ok(clauses);
            }
            if !clause.is_empty() {
                clauses.push(clause);
            }
        }
    }
}

impl Process {
    fn read_line(&mut self) -> std::io::Result<String> {
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "espeak-ng exited"));
        }
        Ok(line.trim().to_owned())
    }
}
