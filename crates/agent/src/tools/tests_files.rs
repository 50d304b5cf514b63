//! File tools against real files: happy paths and every confinement refusal.

use super::*;
use serde_json::json;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use tempfile::TempDir;

struct Ws {
    tmp: TempDir,
    ctx: ToolContext,
}

impl Ws {
    fn ws(&self) -> &Path {
        &self.ctx.workspace
    }
    /// A directory beside the workspace (same filesystem, outside the jail).
    fn outside(&self) -> std::path::PathBuf {
        self.tmp.path().join("outside")
    }
}

/// tmp/ws is the workspace, tmp/state the state dir, tmp/outside holds a secret.
fn setup() -> Ws {
    let tmp = tempfile::tempdir().expect("tempdir");
    let ws = tmp.path().join("ws");
    fs::create_dir(&ws).expect("ws");
    fs::create_dir(tmp.path().join("outside")).expect("outside");
    fs::write(tmp.path().join("outside/secret.txt"), "TOP SECRET").expect("secret");
    let ctx = ToolContext {
        workspace: ws,
        state_dir: tmp.path().join("state"),
        config_file: None,
        max_output_bytes: 64 * 1024,
    };
    Ws { tmp, ctx }
}

async fn call(tool: &dyn Tool, ctx: &ToolContext, args: Value) -> ToolOutput {
    tool.run(args, ctx).await
}

fn assert_refused(out: &ToolOutput, host_path: &Path) {
    assert!(out.is_error, "expected an error, got {out:?}");
    assert!(
        out.content.starts_with("refused:"),
        "not a refusal: {}",
        out.content
    );
    let host = host_path.to_string_lossy();
    assert!(
        !out.content.contains(host.as_ref()),
        "leaks a host path: {}",
        out.content
    );
    assert!(!out.content.contains("TOP SECRET"));
}

#[tokio::test]
async fn read_whole_file_and_line_range() {
    let w = setup();
    fs::write(w.ws().join("notes.txt"), "one\ntwo\nthree\nfour\n").unwrap();
    let out = call(&Read, &w.ctx, json!({"path": "notes.txt"})).await;
    assert_eq!(out, ToolOutput::ok("one\ntwo\nthree\nfour\n"));
    let out = call(
        &Read,
        &w.ctx,
        json!({"path": "./notes.txt", "offset": 2, "limit": 2}),
    )
    .await;
    assert_eq!(out, ToolOutput::ok("two\nthree\n"));
    let out = call(&Read, &w.ctx, json!({"path": "notes.txt", "offset": 4})).await;
    assert_eq!(out, ToolOutput::ok("four\n"));
    let out = call(&Read, &w.ctx, json!({"path": "notes.txt", "offset": 9})).await;
    assert!(out.is_error);
    assert_eq!(
        out.content,
        "offset 9 is past the end of `notes.txt` (4 lines)"
    );
    // Invalid UTF-8 is read lossily.
    fs::write(w.ws().join("bin"), b"a\xffb").unwrap();
    assert_eq!(
        call(&Read, &w.ctx, json!({"path": "bin"})).await,
        ToolOutput::ok("a\u{fffd}b")
    );
    let out = call(&Read, &w.ctx, json!({"path": "missing.txt"})).await;
    assert_eq!(out, ToolOutput::error("`missing.txt` does not exist"));
}

#[tokio::test]
async fn write_creates_parents_and_overwrites() {
    let w = setup();
    let out = call(
        &Write,
        &w.ctx,
        json!({"path": "a/b/c.txt", "content": "héllo"}),
    )
    .await;
    assert_eq!(out, ToolOutput::ok("wrote 6 bytes to `a/b/c.txt`"));
    assert_eq!(
        fs::read_to_string(w.ws().join("a/b/c.txt")).unwrap(),
        "héllo"
    );
    let out = call(&Write, &w.ctx, json!({"path": "a/b/c.txt", "content": "x"})).await;
    assert!(!out.is_error);
    assert_eq!(fs::read_to_string(w.ws().join("a/b/c.txt")).unwrap(), "x");
    let out = call(&Write, &w.ctx, json!({"path": "a", "content": "x"})).await;
    assert_eq!(out, ToolOutput::error("`a` is a directory"));
    // A FIFO is refused rather than opened (which would block).
    let fifo = std::ffi::CString::new(w.ws().join("pipe").to_string_lossy().as_bytes()).unwrap();
    // SAFETY: `fifo` is a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    for (tool, args) in [
        (&Read as &dyn Tool, json!({"path": "pipe"})),
        (&Write, json!({"path": "pipe", "content": "x"})),
    ] {
        let out = call(tool, &w.ctx, args).await;
        assert_eq!(
            out,
            ToolOutput::error("refused: `pipe` is not a regular file")
        );
    }
}

