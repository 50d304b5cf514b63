//! `read`, `write`, `edit`, `ls`: file tools confined to the workspace, never touching the
//! state directory or the active config file (see `fs_guard`).

use super::fs_guard::{open_entry, parse_path, plain_io, Jail, Resolved, Want, MAX_FILE_BYTES};
use super::{capped, parse_args, Tool, ToolContext, ToolFuture, ToolOutput};
use crate::types::ToolSpec;
use cap_std::fs::{Dir, File};
use serde::Deserialize;
use serde_json::{json, Value};
use std::ffi::OsString;
use std::io::{self, Read as _, Seek as _, SeekFrom, Write as _};

/// `read {path, offset?, limit?}`: a file's text, optionally a range of lines.
pub struct Read;
/// `write {path, content}`: creates or overwrites a file.
pub struct Write;
/// `edit {path, oldText, newText}`: replaces exactly one occurrence.
pub struct Edit;
/// `ls {path?}`: a directory's entries, directories with a trailing `/`.
pub struct Ls;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadArgs {
    path: String,
    offset: Option<u64>,
    limit: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WriteArgs {
    path: String,
    content: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EditArgs {
    path: String,
    #[serde(rename = "oldText")]
    old_text: String,
    #[serde(rename = "newText")]
    new_text: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LsArgs {
    path: Option<String>,
}

const PATH_DOC: &str = "Path relative to the workspace (no absolute paths, no `..`).";

impl Tool for Read {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "read".into(),
            description:
                "Read a text file from the workspace. Use offset/limit to read a range of lines."
                    .into(),
            parameters: json!({
                "type": "object",
                "properties": {
                    "path": {"type": "string", "description": PATH_DOC},
                    "offset": {"type": "integer", "minimum": 1, "description": "First line to return (1-based)."},
                    "limit": {"type": "integer", "minimum": 1, "description": "Number of lines to return."}
                },
                "required": ["path"],
                "additionalProperties": false
            }),
        }
    }

    fn run<'a>(&'a self, args: Value, ctx: &'a ToolContext) -> ToolFuture<'a> {
        blocking::<ReadArgs>(args, ctx, read_file)
    }
}

impl Tool for Write {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "write".into(),
            description:
                "Create or overwrite a file in the workspace (parent directories are created)."
                    .into(),
            parameters: json!({
                "type": "object",
                "properties": {
                    "path": {"type": "string", "description": PATH_DOC},
                    "content": {"type": "string", "description": "The file's new content."}
                },
                "required": ["path", "content"],
                "additionalProperties": false
            }),
        }
    }

    fn run<'a>(&'a self, args: Value, ctx: &'a ToolContext) -> ToolFuture<'a> {
        blocking::<WriteArgs>(args, ctx, write_file)
    }
}

impl Tool for Edit {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "edit".into(),
            description:
                "Replace exactly one occurrence of oldText with newText in a workspace file.".into(),
            parameters: json!({
                "type": "object",
                "properties": {
                    "path": {"type": "string", "description": PATH_DOC},
                    "oldText": {"type": "string", "description": "Exact text to replace; must occur exactly once."},
                    "newText": {"type": "string", "description": "Replacement text."}
                },
                "required": ["path", "oldText", "newText"],
                "additionalProperties": false
            }),
        }
    }

    fn run<'a>(&'a self, args: Value, ctx: &'a ToolContext) -> ToolFuture<'a> {
        blocking::<EditArgs>(args, ctx, edit_file)
    }
}

impl Tool for Ls {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "ls".into(),
            description: "List a workspace directory (default: the workspace root). Directories end with `/`.".into(),
            parameters: json!({
                "type": "object",
                "properties": {
                    "path": {"type": "string", "description": PATH_DOC}
                },
                "additionalProperties": false
            }),
        }
    }

    fn run<'a>(&'a self, args: Value, ctx: &'a ToolContext) -> ToolFuture<'a> {
        blocking::<LsArgs>(args, ctx, list_dir)
    }
}

