//! Logging: human lines on stderr and JSON lines in the gateway's own log file (what
//! `logs.tail` serves). Both pass a redactor that blanks every registered secret.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Log file size at which it is rotated (kept as `gateway.log.1`) at start-up.
const ROTATE_BYTES: u64 = 10 * 1024 * 1024;

/// Secret values that must never reach a log sink.
#[derive(Clone, Default)]
pub struct Redactor(Arc<RwLock<Vec<String>>>);

impl Redactor {
    pub fn add(&self, secret: &str) {
        if secret.len() >= 4 {
            self.0
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .push(secret.to_string());
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

#[derive(Clone)]
struct SharedFile(Arc<Mutex<std::fs::File>>);

struct FileGuard(Arc<Mutex<std::fs::File>>);

impl Write for FileGuard {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).flush()
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

/// Installs the global subscriber. `log_file` gets JSON lines (0600); stderr gets text.
pub fn init(log_file: Option<&Path>, redactor: &Redactor) -> io::Result<()> {
    let filter =
        || EnvFilter::try_from_env("CLAWGATE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let stderr_layer = tracing_subscriber::fmt::layer()
        .with_writer(RedactingWriter {
            inner: Stderr,
            redactor: redactor.clone(),
        })
        .with_target(false)
        .with_filter(filter());
    let file_layer = match log_file {
        Some(path) => {
            if let Some(dir) = path.parent() {
                clawgate_config::paths::ensure_private_dir(dir)?;
            }
            if std::fs::metadata(path).is_ok_and(|m| m.len() > ROTATE_BYTES) {
                let _ = std::fs::rename(path, path.with_extension("log.1"));
            }
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(path)?;
            Some(
                tracing_subscriber::fmt::layer()
                    .event_format(JsonLine)
                    .with_writer(RedactingWriter {
                        inner: SharedFile(Arc::new(Mutex::new(file))),
                        redactor: redactor.clone(),
                    })
                    .with_filter(filter()),
            )
        }
        None => None,
    };
    let _ = tracing_subscriber::registry()
        .with(stderr_layer)
        .with(file_layer)
        .try_init();
    Ok(())
}