#[tokio::test]
async fn edit_replaces_exactly_one_occurrence() {
    let w = setup();
    let file = w.ws().join("f.rs");
    fs::write(&file, "let x = 1;\nlet y = 2;\n").unwrap();
    let args = json!({"path": "f.rs", "oldText": "y = 2", "newText": "y = 3"});
    let out = call(&Edit, &w.ctx, args).await;
    assert_eq!(out, ToolOutput::ok("edited `f.rs`: replaced 1 occurrence"));
    assert_eq!(
        fs::read_to_string(&file).unwrap(),
        "let x = 1;\nlet y = 3;\n"
    );

    let out = call(
        &Edit,
        &w.ctx,
        json!({"path": "f.rs", "oldText": "z", "newText": "q"}),
    )
    .await;
    assert_eq!(out, ToolOutput::error("oldText was not found in `f.rs`"));
    let out = call(
        &Edit,
        &w.ctx,
        json!({"path": "f.rs", "oldText": "let", "newText": "const"}),
    )
    .await;
    assert!(out.is_error);
    assert!(
        out.content.starts_with("oldText occurs 2 times in `f.rs`"),
        "{}",
        out.content
    );
    // Overlapping matches are ambiguous too.
    fs::write(&file, "aaa").unwrap();
    let out = call(
        &Edit,
        &w.ctx,
        json!({"path": "f.rs", "oldText": "aa", "newText": "b"}),
    )
    .await;
    assert!(out.is_error, "{out:?}");
    assert_eq!(fs::read_to_string(&file).unwrap(), "aaa");
    let out = call(
        &Edit,
        &w.ctx,
        json!({"path": "f.rs", "oldText": "", "newText": "b"}),
    )
    .await;
    assert_eq!(
        out,
        ToolOutput::error("invalid arguments: oldText must not be empty")
    );
}

#[tokio::test]
async fn ls_lists_sorted_with_dir_slashes() {
    let w = setup();
    fs::create_dir(w.ws().join("src")).unwrap();
    fs::write(w.ws().join("b.txt"), "").unwrap();
    fs::write(w.ws().join("a.txt"), "").unwrap();
    fs::write(w.ws().join("src/main.rs"), "").unwrap();
    assert_eq!(
        call(&Ls, &w.ctx, json!({})).await,
        ToolOutput::ok("a.txt\nb.txt\nsrc/")
    );
    assert_eq!(
        call(&Ls, &w.ctx, json!({"path": "."})).await,
        ToolOutput::ok("a.txt\nb.txt\nsrc/")
    );
    assert_eq!(
        call(&Ls, &w.ctx, json!({"path": "src"})).await,
        ToolOutput::ok("main.rs")
    );
    fs::create_dir(w.ws().join("empty")).unwrap();
    assert_eq!(
        call(&Ls, &w.ctx, json!({"path": "empty"})).await,
        ToolOutput::ok("(empty directory)")
    );
    let out = call(&Ls, &w.ctx, json!({"path": "a.txt"})).await;
    assert_eq!(out, ToolOutput::error("`a.txt` is not a directory"));
}

