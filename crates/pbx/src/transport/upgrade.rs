//! A stream wrapper that ends the first reads at the end of the WebSocket
//! upgrade request.
//!
//! tungstenite 0.28 rejects an upgrade when bytes follow the request in the
//! same read (`JunkAfterRequest`), so a client that sends its first frame
//! in the same TCP segment as the request lost the connection. Until the
//! request's blank line has been read, [`UpgradeHead`] returns bytes up to
//! it only and keeps the rest, which later reads return first.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes read from the connection at a time while the request is read.
const READ_CHUNK: usize = 4096;

/// Progress through the blank line that ends the request head: LF, then an
/// optional CR, then LF. httparse accepts bare LF line ends too.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HeadEnd {
    None,
    LineFeed,
    CarriageReturn,
    Done,
}

impl HeadEnd {
    fn next(self, byte: u8) -> HeadEnd {
        match (self, byte) {
            (HeadEnd::Done, _) => HeadEnd::Done,
            (HeadEnd::LineFeed | HeadEnd::CarriageReturn, b'\n') => HeadEnd::Done,
            (HeadEnd::LineFeed, b'\r') => HeadEnd::CarriageReturn,
            (_, b'\n') => HeadEnd::LineFeed,
            _ => HeadEnd::None,
        }
    }
}

pub(super) struct UpgradeHead<S> {
    inner: S,
    /// Bytes read from `inner` and not yet returned.
    pending: Vec<u8>,
    head_end: HeadEnd,
}

impl<S> UpgradeHead<S> {
    pub(super) fn new(inner: S) -> UpgradeHead<S> {
        UpgradeHead {
            inner,
            pending: Vec::new(),
            head_end: HeadEnd::None,
        }
    }

    /// Moves pending bytes into `buf`, stopping after the head's blank line.
    fn drain_pending(&mut self, buf: &mut ReadBuf<'_>) {
        let mut count = self.pending.len().min(buf.remaining());
        if self.head_end != HeadEnd::Done {
            for (index, &byte) in self.pending[..count].iter().enumerate() {
                self.head_end = self.head_end.next(byte);
                if self.head_end == HeadEnd::Done {
                    count = index + 1;
                    break;
                }
            }
        }
        buf.put_slice(&self.pending[..count]);
        self.pending.drain(..count);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for UpgradeHead<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.pending.is_empty() {
            if this.head_end == HeadEnd::Done {
                return Pin::new(&mut this.inner).poll_read(cx, buf);
            }
            let mut chunk = [0; READ_CHUNK];
            let mut read = ReadBuf::new(&mut chunk);
            match Pin::new(&mut this.inner).poll_read(cx, &mut read) {
                Poll::Ready(Ok(())) => this.pending.extend_from_slice(read.filled()),
                other => return other,
            }
        }
        this.drain_pending(buf);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for UpgradeHead<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, data)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// Reads `stream` once into a buffer of `size` bytes.
    async fn read_once<S: AsyncRead + Unpin>(stream: &mut S, size: usize) -> Vec<u8> {
        let mut buffer = vec![0; size];
        let count = stream.read(&mut buffer).await.unwrap();
        buffer.truncate(count);
        buffer
    }

    #[tokio::test]
    async fn reads_stop_at_the_head_then_pass_the_rest() {
        let (mut client, server) = tokio::io::duplex(1024);
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nFRAME")
            .await
            .unwrap();
        let mut head = UpgradeHead::new(server);
        assert_eq!(
            read_once(&mut head, 100).await,
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
        );
        assert_eq!(read_once(&mut head, 100).await, b"FRAME");
        client.write_all(b"NEXT").await.unwrap();
        assert_eq!(read_once(&mut head, 100).await, b"NEXT");
    }

    #[tokio::test]
    async fn head_end_found_across_small_reads() {
        let (mut client, server) = tokio::io::duplex(1024);
        client.write_all(b"GET / HTTP/1.1\n\nX").await.unwrap();
        let mut head = UpgradeHead::new(server);
        let mut seen = Vec::new();
        while !seen.ends_with(b"\n\n") {
            let part = read_once(&mut head, 3).await;
            assert!(!part.is_empty());
            seen.extend(part);
        }
        assert_eq!(seen, b"GET / HTTP/1.1\n\n");
        assert_eq!(read_once(&mut head, 3).await, b"X");
    }

    #[test]
    fn head_end_states() {
        let end = |text: &[u8]| text.iter().fold(HeadEnd::None, |state, &b| state.next(b));
        assert_eq!(end(b"a\r\n\r\n"), HeadEnd::Done);
        assert_eq!(end(b"a\n\n"), HeadEnd::Done);
        assert_eq!(end(b"a\r\nb\r\n"), HeadEnd::LineFeed);
        assert_eq!(end(b"a\r\n\rb"), HeadEnd::None);
    }
}
