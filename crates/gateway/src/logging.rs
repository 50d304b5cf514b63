//! Logging: human lines on stderr and JSON lines in the gateway's own log file (what
//! `logs.tail` serves). Both pass a redactor that blanks every registered secret.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// Secret values that must never reach a log sink.
#[derive(Clone, Default)]
pub struct Redactor(Arc<RwLock<Vec<String>>>);

impl Redactor {
    pub fn add(&self, secret: &str) {
        if secret.len() >= 4 {
            let mut list = self.0.write().unwrap_or_else(|p| p.into_inner());
            if !list.iter().any(|s| s == secret) {
                list.push(secret.to_string());
            }
        }
    }

    fn apply(&self, buf: &[u8]) -> Vec<u8> {
        let secrets = self.0.read().unwrap_or_else(|p| p.into_inner());
        if secrets.is_empty() {
            return buf.to_vec();
        }
        let mut text = String::from_utf8_lossy(buf).into_owned();
        for s in secrets.iter() {
            if text.contains(s.as_str()) {
                text = text.replace(s.as_str(), "[redacted]");
            }
        }
        text.into_bytes()
    }
}

#[derive(Clone)]
struct RedactingWriter<W: Clone> {
    inner: W,
    redactor: Redactor,
}

struct Sink<W> {
    target: W,
    redactor: Redactor,
}

impl<W: Write> Write for Sink<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.target.write_all(&self.redactor.apply(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.target.flush()
    }
}

/// The log file, rotated by size while the gateway runs: when a write would take it past
/// `max_bytes`, `gateway.log` becomes `gateway.log.1` (older ones shift up to `.max_files`,
/// the oldest is deleted) and a fresh file is opened.
struct RotatingFile {
    path: PathBuf,
    file: std::fs::File,
    len: u64,
    max_bytes: u64,
    max_files: u32,
}

fn open_log(path: &Path) -> io::Result<std::fs::File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

fn numbered(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

impl RotatingFile {
    fn open(path: &Path, max_bytes: u64, max_files: u32) -> io::Result<RotatingFile> {
        let mut f = RotatingFile {
            path: path.to_path_buf(),
            file: open_log(path)?,
            len: 0,
            max_bytes,
            max_files: max_files.max(1),
        };
        f.len = f.file.metadata().map(|m| m.len()).unwrap_or(0);
        if f.len >= f.max_bytes {
            f.rotate()?;
        }
        Ok(f)
    }

    fn rotate(&mut self) -> io::Result<()> {
        let _ = std::fs::remove_file(numbered(&self.path, self.max_files));
        for n in (1..self.max_files).rev() {
            let _ = std::fs::rename(numbered(&self.path, n), numbered(&self.path, n + 1));
        }
        std::fs::rename(&self.path, numbered(&self.path, 1))?;
        self.file = open_log(&self.path)?;
        self.len = 0;
        Ok(())
    }

    fn write_line(&mut self, buf: &[u8]) -> io::Result<()> {
        if self.len > 0 && self.len + buf.len() as u64 > self.max_bytes {
            // Keep logging into the current file if rotating fails (e.g. a read-only dir).
            let _ = self.rotate();
        }
        self.file.write_all(buf)?;
        self.len += buf.len() as u64;
        Ok(())
    }
}

#[derive(Clone)]
struct SharedFile(Arc<Mutex<RotatingFile>>);

struct FileGuard(Arc<Mutex<RotatingFile>>);

impl Write for FileGuard {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .write_line(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .file
            .flush()
    }
}

impl<'a> MakeWriter<'a> for RedactingWriter<SharedFile> {
    type Writer = Sink<FileGuard>;
    fn make_writer(&'a self) -> Self::Writer {
        Sink {
            target: FileGuard(self.inner.0.clone()),
            redactor: self.redactor.clone(),
        }
    }
}

#[derive(Clone)]
struct Stderr;

impl<'a> MakeWriter<'a> for RedactingWriter<Stderr> {
    type Writer = Sink<io::Stderr>;
    fn make_writer(&'a self) -> Self::Writer {
        Sink {
            target: io::stderr(),
            redactor: self.redactor.clone(),
        }
    }
}

/// One JSON object per line in the shape OpenClaw's own log uses, so `openclaw logs`
/// renders it as `time level message`: `{"time","0":message,"_meta":{logLevelName,…}}`.
struct JsonLine;

#[derive(Default)]
struct Fields {
    message: String,
    extra: String,
}

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write as _;
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.extra, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        use std::fmt::Write as _;
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.extra, " {}={value}", field.name());
        }
    }
}

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for JsonLine
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        use tracing_subscriber::fmt::time::FormatTime;
        let mut time = String::new();
        tracing_subscriber::fmt::time::SystemTime
            .format_time(&mut tracing_subscriber::fmt::format::Writer::new(&mut time))?;
        let mut fields = Fields::default();
        event.record(&mut fields);
        let level = event.metadata().level().as_str();
        let line = serde_json::json!({
            "time": time,
            "level": level.to_ascii_lowercase(),
            "0": format!("{}{}", fields.message, fields.extra),
            "_meta": {"logLevelName": level, "date": time, "name": "clawgate"},
        });
        writeln!(writer, "{line}")
    }
}