#[tokio::test]
async fn lexically_bad_paths_are_refused() {
    let w = setup();
    fs::write(w.ws().join("inside.txt"), "in").unwrap();
    let inside_abs = w.ws().join("inside.txt").to_string_lossy().into_owned();
    let bad = [
        "../outside/secret.txt",
        "/etc/passwd",
        "a/../../outside/secret.txt",
        inside_abs.as_str(),
        "in\0side.txt",
        "",
        ".",
    ];
    for path in bad {
        for (tool, args) in [
            (&Read as &dyn Tool, json!({"path": path})),
            (&Write, json!({"path": path, "content": "pwned"})),
            (
                &Edit,
                json!({"path": path, "oldText": "in", "newText": "out"}),
            ),
        ] {
            let out = call(tool, &w.ctx, args).await;
            assert!(
                out.is_error && out.content.starts_with("refused:"),
                "{path:?}: {out:?}"
            );
            assert!(!out.content.contains("TOP SECRET"));
        }
    }
    let out = call(&Read, &w.ctx, json!({"path": inside_abs})).await;
    assert!(
        out.content.contains("use a path relative to the workspace"),
        "{}",
        out.content
    );
    for path in ["..", "/", "/etc", "a/../.."] {
        let out = call(&Ls, &w.ctx, json!({"path": path})).await;
        assert!(
            out.is_error && out.content.starts_with("refused:"),
            "{path}: {out:?}"
        );
    }
    assert_eq!(fs::read_to_string(w.ws().join("inside.txt")).unwrap(), "in");
    assert_eq!(
        fs::read_to_string(w.outside().join("secret.txt")).unwrap(),
        "TOP SECRET"
    );
}

#[tokio::test]
async fn symlinks_out_of_the_workspace_are_refused() {
    let w = setup();
    symlink(w.outside().join("secret.txt"), w.ws().join("abs_link")).unwrap();
    symlink("../outside/secret.txt", w.ws().join("rel_link")).unwrap();
    symlink("../outside", w.ws().join("out_dir")).unwrap();
    symlink("/etc", w.ws().join("etc")).unwrap();
    fs::create_dir(w.ws().join("sub")).unwrap();
    symlink("../../outside", w.ws().join("sub/deep")).unwrap();
    for path in [
        "abs_link",
        "rel_link",
        "out_dir/secret.txt",
        "etc/passwd",
        "etc/hostname",
        "sub/deep/secret.txt",
    ] {
        let out = call(&Read, &w.ctx, json!({"path": path})).await;
        assert_refused(&out, w.tmp.path());
        assert!(
            out.content.contains("outside the workspace"),
            "{path}: {}",
            out.content
        );
        let out = call(&Write, &w.ctx, json!({"path": path, "content": "pwned"})).await;
        assert_refused(&out, w.tmp.path());
    }
    for path in ["out_dir", "etc", "sub/deep"] {
        assert_refused(
            &call(&Ls, &w.ctx, json!({"path": path})).await,
            w.tmp.path(),
        );
    }
    let out = call(
        &Write,
        &w.ctx,
        json!({"path": "out_dir/new.txt", "content": "x"}),
    )
    .await;
    assert_refused(&out, w.tmp.path());
    assert!(!w.outside().join("new.txt").exists());
    assert_eq!(
        fs::read_to_string(w.outside().join("secret.txt")).unwrap(),
        "TOP SECRET"
    );
}

#[tokio::test]
async fn symlinks_inside_the_workspace_work() {
    let w = setup();
    fs::create_dir_all(w.ws().join("real/deeper")).unwrap();
    fs::write(w.ws().join("real/file.txt"), "content").unwrap();
    symlink("real/file.txt", w.ws().join("alias")).unwrap();
    symlink("real", w.ws().join("dir_alias")).unwrap();
    symlink("../file.txt", w.ws().join("real/deeper/up")).unwrap();
    assert_eq!(
        call(&Read, &w.ctx, json!({"path": "alias"})).await,
        ToolOutput::ok("content")
    );
    assert_eq!(
        call(&Read, &w.ctx, json!({"path": "dir_alias/file.txt"})).await,
        ToolOutput::ok("content")
    );
    assert_eq!(
        call(&Read, &w.ctx, json!({"path": "real/deeper/up"})).await,
        ToolOutput::ok("content")
    );
    assert_eq!(
        call(&Ls, &w.ctx, json!({"path": "dir_alias"})).await,
        ToolOutput::ok("deeper/\nfile.txt")
    );
    let out = call(&Write, &w.ctx, json!({"path": "alias", "content": "new"})).await;
    assert!(!out.is_error, "{out:?}");
    assert_eq!(
        fs::read_to_string(w.ws().join("real/file.txt")).unwrap(),
        "new"
    );
    // A symlink loop is an error, not a hang.
    symlink("loop_b", w.ws().join("loop_a")).unwrap();
    symlink("loop_a", w.ws().join("loop_b")).unwrap();
    let out = call(&Read, &w.ctx, json!({"path": "loop_a"})).await;
    assert!(
        out.is_error && out.content.contains("too many levels"),
        "{out:?}"
    );
}

