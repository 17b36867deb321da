//! A task's log through Nomad's client filesystem API (`GET /v1/client/fs/logs/:alloc_id`):
//! the frames Nomad streams (`StreamFrame`: `Offset`, base64 `Data`, `File`, `FileEvent`),
//! written back to back with no separator, with `{}` heartbeats while a follow has nothing new.
//! [`Frames`] decodes them from bytes as they arrive, however the bytes are cut.

use base64::Engine;
use futures::{Stream, StreamExt};
use reqwest::Method;
use serde::Deserialize;

use super::{ApiError, NomadClient, QueryOptions};

/// Which log, and from where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogRequest {
    pub alloc_id: String,
    pub namespace: String,
    pub task: String,
    /// `stderr` rather than `stdout`.
    pub stderr: bool,
    pub follow: bool,
    /// Bytes from the start of the file (Nomad's `origin=start`).
    pub offset: u64,
}

/// Some bytes of a log, and where the file is after them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogChunk {
    pub data: Vec<u8>,
    /// The file's offset past `data`, to resume from.
    pub end: u64,
}

#[derive(Deserialize)]
struct Frame {
    #[serde(rename = "Offset", default)]
    offset: u64,
    #[serde(rename = "Data", default)]
    data: Option<String>,
    #[serde(rename = "FileEvent", default)]
    file_event: Option<String>,
}

/// Decodes back-to-back JSON frames from bytes that arrive in pieces.
#[derive(Default)]
pub struct Frames {
    pending: Vec<u8>,
}

impl Frames {
    /// Every complete frame in what arrived so far; what is cut off waits for more bytes.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<LogChunk>, String> {
        self.pending.extend_from_slice(bytes);
        let mut chunks = Vec::new();
        let mut values = serde_json::Deserializer::from_slice(&self.pending).into_iter::<Frame>();
        let mut consumed = 0;
        loop {
            match values.next() {
                Some(Ok(frame)) => {
                    consumed = values.byte_offset();
                    if let Some(chunk) = frame.chunk()? {
                        chunks.push(chunk);
                    }
                }
                Some(Err(e)) if e.is_eof() => break,
                Some(Err(e)) => return Err(format!("a log frame Nomad sent is not JSON: {e}")),
                None => break,
            }
        }
        self.pending.drain(..consumed);
        Ok(chunks)
    }
}

impl Frame {
    /// `None` for a heartbeat or a file event without data (a truncation or deletion is
    /// followed by the data read after it).
    fn chunk(self) -> Result<Option<LogChunk>, String> {
        let _event = self.file_event;
        let Some(data) = self.data.filter(|d| !d.is_empty()) else {
            return Ok(None);
        };
        let data = base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|e| format!("a log frame's data is not base64: {e}"))?;
        Ok(Some(LogChunk {
            data,
            end: self.offset,
        }))
    }
}

impl NomadClient {
    /// The log as a stream of chunks; without `follow` it ends at the end of the file.
    pub async fn logs(
        &self,
        request: &LogRequest,
    ) -> Result<impl Stream<Item = Result<LogChunk, ApiError>> + Send + 'static, ApiError> {
        let options = QueryOptions::namespace(&request.namespace)
            .param("task", &request.task)
            .param("type", if request.stderr { "stderr" } else { "stdout" })
            .param("follow", if request.follow { "true" } else { "false" })
            .param("origin", "start")
            .param("offset", &request.offset.to_string());
        let path = format!("/v1/client/fs/logs/{}", request.alloc_id);
        let mut http = self.http.request(Method::GET, &path, &options);
        if request.follow {
            // A follow lives until it is dropped; only the connection has a deadline.
            http = http.timeout(std::time::Duration::from_secs(365 * 86400));
        }
        let response = self.http.send(http, false).await?;
        let api = self.http.api;
        let bytes = response.bytes_stream();
        let mut frames = Frames::default();
        Ok(bytes
            .map(move |piece| {
                let piece = piece.map_err(|e| ApiError::Unreachable {
                    api,
                    address: String::new(),
                    detail: e.to_string(),
                })?;
                frames.push(&piece).map_err(|message| ApiError::Server {
                    api,
                    status: 200,
                    message,
                })
            })
            .flat_map(|decoded| {
                let items: Vec<Result<LogChunk, ApiError>> = match decoded {
                    Ok(chunks) => chunks.into_iter().map(Ok).collect(),
                    Err(e) => vec![Err(e)],
                };
                futures::stream::iter(items)
            }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames cut anywhere decode to the same chunks; heartbeats decode to nothing.
    #[test]
    fn frames_decode_however_the_bytes_are_cut() {
        let encode = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
        let wire = format!(
            "{{}}{{\"Offset\":6,\"Data\":\"{}\",\"File\":\"alloc/logs/app.stdout.0\"}}{{}}{{\"Offset\":12,\"Data\":\"{}\",\"File\":\"alloc/logs/app.stdout.0\"}}",
            encode("hello\n"),
            encode("world\n")
        );
        for cut in 0..wire.len() {
            let mut frames = Frames::default();
            let mut chunks = frames.push(&wire.as_bytes()[..cut]).unwrap();
            chunks.extend(frames.push(&wire.as_bytes()[cut..]).unwrap());
            let text: Vec<u8> = chunks.iter().flat_map(|c| c.data.clone()).collect();
            assert_eq!(
                String::from_utf8(text).unwrap(),
                "hello\nworld\n",
                "cut at {cut}"
            );
            assert_eq!(chunks.last().map(|c| c.end), Some(12));
        }
        assert!(Frames::default().push(b"{\"Data\": 5}").is_err());
    }
}
