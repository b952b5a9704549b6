//! The wire format between processes: one frame per message, `[length u32 LE][payload]`, the
//! payload a bincode [`Frame`]: a `Hello` first, with a secret a `Proof`, then `Message`s. A
//! frame longer than [`FRAME_BYTES_MAX`] or one that does not decode is a protocol error: the
//! reader reports it and the connection is closed, never a panic and never an unbounded
//! allocation.
//!
//! A frame's buffer grows as its bytes arrive ([`READ_CHUNK_BYTES`] at a time), never to the
//! length the header declares: a peer that declares 16 MiB and sends 10 bytes costs 10 bytes
//! (and a chunk), not 16 MiB. What a bad frame held is reported truncated
//! ([`LOGGED_BYTES_MAX`]), so a log line stays short whatever the peer sent.

use bincode::Options;
use insync_model::msg::Msg;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest frame accepted or sent.
pub const FRAME_BYTES_MAX: u32 = 16 * 1024 * 1024;
/// Largest frame accepted during the handshake, before the peer has proved anything: a hello
/// holds the configuration (about a kilobyte), a few actor indices, a cluster id and a nonce.
pub const HANDSHAKE_FRAME_BYTES_MAX: u32 = 64 * 1024;
/// Most bytes a frame's buffer grows by per read: a frame is allocated as it arrives.
pub const READ_CHUNK_BYTES: usize = 64 * 1024;
/// Most bytes of a rejected frame (as hex) or of a decoder's complaint that an error shows.
pub const LOGGED_BYTES_MAX: usize = 200;

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
    #[error("frame of {len} bytes exceeds the maximum of {max}")]
    Oversized { len: u64, max: u32 },
    #[error("undecodable frame: {0}")]
    Undecodable(String),
}

/// At most [`LOGGED_BYTES_MAX`] bytes of `text`, cut at a character boundary, with control
/// characters escaped; `…` marks a cut.
pub fn shown_text(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        let escaped: String = if c.is_control() {
            c.escape_default().collect()
        } else {
            c.to_string()
        };
        if out.len() + escaped.len() > LOGGED_BYTES_MAX {
            out.push('…');
            return out;
        }
        out.push_str(&escaped);
    }
    out
}

/// The first bytes of `bytes` as hex, at most [`LOGGED_BYTES_MAX`] characters of it; `…`
/// marks a cut.
pub fn shown_bytes(bytes: &[u8]) -> String {
    let shown = &bytes[..bytes.len().min(LOGGED_BYTES_MAX / 2)];
    let mut out: String = shown.iter().map(|b| format!("{b:02x}")).collect();
    if shown.len() < bytes.len() {
        out.push('…');
    }
    out
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
        return Err(WireError::Oversized {
            len: payload.len() as u64,
            max: FRAME_BYTES_MAX,
        });
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
    read_frame_within(reader, FRAME_BYTES_MAX).await
}

/// Reads one frame of at most `max` bytes; `Ok(None)` at a clean end of stream.
pub async fn read_frame_within<R: AsyncRead + Unpin>(
    reader: &mut R,
    max: u32,
) -> Result<Option<Frame>, WireError> {
    let mut header = [0u8; 4];
    match reader.read_exact(&mut header).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_le_bytes(header);
    if len > max.min(FRAME_BYTES_MAX) {
        return Err(WireError::Oversized {
            len: u64::from(len),
            max: max.min(FRAME_BYTES_MAX),
        });
    }
    let mut payload = Vec::new();
    read_payload(reader, len as usize, &mut payload).await?;
    decode(&payload).map(Some)
}

