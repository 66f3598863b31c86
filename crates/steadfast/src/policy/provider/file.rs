//! A policy file, watched and hot-reloaded (feature `watch`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use super::{Provider, Update, Updates};
use crate::policy::{Format, PolicyDocument};

/// Default quiet period after a change before the file is read: 200 ms (editors write a file
/// in several steps; this reads it once, when they are done).
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(200);

/// A policy file on disk, read at start and again after every change.
///
/// Watches the file's directory (so editors that replace the file by renaming are seen) with
/// `notify`; after a change it waits for [`debounce`](Self::debounce) of quiet, reads the file
/// and validates it. A valid document is delivered; an invalid one is delivered as
/// [rejected](crate::policy::UpdateKind::Rejected) with every problem, and a missing or
/// unreadable file as unavailable, so a follower keeps the policies in force.
///
/// # Defaults
/// | option | default |
/// |---|---|
/// | `debounce` | [`DEFAULT_DEBOUNCE`] (200 ms) |
/// | `format` | from the extension (`.toml`, `.yaml`/`.yml`, `.json`), else TOML |
///
/// # Example
/// ```no_run
/// use std::time::Duration;
/// use steadfast::{policy::FileProvider, Executor};
///
/// # async fn demo() {
/// let executor = Executor::builder().build();
/// let _following = executor
///     .follow(FileProvider::new("/etc/svc/policies.toml").debounce(Duration::from_millis(500)))
///     .await;
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct FileProvider {
    path: PathBuf,
    debounce: Duration,
    format: Option<Format>,
}

impl FileProvider {
    /// Watches the file at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileProvider {
            path: path.into(),
            debounce: DEFAULT_DEBOUNCE,
            format: None,
        }
    }

    /// How long the file must stay unchanged before it is read.
    pub fn debounce(mut self, debounce: Duration) -> Self {
        self.debounce = debounce;
        self
    }

    /// The file's format, when its extension does not say it.
    pub fn format(mut self, format: Format) -> Self {
        self.format = Some(format);
        self
    }

    /// Reads and validates the file now.
    fn read(&self, source: &Arc<str>) -> (Option<String>, Update) {
        let text = match crate::policy::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) => {
                return (
                    None,
                    Update::unavailable(source.clone(), format!("cannot read {source}: {e}")),
                );
            }
        };
        let format = self
            .format
            .or_else(|| Format::from_path(&self.path))
            .unwrap_or(Format::Toml);
        let update = Update::parsed(source.clone(), PolicyDocument::parse(&text, format, source));
        (Some(text), update)
    }
}

impl Provider for FileProvider {
    fn start(self: Box<Self>) -> Updates {
        let (tx, updates) = Updates::channel();
        let source: Arc<str> = self.path.display().to_string().into();
        let (raw_tx, mut raw_rx) = mpsc::unbounded_channel::<()>();
        let name = self.path.file_name().map(ToOwned::to_owned);
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let ours = match &event {
                Ok(e) => e.paths.iter().any(|p| p.file_name() == name.as_deref()),
                Err(_) => true,
            };
            if ours {
                let _ = raw_tx.send(());
            }
        });
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => Path::new(".").to_path_buf(),
        };
        let watcher =
            watcher.and_then(|mut w| w.watch(&dir, RecursiveMode::NonRecursive).map(|()| w));
        let (mut last_text, first) = self.read(&source);
        let _ = tx.send(first);
        let mut watcher = match watcher {
            Ok(w) => w,
            Err(e) => {
                let _ = tx.send(Update::unavailable(
                    source.clone(),
                    format!("cannot watch {}: {e}", dir.display()),
                ));
                return updates;
            }
        };
        let task = tokio::spawn(async move {
            while raw_rx.recv().await.is_some() {
                // Debounce: read once the file has been quiet for the whole period.
                while let Ok(Some(())) = tokio::time::timeout(self.debounce, raw_rx.recv()).await {}
                let (text, update) = self.read(&source);
                if text.is_some() && text == last_text {
                    continue; // touched, not changed
                }
                last_text = text;
                if tx.send(update).is_err() {
                    break;
                }
            }
            let _ = watcher.unwatch(&dir);
        });
        updates.with_task(task)
    }
}