/// Parses arguments, then runs the (blocking) file work off the async runtime.
fn blocking<'a, A>(
    args: Value,
    ctx: &'a ToolContext,
    work: fn(&ToolContext, A) -> Result<String, String>,
) -> ToolFuture<'a>
where
    A: serde::de::DeserializeOwned + Send + 'static,
{
    Box::pin(async move {
        let parsed: A = match parse_args(args) {
            Ok(a) => a,
            Err(out) => return out,
        };
        let owned = ctx.clone();
        let out = match tokio::task::spawn_blocking(move || work(&owned, parsed)).await {
            Ok(Ok(text)) => ToolOutput::ok(text),
            Ok(Err(msg)) => ToolOutput::error(msg),
            Err(_) => ToolOutput::error("file tool failed unexpectedly"),
        };
        capped(out, ctx)
    })
}

/// Resolves `path` to a parent directory handle and a file name inside it.
fn entry(
    ctx: &ToolContext,
    path: &str,
    create_dirs: bool,
) -> Result<(Jail, Dir, OsString), String> {
    let parts = parse_path(path, false)?;
    let jail = Jail::open(&ctx.workspace, &ctx.state_dir, ctx.config_file.as_deref())?;
    match jail.resolve(parts, Want::Entry { create_dirs }, path)? {
        Resolved::Entry { parent, name, .. } => Ok((jail, parent, name)),
        Resolved::Dir { .. } => Err(format!("`{path}` is a directory")),
    }
}

fn open_error(path: &str, e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => format!("`{path}` does not exist"),
        _ if e.raw_os_error() == Some(libc::ELOOP) => {
            format!("refused: `{path}` became a symlink while being opened")
        }
        _ if e.raw_os_error() == Some(libc::EISDIR) => format!("`{path}` is a directory"),
        _ => format!("cannot open `{path}`: {}", plain_io(e)),
    }
}

/// Reads at most `MAX_FILE_BYTES`; the flag says whether the file was longer.
fn read_capped(file: &File, path: &str) -> Result<(Vec<u8>, bool), String> {
    let mut buf = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| format!("cannot read `{path}`: {}", plain_io(&e)))?;
    let cut = buf.len() as u64 > MAX_FILE_BYTES;
    buf.truncate(MAX_FILE_BYTES as usize);
    Ok((buf, cut))
}

fn read_file(ctx: &ToolContext, args: ReadArgs) -> Result<String, String> {
    if args.offset == Some(0) {
        return Err("invalid arguments: offset is 1-based and must be at least 1".into());
    }
    if args.limit == Some(0) {
        return Err("invalid arguments: limit must be at least 1".into());
    }
    let path = args.path.as_str();
    let (jail, parent, name) = entry(ctx, path, false)?;
    let file = open_entry(&parent, &name, false, false).map_err(|e| open_error(path, &e))?;
    jail.check_file(&file, path)?;
    let (bytes, cut) = read_capped(&file, path)?;
    let text = String::from_utf8_lossy(&bytes);
    let mut out = if args.offset.is_none() && args.limit.is_none() {
        text.into_owned()
    } else {
        let skip = usize::try_from(args.offset.unwrap_or(1) - 1).unwrap_or(usize::MAX);
        let take = args
            .limit
            .map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX));
        let total = text.split_inclusive('\n').count();
        if skip > 0 && skip >= total {
            return Err(format!(
                "offset {} is past the end of `{path}` ({total} lines)",
                skip + 1
            ));
        }
        text.split_inclusive('\n').skip(skip).take(take).collect()
    };
    if cut {
        out.push_str(&format!("\n[file truncated at {MAX_FILE_BYTES} bytes]"));
    }
    Ok(out)
}