/// Reads `len` bytes into `payload`, growing it as they arrive (see the module doc).
async fn read_payload<R: AsyncRead + Unpin>(
    reader: &mut R,
    len: usize,
    payload: &mut Vec<u8>,
) -> Result<(), WireError> {
    while payload.len() < len {
        let mut want = (len - payload.len()).min(READ_CHUNK_BYTES);
        if payload.capacity() == payload.len() {
            // From a page, doubling, so a long frame is not copied chunk by chunk: at most
            // twice what arrived.
            payload.reserve(want.min(payload.len().max(4096)));
        }
        want = want.min(payload.capacity() - payload.len());
        let mut limited = (&mut *reader).take(want as u64);
        let n = limited.read_buf(payload).await?;
        if n == 0 {
            return Err(WireError::Io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!(
                    "the connection ended {} bytes into a frame of {len}",
                    payload.len()
                ),
            )));
        }
    }
    Ok(())
}

/// Decodes one frame's payload (the bytes after its length). The error names the payload's
/// length and shows its start, both truncated to [`LOGGED_BYTES_MAX`].
pub fn decode(payload: &[u8]) -> Result<Frame, WireError> {
    codec().deserialize(payload).map_err(|e| {
        WireError::Undecodable(format!(
            "{} ({} bytes, starting {})",
            shown_text(&e.to_string()),
            payload.len(),
            shown_bytes(payload)
        ))
    })
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
        assert!(
            matches!(err, WireError::Oversized { len, .. } if len == u64::from(FRAME_BYTES_MAX) + 1)
        );
        // Before the handshake is done, 64 KiB is the most.
        let mut bytes = (HANDSHAKE_FRAME_BYTES_MAX + 1).to_le_bytes().to_vec();
        bytes.extend_from_slice(&[0; 16]);
        let err = read_frame_within(&mut bytes.as_slice(), HANDSHAKE_FRAME_BYTES_MAX)
            .await
            .expect_err("oversized hello");
        assert!(
            matches!(err, WireError::Oversized { max, .. } if max == HANDSHAKE_FRAME_BYTES_MAX)
        );
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

    /// A reader that yields `bytes`, then never anything more (a stalled peer).
    struct Stalled {
        bytes: Vec<u8>,
    }

    impl AsyncRead for Stalled {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            if self.bytes.is_empty() {
                return std::task::Poll::Pending;
            }
            let n = self.bytes.len().min(buf.remaining());
            buf.put_slice(&self.bytes[..n]);
            self.bytes.drain(..n);
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn a_declared_length_is_not_allocated_before_its_bytes_arrive() {
        // A payload read into a buffer of at most one chunk while 10 of 16 MiB are in.
        let mut bytes = FRAME_BYTES_MAX.to_le_bytes().to_vec();
        bytes.extend_from_slice(&[1; 10]);
        let mut reader = Stalled { bytes };
        let mut header = [0u8; 4];
        reader.read_exact(&mut header).await.expect("header");
        let len = u32::from_le_bytes(header) as usize;
        let mut payload = Vec::new();
        let read = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            read_payload(&mut reader, len, &mut payload),
        )
        .await;
        assert!(read.is_err(), "the peer stalls, so the read waits");
        assert_eq!(payload.len(), 10);
        assert!(
            payload.capacity() <= 4096,
            "{} bytes reserved for 10 received",
            payload.capacity()
        );
    }

    #[test]
    fn a_rejected_frame_is_shown_short() {
        let garbage = vec![0xffu8; 1 << 20];
        let err = decode(&garbage).expect_err("garbage").to_string();
        assert!(
            err.len() < 3 * LOGGED_BYTES_MAX,
            "{} bytes: {err}",
            err.len()
        );
        assert!(err.contains("ffffffff"), "{err}");
        assert!(err.contains(&format!("{} bytes", 1 << 20)), "{err}");
        let text = "\u{1b}[31m".repeat(1000);
        let shown = shown_text(&text);
        assert!(shown.len() <= LOGGED_BYTES_MAX + '…'.len_utf8(), "{shown}");
        assert!(
            !shown.contains('\u{1b}'),
            "control characters are escaped: {shown}"
        );
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