/// The running log level filter and the redactor of the installed subscriber: a config
/// reload changes the level and registers new secrets through them.
struct Installed {
    level: tracing_subscriber::reload::Handle<EnvFilter, tracing_subscriber::Registry>,
    redactor: Redactor,
    /// `CLAWGATE_LOG` was set: it decides the level, not `logging.level`.
    env_override: bool,
}

static INSTALLED: std::sync::OnceLock<Installed> = std::sync::OnceLock::new();

/// Registers a secret with the installed subscriber's redactor (no-op before `init`).
pub fn add_secret(secret: &str) {
    if let Some(i) = INSTALLED.get() {
        i.redactor.add(secret);
    }
}

/// Sets the level from `logging.level`. `Ok(false)`: nothing to change (`CLAWGATE_LOG`
/// decides, or no subscriber of ours is installed).
pub fn set_level(level: clawgate_config::LogLevel) -> Result<bool, String> {
    let Some(i) = INSTALLED.get() else {
        return Ok(false);
    };
    if i.env_override {
        return Ok(false);
    }
    i.level
        .reload(EnvFilter::new(level.as_str()))
        .map(|_| true)
        .map_err(|e| format!("cannot change the log level: {e}"))
}

/// Installs the global subscriber. `log_file` gets JSON lines (0600), rotated by size per
/// `logging`; stderr gets text.
pub fn init(
    log_file: Option<&Path>,
    redactor: &Redactor,
    cfg: &clawgate_config::LoggingConfig,
) -> io::Result<()> {
    // An empty CLAWGATE_LOG counts as unset: `logging.level` decides.
    let from_env = std::env::var("CLAWGATE_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .and_then(|v| EnvFilter::try_new(v).ok());
    let env_override = from_env.is_some();
    let filter = from_env.unwrap_or_else(|| EnvFilter::new(cfg.level.as_str()));
    let (filter, level) = tracing_subscriber::reload::Layer::new(filter);
    let stderr_layer = tracing_subscriber::fmt::layer()
        .with_writer(RedactingWriter {
            inner: Stderr,
            redactor: redactor.clone(),
        })
        .with_target(false);
    let file_layer = match log_file {
        Some(path) => {
            if let Some(dir) = path.parent() {
                clawgate_config::paths::ensure_private_dir(dir)?;
            }
            let file = RotatingFile::open(path, cfg.max_file_bytes, cfg.max_files)?;
            Some(
                tracing_subscriber::fmt::layer()
                    .event_format(JsonLine)
                    .with_writer(RedactingWriter {
                        inner: SharedFile(Arc::new(Mutex::new(file))),
                        redactor: redactor.clone(),
                    }),
            )
        }
        None => None,
    };
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(stderr_layer)
        .with(file_layer)
        .try_init();
    if installed.is_ok() {
        let _ = INSTALLED.set(Installed {
            level,
            redactor: redactor.clone(),
            env_override,
        });
    }
    Ok(())
}
