//! A Worker body (client request or upstream response) as the core's `ByteSource`. A body the
//! core reads whole is read with one `arrayBuffer()` when its length is known and within the
//! limit: a stream reader costs a JS round trip per chunk and a `TypeError` (with a captured
//! stack) when it is released, which profiling showed among the largest per-request costs.
//! Streams (and bodies of unknown length) are read chunk by chunk.

use asc_core::host::{read_chunks, ByteSource, HostError, TooLarge};
use futures_util::StreamExt;
use worker::{ByteStream, Request, Response};

enum Source {
    Request(Request),
    Response(Response),
    Stream(ByteStream),
    Done,
}

pub struct WorkerBody {
    source: Source,
    content_length: Option<u64>,
}

fn length(headers: &worker::Headers) -> Option<u64> {
    headers
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|v| v.trim().parse().ok())
}

impl WorkerBody {
    pub fn from_request(req: Request) -> Self {
        let content_length = length(req.headers());
        WorkerBody {
            source: Source::Request(req),
            content_length,
        }
    }

    pub fn from_response(resp: Response) -> Self {
        let content_length = length(resp.headers());
        WorkerBody {
            source: Source::Response(resp),
            content_length,
        }
    }

    /// Switches to chunked reading.
    fn stream(&mut self) -> Option<&mut ByteStream> {
        let taken = std::mem::replace(&mut self.source, Source::Done);
        self.source = match taken {
            Source::Request(mut r) => r.stream().map(Source::Stream).unwrap_or(Source::Done),
            Source::Response(mut r) => r.stream().map(Source::Stream).unwrap_or(Source::Done),
            other => other,
        };
        match &mut self.source {
            Source::Stream(s) => Some(s),
            _ => None,
        }
    }
}

impl ByteSource for WorkerBody {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, HostError> {
        let Some(stream) = self.stream() else {
            return Ok(None);
        };
        match stream.next().await {
            Some(Ok(chunk)) => Ok(Some(chunk)),
            Some(Err(e)) => Err(HostError::Unreachable(e.to_string())),
            None => {
                self.source = Source::Done;
                Ok(None)
            }
        }
    }

    async fn read_all(&mut self, limit: u64) -> Result<Result<Vec<u8>, TooLarge>, HostError> {
        let whole = match self.content_length {
            Some(n) if n > limit => return Ok(Err(TooLarge)),
            Some(_) => true,
            None => false,
        };
        if whole {
            let read = match std::mem::replace(&mut self.source, Source::Done) {
                Source::Request(mut r) => Some(r.bytes().await),
                Source::Response(mut r) => Some(r.bytes().await),
                other => {
                    self.source = other;
                    None
                }
            };
            if let Some(read) = read {
                let bytes = read.map_err(|e| HostError::Unreachable(e.to_string()))?;
                // A body longer than its Content-Length is the platform's to refuse; check anyway.
                if bytes.len() as u64 > limit {
                    return Ok(Err(TooLarge));
                }
                return Ok(Ok(bytes));
            }
        }
        read_chunks(self, limit).await
    }
}
