//! Policies polled from a URL (feature `http`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Provider, Update, Updates};
use crate::policy::{Format, MAX_DOCUMENT_BYTES, PolicyDocument};

/// Default time between polls: 30 s.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
/// Default time limit of one poll: 5 s.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Policies served over HTTP (by `steadfast serve`, a config service, a static file server),
/// polled with `If-None-Match` so an unchanged document costs a `304` and no parsing.
///
/// A valid document is delivered and, with [`cache`](Self::cache), written to a local file
/// (atomically), so a process that restarts while the server is down still starts with the
/// last good policies. A failed poll (refused, timed out, a `5xx`) is reported as unavailable
/// and changes nothing; an invalid document is reported as rejected and changes nothing. With
/// no server and no cache, a follower keeps the executor's own policies (the safe defaults).
///
/// The format comes from the response's `Content-Type` (`application/toml`, `…/yaml`,
/// `…/json`), else the URL's extension, else [`format`](Self::format), else TOML.
///
/// # Defaults
/// | option | default |
/// |---|---|
/// | `interval` | [`DEFAULT_INTERVAL`] (30 s) |
/// | `timeout` | [`DEFAULT_TIMEOUT`] (5 s) |
/// | `cache` | none |
///
/// # Example
/// ```no_run
/// use std::time::Duration;
/// use steadfast::{policy::HttpProvider, Executor};
///
/// # async fn demo() {
/// let executor = Executor::builder().build();
/// let provider = HttpProvider::new("http://policies.internal/checkout.toml")
///     .interval(Duration::from_secs(15))
///     .cache("/var/cache/checkout/policies.json");
/// let _following = executor.follow(provider).await;
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct HttpProvider {
    url: String,
    interval: Duration,
    timeout: Duration,
    cache: Option<PathBuf>,
    format: Option<Format>,
    client: Option<reqwest::Client>,
}

/// What the cache file holds: the last valid document as it was served, and its ETag.
#[derive(Debug, Serialize, Deserialize)]
struct Cached {
    url: String,
    etag: Option<String>,
    format: String,
    body: String,
}

enum Fetched {
    NotModified,
    Body {
        etag: Option<String>,
        format: Format,
        body: String,
    },
}

impl HttpProvider {
    /// Polls `url`.
    pub fn new(url: impl Into<String>) -> Self {
        HttpProvider {
            url: url.into(),
            interval: DEFAULT_INTERVAL,
            timeout: DEFAULT_TIMEOUT,
            cache: None,
            format: None,
            client: None,
        }
    }

    /// Time between polls.
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Time limit of one poll (connect, request and body).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Keeps the last valid document in this file, and starts from it when the server cannot
    /// be reached.
    pub fn cache(mut self, path: impl Into<PathBuf>) -> Self {
        self.cache = Some(path.into());
        self
    }

    /// The format when neither the `Content-Type` nor the URL says it.
    pub fn format(mut self, format: Format) -> Self {
        self.format = Some(format);
        self
    }

    /// The client to poll with (proxies, TLS, headers such as authorization).
    pub fn client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(client);
        self
    }

    fn read_cache(&self) -> Option<Cached> {
        let path = self.cache.as_ref()?;
        let text = std::fs::read_to_string(path).ok()?;
        serde_json::from_str::<Cached>(&text)
            .ok()
            .filter(|c| c.url == self.url)
    }

    fn write_cache(&self, cached: &Cached) -> std::io::Result<()> {
        let Some(path) = &self.cache else {
            return Ok(());
        };
        let text = serde_json::to_string(cached).map_err(std::io::Error::other)?;
        let mut tmp = path.clone().into_os_string();
        tmp.push(".tmp");
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, path)
    }

    async fn fetch(&self, client: &reqwest::Client, etag: Option<&str>) -> Result<Fetched, String> {
        let mut request = client.get(&self.url).timeout(self.timeout);
        if let Some(etag) = etag {
            request = request.header(reqwest::header::IF_NONE_MATCH, etag);
        }
        let mut response = request
            .send()
            .await
            .map_err(|e| format!("cannot reach {}: {e}", self.url))?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_MODIFIED {
            return Ok(Fetched::NotModified);
        }
        if !status.is_success() {
            return Err(format!("{} answered {status}", self.url));
        }
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(ToOwned::to_owned)
        };
        let etag = header(reqwest::header::ETAG);
        let format = header(reqwest::header::CONTENT_TYPE)
            .and_then(|t| Format::from_media_type(&t))
            .or_else(|| {
                let path = self.url.split(['?', '#']).next().unwrap_or_default();
                Format::from_path(path)
            })
            .or(self.format)
            .unwrap_or(Format::Toml);
        let mut bytes = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("reading {}: {e}", self.url))?
        {
            if bytes.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(format!(
                    "{} sent over {MAX_DOCUMENT_BYTES} bytes, the most a policy document may be",
                    self.url
                ));
            }
            bytes.extend_from_slice(&chunk);
        }
        let body = String::from_utf8(bytes)
            .map_err(|_| format!("{} sent a document that is not UTF-8", self.url))?;
        Ok(Fetched::Body { etag, format, body })
    }
}

fn parse(body: &str, format: Format, source: &Arc<str>) -> Update {
    Update::parsed(source.clone(), PolicyDocument::parse(body, format, source))
}

fn format_named(name: &str) -> Format {
    match name {
        "yaml" => Format::Yaml,
        "json" => Format::Json,
        _ => Format::Toml,
    }
}

impl Provider for HttpProvider {
    fn start(self: Box<Self>) -> Updates {
        let (tx, updates) = Updates::channel();
        let source: Arc<str> = self.url.as_str().into();
        let task = tokio::spawn(async move {
            let client = self.client.clone().unwrap_or_default();
            let cached = self.read_cache();
            let mut etag = cached.as_ref().and_then(|c| c.etag.clone());
            let mut first = true;
            loop {
                let update = match self.fetch(&client, etag.as_deref()).await {
                    Ok(Fetched::Body {
                        etag: new_etag,
                        format,
                        body,
                    }) => {
                        let update = parse(&body, format, &source);
                        if update.document_ref().is_some() {
                            let _ = self.write_cache(&Cached {
                                url: self.url.clone(),
                                etag: new_etag.clone(),
                                format: format.name().to_owned(),
                                body,
                            });
                        }
                        etag = new_etag;
                        Some(update)
                    }
                    // Unchanged since the cached copy (or the last poll).
                    Ok(Fetched::NotModified) => None,
                    Err(reason) => Some(Update::unavailable(source.clone(), reason)),
                };
                // The first state: the server's document, or else the cached one.
                let update = match (first, &cached, update) {
                    (true, Some(c), u) if u.as_ref().is_none_or(|u| u.document_ref().is_none()) => {
                        let from_cache: Arc<str> = format!("{} (cached)", self.url).into();
                        let cached_update = parse(&c.body, format_named(&c.format), &from_cache);
                        if tx.send(cached_update).is_err() {
                            return;
                        }
                        u
                    }
                    (_, _, u) => u,
                };
                first = false;
                if let Some(u) = update
                    && tx.send(u).is_err()
                {
                    return;
                }
                tokio::time::sleep(self.interval).await;
            }
        });
        updates.with_task(task)
    }
}
