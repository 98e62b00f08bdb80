//! A Worker body stream (client request or upstream response) as the core's `ByteSource`.

use asc_core::host::{ByteSource, HostError};
use futures_util::StreamExt;
use worker::ByteStream;

pub struct WorkerBody {
    stream: Option<ByteStream>,
}

impl WorkerBody {
    pub fn new(stream: Option<ByteStream>) -> Self {
        WorkerBody { stream }
    }
}

impl ByteSource for WorkerBody {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, HostError> {
        let Some(stream) = self.stream.as_mut() else {
            return Ok(None);
        };
        match stream.next().await {
            Some(Ok(chunk)) => Ok(Some(chunk)),
            Some(Err(e)) => Err(HostError::Unreachable(e.to_string())),
            None => {
                self.stream = None;
                Ok(None)
            }
        }
    }
}
