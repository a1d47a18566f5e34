//! `colloquy models list|verify` on a model directory of the test's own.

use std::process::Command;

fn models(dir: &std::path::Path, verb: &str) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_colloquy"))
        .args(["models", verb])
        .env("COLLOQUY_MODELS", dir)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn missing_and_corrupt_models_are_named_with_the_command_that_fixes_them() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, stdout, stderr) = models(dir.path(), "verify");
    assert!(!ok);
    assert!(stdout.contains("silero_vad.onnx") && stdout.contains("missing"), "{stdout}");
    assert!(stderr.contains("scripts/fetch-models"), "{stderr}");

    // A file with the right name and the wrong bytes is corrupt, not present.
    std::fs::write(dir.path().join("silero_vad.onnx"), b"not a model").unwrap();
    let (_, stdout, _) = models(dir.path(), "verify");
    assert!(stdout.lines().any(|l| l.contains("silero_vad.onnx") && l.contains("CORRUPT")), "{stdout}");
    let (_, stdout, _) = models(dir.path(), "list");
    assert!(stdout.lines().any(|l| l.contains("silero_vad.onnx") && l.contains("present")), "{stdout}");
}

#[test]
fn the_fetched_models_verify() {
    // scripts/test fetches the models into the default directory before the tests run.
    let dir = colloquy_providers::models::models_dir();
    let (ok, stdout, stderr) = models(&dir, "verify");
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains("ok (sha256 matches)"), "{stdout}");
}