fn write_file(ctx: &ToolContext, args: WriteArgs) -> Result<String, String> {
    let path = args.path.as_str();
    if args.content.len() as u64 > MAX_FILE_BYTES {
        return Err(format!(
            "invalid arguments: content is larger than {MAX_FILE_BYTES} bytes"
        ));
    }
    let (jail, parent, name) = entry(ctx, path, true)?;
    let mut file = open_entry(&parent, &name, true, true).map_err(|e| open_error(path, &e))?;
    // Checked before truncating, so a hard-linked outside file is never touched.
    jail.check_file(&file, path)?;
    let write_err = |e: io::Error| format!("cannot write `{path}`: {}", plain_io(&e));
    file.set_len(0).map_err(write_err)?;
    file.write_all(args.content.as_bytes()).map_err(write_err)?;
    file.flush().map_err(write_err)?;
    Ok(format!("wrote {} bytes to `{path}`", args.content.len()))
}

fn edit_file(ctx: &ToolContext, args: EditArgs) -> Result<String, String> {
    let path = args.path.as_str();
    if args.old_text.is_empty() {
        return Err("invalid arguments: oldText must not be empty".into());
    }
    let (jail, parent, name) = entry(ctx, path, false)?;
    let mut file = open_entry(&parent, &name, true, false).map_err(|e| open_error(path, &e))?;
    jail.check_file(&file, path)?;
    let (bytes, cut) = read_capped(&file, path)?;
    if cut {
        return Err(format!(
            "`{path}` is larger than {MAX_FILE_BYTES} bytes; too large to edit"
        ));
    }
    let text = String::from_utf8(bytes).map_err(|_| format!("`{path}` is not valid UTF-8 text"))?;
    let at = match single_match(&text, &args.old_text) {
        Ok(at) => at,
        Err(0) => return Err(format!("oldText was not found in `{path}`")),
        Err(n) => {
            return Err(format!(
                "oldText occurs {n} times in `{path}`; include more surrounding text so it matches exactly once"
            ))
        }
    };
    let mut updated = String::with_capacity(text.len() + args.new_text.len());
    updated.push_str(&text[..at]);
    updated.push_str(&args.new_text);
    updated.push_str(&text[at + args.old_text.len()..]);
    let write_err = |e: io::Error| format!("cannot write `{path}`: {}", plain_io(&e));
    file.seek(SeekFrom::Start(0)).map_err(write_err)?;
    file.set_len(0).map_err(write_err)?;
    file.write_all(updated.as_bytes()).map_err(write_err)?;
    file.flush().map_err(write_err)?;
    Ok(format!("edited `{path}`: replaced 1 occurrence"))
}

/// The byte offset of the only occurrence of `needle` (overlapping ones count), or how
/// many there are (at least 2 when it is not unique).
fn single_match(hay: &str, needle: &str) -> Result<usize, usize> {
    let Some(first) = hay.find(needle) else {
        return Err(0);
    };
    let step = needle.chars().next().map_or(1, char::len_utf8);
    if hay[first + step..].contains(needle) {
        return Err(hay.matches(needle).count().max(2));
    }
    Ok(first)
}

fn list_dir(ctx: &ToolContext, args: LsArgs) -> Result<String, String> {
    let path = args.path.as_deref().unwrap_or(".");
    let parts = parse_path(path, true)?;
    let jail = Jail::open(&ctx.workspace, &ctx.state_dir, ctx.config_file.as_deref())?;
    let (dir, rel) = match jail.resolve(parts, Want::Dir, path)? {
        Resolved::Dir { dir, rel } => (dir, rel),
        Resolved::Entry { .. } => return Err(format!("`{path}` is not a directory")),
    };
    let list_err = |e: io::Error| format!("cannot list `{path}`: {}", plain_io(&e));
    let mut lines = Vec::new();
    for item in dir.entries().map_err(list_err)? {
        let item = item.map_err(list_err)?;
        let name = item.file_name();
        // `DirEntry::metadata` does not follow symlinks, like std's.
        let meta = item.metadata().map_err(list_err)?;
        if jail.hides(&rel, &name, &meta) {
            continue;
        }
        let mut line = name.to_string_lossy().into_owned();
        if meta.is_dir() {
            line.push('/');
        }
        lines.push(line);
    }
    if lines.is_empty() {
        return Ok("(empty directory)".into());
    }
    lines.sort();
    Ok(lines.join("\n"))
}
