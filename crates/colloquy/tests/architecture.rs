//! ARCHITECTURE.md's dependency rules and invariants, checked against the code.

use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().parent().unwrap().to_path_buf()
}

/// The names in a crate's `[dependencies]` (not dev-dependencies).
fn dependencies(crate_dir: &str) -> Vec<String> {
    let manifest = std::fs::read_to_string(workspace().join("crates").join(crate_dir).join("Cargo.toml")).unwrap();
    let manifest: toml::Table = toml::from_str(&manifest).unwrap();
    manifest.get("dependencies").and_then(|d| d.as_table()).map(|d| d.keys().cloned().collect()).unwrap_or_default()
}

#[test]
fn crates_depend_only_on_what_architecture_md_allows() {
    let rules: &[(&str, &[&str], &[&str])] = &[
        ("model", &[], &["tokio", "sqlx", "axum"]),
        ("store", &["colloquy-model"], &["axum", "colloquy-supervisor", "colloquy-http"]),
        ("cluster", &["colloquy-model"], &["axum", "sqlx", "str0m", "colloquy-store", "colloquy-supervisor"]),
        (
            "supervisor",
            &["colloquy-model", "colloquy-store", "colloquy-cluster"],
            &["axum", "serde_json", "colloquy-http"],
        ),
        ("rtc", &[], &["axum", "reqwest", "sqlx", "serde_json", "tokio-tungstenite"]),
        ("providers", &["colloquy-model"], &["axum", "sqlx", "str0m", "opus"]),
        (
            "http",
            &["colloquy-model", "colloquy-store", "colloquy-supervisor", "colloquy-rtc", "colloquy-cluster"],
            &["colloquy-dialects"],
        ),
        (
            "dialects",
            &[
                "colloquy-http",
                "colloquy-model",
                "colloquy-store",
                "colloquy-supervisor",
                "colloquy-rtc",
                "colloquy-cluster",
            ],
            &["sqlx", "str0m", "reqwest", "colloquy-agent", "colloquy-providers"],
        ),
        ("conversation", &["colloquy-model"], &["tokio", "futures-util", "axum", "sqlx", "reqwest", "str0m"]),
        (
            "agent",
            &[
                "colloquy-model",
                "colloquy-conversation",
                "colloquy-providers",
                "colloquy-rtc",
                "colloquy-store",
                "colloquy-supervisor",
            ],
            &["axum", "sqlx", "str0m"],
        ),
    ];
    for (crate_dir, allowed_ours, forbidden) in rules {
        for dependency in dependencies(crate_dir) {
            if dependency.starts_with("colloquy") {
                assert!(allowed_ours.contains(&dependency.as_str()), "{crate_dir} must not depend on {dependency}");
            }
            assert!(!forbidden.contains(&dependency.as_str()), "{crate_dir} must not depend on {dependency}");
        }
    }
}

/// Every `.rs` file under `dir`.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

#[test]
fn the_model_reads_no_clock() {
    for path in sources(&workspace().join("crates/model/src")) {
        let text = std::fs::read_to_string(&path).unwrap();
        for clock in ["SystemTime::now", "Instant::now", "std::time::Instant", "tokio"] {
            assert!(!text.contains(clock), "{} mentions {clock}", path.display());
        }
    }
}

#[test]
fn the_conversation_core_reads_no_clock_and_touches_no_socket_or_thread() {
    let files = sources(&workspace().join("crates/conversation/src"));
    assert!(files.len() >= 5, "{files:?}");
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        // Unit tests may take a base time from the clock; the machine itself may not.
        let text = text.split("#[cfg(test)]").next().unwrap();
        for forbidden in ["SystemTime", "Instant::now", "std::thread", "std::net", "tokio", "async fn", "std::fs"] {
            assert!(!text.contains(forbidden), "{} mentions {forbidden}", path.display());
        }
    }
}

/// The HTTP edge and the dialects keep their state in values the server owns (its `AppState`, the
/// `VendorDialects` it was given), never in process globals: two servers in one process, as the
/// tests run them, must not share a ZEGO sequence or an Alibaba session start.
#[test]
fn the_http_edge_and_the_dialects_keep_no_process_global_state() {
    let mut files = sources(&workspace().join("crates/http/src"));
    files.extend(sources(&workspace().join("crates/dialects/src")));
    assert!(files.len() >= 30, "{files:?}");
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        for line in text.lines().map(str::trim_start) {
            assert!(!line.contains("static mut") && !line.contains("thread_local!"), "{}: {line}", path.display());
            if line.starts_with("static ") || line.starts_with("pub static ") || line.starts_with("pub(crate) static ")
            {
                for interior in ["Mutex", "RwLock", "Atomic", "Cell", "OnceLock<Mutex"] {
                    assert!(!line.contains(interior), "{} holds mutable global state: {line}", path.display());
                }
            }
        }
    }
}

/// "A channel has one owner": the channel-to-node map is written in `cluster/src/channels.rs`
/// alone, an entry only ever taken with `SET NX` and removed only by a compare-and-delete on the
/// node it names; Redis is reached only through the cluster crate; and the parts that run a call
/// (the conversation core, the agent runtime, the providers, the channel server) know nothing of
/// the cluster.
#[test]
fn a_channel_has_one_owner() {
    let channels = std::fs::read_to_string(workspace().join("crates/cluster/src/channels.rs")).unwrap();
    let sets: Vec<&str> = channels.lines().filter(|l| l.contains("redis.call('SET'")).collect();
    assert!(!sets.is_empty(), "the claim is a SET NX");
    for line in sets {
        assert!(line.contains("'NX'"), "a channel entry written without NX: {line}");
    }
    assert!(channels.contains("if redis.call('GET', KEYS[1]) == ARGV[1] then"), "release is compare-and-delete");
    for path in sources(&workspace().join("crates")) {
        let name = path.to_string_lossy().into_owned();
        if name.contains("/tests/") || name.ends_with("cluster/src/channels.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("channel:{}") && !text.contains("node_channels:"), "{name} writes the channel map");
        if !name.contains("crates/cluster/") {
            assert!(!text.contains("redis::"), "{name} reaches Redis outside the cluster crate");
        }
    }
    for crate_dir in ["conversation", "agent", "providers", "rtc", "model", "store"] {
        assert!(!dependencies(crate_dir).iter().any(|d| d == "colloquy-cluster"), "{crate_dir} knows the cluster");
    }
}
