//! A Worker body (the client's request, an upstream response) as the core's `ByteSource`. Read
//! whole, it is one JS call (`readAll`: one `arrayBuffer()` when its length is known, so no stream
//! reader is created and none has to be released); streamed, one call per chunk.

use asc_core::host::{read_chunks, ByteSource, HostError, TooLarge};
use wasm_bindgen::{JsCast, JsValue};

use crate::js;

enum Source {
    /// A Request or Response whose body has not been touched.
    Whole(JsValue),
    Reader(js::ChunkReader),
    Done,
}

pub struct WorkerBody {
    source: Source,
}

impl WorkerBody {
    /// The body of a JS Request or Response.
    pub fn of(message: JsValue) -> Self {
        WorkerBody {
            source: Source::Whole(message),
        }
    }
}

fn unreachable_err(e: JsValue) -> HostError {
    HostError::Unreachable(js::describe(&e))
}

impl ByteSource for WorkerBody {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, HostError> {
        if let Source::Whole(message) = &self.source {
            let reader: js::ChunkReader = js::chunk_reader(message).unchecked_into();
            self.source = Source::Reader(reader);
        }
        let Source::Reader(reader) = &self.source else {
            return Ok(None);
        };
        let chunk = js::wait(reader.next()).await.map_err(unreachable_err)?;
        match js::bytes(&chunk) {
            Some(bytes) => Ok(Some(bytes)),
            None => {
                self.source = Source::Done;
                Ok(None)
            }
        }
    }

    async fn read_all(&mut self, limit: u64) -> Result<Result<Vec<u8>, TooLarge>, HostError> {
        let Source::Whole(message) = std::mem::replace(&mut self.source, Source::Done) else {
            return read_chunks(self, limit).await;
        };
        let read = js::wait(js::read_all(&message, js::number(limit)))
            .await
            .map_err(unreachable_err)?;
        Ok(js::bytes(&read).ok_or(TooLarge))
    }
}