#[tokio::test]
async fn hard_links_are_refused() {
    let w = setup();
    fs::hard_link(w.outside().join("secret.txt"), w.ws().join("hl.txt")).unwrap();
    for (tool, args) in [
        (&Read as &dyn Tool, json!({"path": "hl.txt"})),
        (&Write, json!({"path": "hl.txt", "content": "pwned"})),
        (
            &Edit,
            json!({"path": "hl.txt", "oldText": "TOP", "newText": "NOT"}),
        ),
    ] {
        let out = call(tool, &w.ctx, args).await;
        assert_refused(&out, w.tmp.path());
        assert!(out.content.contains("hard links"), "{}", out.content);
    }
    assert_eq!(
        fs::read_to_string(w.outside().join("secret.txt")).unwrap(),
        "TOP SECRET"
    );
}

#[tokio::test]
async fn state_dir_inside_workspace_is_unreachable() {
    let mut w = setup();
    let state = w.ws().join(".clawgate");
    fs::create_dir_all(state.join("credentials")).unwrap();
    fs::write(state.join("credentials/gateway-token"), "TOP SECRET").unwrap();
    w.ctx.state_dir = state.clone();
    fs::write(w.ws().join("visible.txt"), "").unwrap();
    symlink(".clawgate", w.ws().join("sneaky")).unwrap();
    fs::create_dir(w.ws().join("d")).unwrap();
    symlink("../.clawgate/credentials", w.ws().join("d/creds")).unwrap();

    for path in [
        ".clawgate/credentials/gateway-token",
        "./.clawgate/credentials/gateway-token",
        "sneaky/credentials/gateway-token",
        "d/creds/gateway-token",
    ] {
        let out = call(&Read, &w.ctx, json!({"path": path})).await;
        assert_refused(&out, w.tmp.path());
        assert!(
            out.content.contains("state directory"),
            "{path}: {}",
            out.content
        );
        let out = call(
            &Edit,
            &w.ctx,
            json!({"path": path, "oldText": "TOP", "newText": "X"}),
        )
        .await;
        assert_refused(&out, w.tmp.path());
    }
    for path in [".clawgate", "sneaky", ".clawgate/credentials", "d/creds"] {
        assert_refused(
            &call(&Ls, &w.ctx, json!({"path": path})).await,
            w.tmp.path(),
        );
    }
    for path in [".clawgate/new.txt", "sneaky/config.yaml", ".clawgate"] {
        let out = call(&Write, &w.ctx, json!({"path": path, "content": "x"})).await;
        assert_refused(&out, w.tmp.path());
    }
    assert!(!state.join("new.txt").exists() && !state.join("config.yaml").exists());
    // The root listing leaves the state dir out.
    let out = call(&Ls, &w.ctx, json!({})).await;
    assert_eq!(out, ToolOutput::ok("d/\nsneaky\nvisible.txt"));
    // The workspace itself being the state dir refuses everything.
    w.ctx.state_dir = w.ctx.workspace.clone();
    assert_refused(&call(&Ls, &w.ctx, json!({})).await, w.tmp.path());
}

#[tokio::test]
async fn state_dir_that_does_not_exist_yet_cannot_be_planted() {
    let mut w = setup();
    w.ctx.state_dir = w.ws().join("home/.clawgate");
    let out = call(
        &Write,
        &w.ctx,
        json!({"path": "home/.clawgate/config.yaml", "content": "x"}),
    )
    .await;
    assert_refused(&out, w.tmp.path());
    assert!(!w.ws().join("home/.clawgate").exists());
    let out = call(
        &Write,
        &w.ctx,
        json!({"path": "home/other.txt", "content": "x"}),
    )
    .await;
    assert!(!out.is_error, "{out:?}");
}

#[tokio::test]
async fn output_is_truncated_on_a_char_boundary() {
    let mut w = setup();
    w.ctx.max_output_bytes = 51;
    fs::write(w.ws().join("big.txt"), "é".repeat(100)).unwrap();
    let out = call(&Read, &w.ctx, json!({"path": "big.txt"})).await;
    assert!(!out.is_error);
    assert_eq!(
        out.content,
        format!("{}\n[output truncated at 51 bytes]", "é".repeat(25))
    );
    assert_eq!(truncate_output("short".into(), 51), "short");
}

