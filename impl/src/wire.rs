//! The wire format between processes: one frame per message, `[length u32 LE][payload]`, the
//! payload a bincode [`Frame`]: a `Hello` first, with a secret a `Proof`, then `Message`s. A frame longer than [`FRAME_BYTES_MAX`] or one that does not
//! decode is a protocol error: the reader reports it and the connection is closed, never a
//! panic and never an unbounded allocation.

use bincode::Options;
use insync_model::msg::Msg;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest frame accepted or sent.
pub const FRAME_BYTES_MAX: u32 = 16 * 1024 * 1024;

/// A message with its sender and recipient actor indices.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub src: usize,
    pub dst: usize,
    pub msg: Msg,
}

/// What travels on a connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Frame {
    /// The first frame each side sends: the partition configuration it runs (every process
    /// of a cluster must run the same one), the actor indices it hosts, the cluster id it was
    /// started with (if any) and, when it authenticates (`--secret-file`), a fresh nonce.
    Hello {
        config: String,
        hosts: Vec<usize>,
        cluster_id: Option<String>,
        nonce: Option<[u8; crate::auth::NONCE_BYTES]>,
    },
    /// With a secret, the second frame each side sends: its HMAC over the handshake
    /// (`auth.rs`). Nothing else is read from a peer before its proof checks out.
    Proof {
        mac: Vec<u8>,
    },
    Message(Envelope),
}

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("frame of {0} bytes exceeds the maximum of {FRAME_BYTES_MAX}")]
    Oversized(u64),
    #[error("undecodable frame: {0}")]
    Undecodable(String),
}

/// Varint bincode, with a size limit so a corrupt length inside a frame cannot make the decoder
/// allocate more than a frame's worth.
fn codec() -> impl Options {
    bincode::DefaultOptions::new().with_limit(u64::from(FRAME_BYTES_MAX))
}

pub fn encode(frame: &Frame) -> Result<Vec<u8>, WireError> {
    let payload = codec()
        .serialize(frame)
        .map_err(|e| WireError::Undecodable(e.to_string()))?;
    if payload.len() as u64 > u64::from(FRAME_BYTES_MAX) {
        return Err(WireError::Oversized(payload.len() as u64));
    }
    let mut frame = Vec::with_capacity(payload.len() + 4);
    frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    frame.extend_from_slice(&payload);
    Ok(frame)
}

pub async fn write_frame<W: AsyncWrite + Unpin>(
    writer: &mut W,
    frame: &Frame,
) -> Result<(), WireError> {
    let frame = encode(frame)?;
    writer.write_all(&frame).await?;
    Ok(())
}

/// Reads one frame; `Ok(None)` at a clean end of stream.
pub async fn read_frame<R: AsyncRead + Unpin>(reader: &mut R) -> Result<Option<Frame>, WireError> {
    let mut header = [0u8; 4];
    match reader.read_exact(&mut header).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_le_bytes(header);
    if len > FRAME_BYTES_MAX {
        return Err(WireError::Oversized(u64::from(len)));
    }
    let mut payload = vec![0u8; len as usize];
    reader.read_exact(&mut payload).await?;
    decode(&payload).map(Some)
}

/// Decodes one frame's payload (the bytes after its length).
pub fn decode(payload: &[u8]) -> Result<Frame, WireError> {
    codec()
        .deserialize(payload)
        .map_err(|e| WireError::Undecodable(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use insync_model::msg::RequestId;
    use insync_model::types::Offset;

    fn sample() -> Frame {
        Frame::Message(Envelope {
            src: 0,
            dst: 4,
            msg: Msg::ProduceResponse {
                request: RequestId(7),
                result: Ok(Offset(42)),
            },
        })
    }

    #[tokio::test]
    async fn frames_round_trip() {
        let mut buf = Vec::new();
        write_frame(&mut buf, &sample()).await.expect("write");
        write_frame(&mut buf, &sample()).await.expect("write");
        let mut reader = buf.as_slice();
        assert_eq!(read_frame(&mut reader).await.expect("read"), Some(sample()));
        assert_eq!(read_frame(&mut reader).await.expect("read"), Some(sample()));
        assert_eq!(read_frame(&mut reader).await.expect("eof"), None);
    }

    #[tokio::test]
    async fn oversized_frame_is_refused_before_allocating() {
        let mut bytes = (FRAME_BYTES_MAX + 1).to_le_bytes().to_vec();
        bytes.extend_from_slice(&[0; 16]);
        let err = read_frame(&mut bytes.as_slice())
            .await
            .expect_err("oversized");
        assert!(matches!(err, WireError::Oversized(n) if n == u64::from(FRAME_BYTES_MAX) + 1));
    }

    #[tokio::test]
    async fn garbage_frame_is_an_error_not_a_panic() {
        let mut bytes = 6u32.to_le_bytes().to_vec();
        bytes.extend_from_slice(&[0xff; 6]);
        let err = read_frame(&mut bytes.as_slice())
            .await
            .expect_err("garbage");
        assert!(matches!(err, WireError::Undecodable(_)), "{err}");
    }

    #[tokio::test]
    async fn torn_frame_is_an_io_error() {
        let frame = encode(&sample()).expect("encode");
        let err = read_frame(&mut &frame[..frame.len() - 1])
            .await
            .expect_err("torn");
        assert!(matches!(err, WireError::Io(_)), "{err}");
    }
}