#[tokio::test]
async fn arguments_are_validated_strictly() {
    let w = setup();
    let cases = [
        (&Read as &dyn Tool, json!({})),
        (&Read, json!({"path": 5})),
        (&Read, json!({"path": "x", "extra": true})),
        (&Read, json!({"path": "x", "offset": 0})),
        (&Read, json!({"path": "x", "limit": -1})),
        (&Read, json!("x")),
        (&Write, json!({"path": "x"})),
        (&Edit, json!({"path": "x", "oldText": "a"})),
        (&Ls, json!({"path": ["a"]})),
    ];
    for (tool, args) in cases {
        let out = call(tool, &w.ctx, args.clone()).await;
        assert!(
            out.is_error && out.content.starts_with("invalid arguments:"),
            "{args}: {out:?}"
        );
    }
    assert!(!w.ws().join("x").exists());
}

#[test]
fn build_tools_orders_and_filters() {
    let names = |tools: &[Box<dyn Tool>]| tools.iter().map(|t| t.spec().name).collect::<Vec<_>>();
    let mut cfg = clawgate_config::ToolsConfig::default();
    // exec.mode deny (the default): exec is not offered at all.
    assert_eq!(
        names(&build_tools(&cfg)),
        ["read", "write", "edit", "ls", "web_fetch"]
    );
    cfg.exec.mode = clawgate_config::ExecMode::Allowlist;
    let tools = build_tools(&cfg);
    assert_eq!(
        names(&tools),
        ["read", "write", "edit", "ls", "web_fetch", "exec"]
    );
    for tool in &tools {
        let spec = tool.spec();
        assert_eq!(spec.parameters["type"], "object", "{}", spec.name);
        assert_eq!(
            spec.parameters["additionalProperties"], false,
            "{}",
            spec.name
        );
    }
    assert_eq!(
        find(&tools, "ls").map(|t| t.spec().name),
        Some("ls".to_string())
    );
    assert!(find(&tools, "nope").is_none());
    cfg.allow = vec!["exec".into(), "read".into(), "ls".into()];
    cfg.deny = vec!["ls".into()];
    assert_eq!(names(&build_tools(&cfg)), ["read", "exec"]);
    cfg.allow.clear();
    cfg.deny = vec!["exec".into(), "web_fetch".into()];
    let tools = build_tools(&cfg);
    assert_eq!(names(&tools), ["read", "write", "edit", "ls"]);
    assert!(find(&tools, "exec").is_none());
}

/// Issue 7 item 9: `--config` pointing into the workspace. The config file is refused by
/// every file tool, by path, through symlinks and by identity, and `ls` leaves it out.
#[tokio::test]
async fn config_file_inside_the_workspace_is_refused() {
    let mut w = setup();
    let cfg = w.ws().join("config.yaml");
    let text = "gateway:\n  auth:\n    mode: token\n";
    fs::write(&cfg, text).unwrap();
    w.ctx.config_file = Some(cfg.clone());
    symlink("config.yaml", w.ws().join("alias.yaml")).unwrap();
    fs::create_dir(w.ws().join("d")).unwrap();
    symlink("../config.yaml", w.ws().join("d/link.yaml")).unwrap();
    fs::write(w.ws().join("other.txt"), "fine\n").unwrap();

    for path in ["config.yaml", "./config.yaml", "alias.yaml", "d/link.yaml"] {
        let out = call(&Read, &w.ctx, json!({"path": path})).await;
        assert_refused(&out, w.tmp.path());
        assert!(
            out.content.contains("config file"),
            "{path}: {}",
            out.content
        );
        let out = call(
            &Edit,
            &w.ctx,
            json!({"path": path, "oldText": "mode: token", "newText": "mode: none"}),
        )
        .await;
        assert_refused(&out, w.tmp.path());
        let out = call(
            &Write,
            &w.ctx,
            json!({"path": path, "content": "gateway: {}\n"}),
        )
        .await;
        assert_refused(&out, w.tmp.path());
    }
    assert_eq!(fs::read_to_string(&cfg).unwrap(), text);
    let out = call(&Ls, &w.ctx, json!({})).await;
    assert_eq!(out, ToolOutput::ok("alias.yaml\nd/\nother.txt"));
    // The rest of the workspace is untouched by the rule.
    let out = call(&Read, &w.ctx, json!({"path": "other.txt"})).await;
    assert_eq!(out, ToolOutput::ok("fine\n"));
}
