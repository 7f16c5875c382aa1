//! `listen(&Address)` and `connect(&Address)` over TCP, unix sockets and (with the `vsock`
//! feature) AF_VSOCK, returning one stream type so servers and clients are written once.
//!
//! Tests and `ccctl demo` use unix sockets and loopback TCP only; the `vsock` feature is for
//! production builds.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

use crate::address::Address;

/// A bound listener for any [`Address`] scheme.
#[derive(Debug)]
pub enum Listener {
    Tcp(TcpListener),
    /// The path is removed when the listener is dropped.
    Unix(UnixListener, UnixPathGuard),
    #[cfg(feature = "vsock")]
    Vsock(tokio_vsock::VsockListener),
}

/// Removes a unix socket file when dropped, so a stopped server leaves no stale socket.
#[derive(Debug)]
pub struct UnixPathGuard(PathBuf);

impl Drop for UnixPathGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A connected byte stream over any transport.
#[derive(Debug)]
pub enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
    #[cfg(feature = "vsock")]
    Vsock(tokio_vsock::VsockStream),
}

#[cfg(not(feature = "vsock"))]
fn vsock_not_built(addr: &Address) -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        format!(
            "'{addr}': this build has no vsock support (build with the 'vsock' cargo feature); \
             use unix:// or tcp:// addresses"
        ),
    )
}

/// Bind a listener. A stale unix socket file (nobody accepting on it) is replaced; a live one
/// is an error, as is a path that exists and is not a socket.
pub async fn listen(addr: &Address) -> io::Result<Listener> {
    match addr {
        Address::Tcp { host, port } => {
            let l = TcpListener::bind((host.as_str(), *port))
                .await
                .map_err(|e| annotate(e, addr, "listen on"))?;
            Ok(Listener::Tcp(l))
        }
        Address::Unix(path) => {
            clear_stale_socket(path).await?;
            let l = UnixListener::bind(path).map_err(|e| annotate(e, addr, "listen on"))?;
            Ok(Listener::Unix(l, UnixPathGuard(path.clone())))
        }
        #[cfg(feature = "vsock")]
        Address::Vsock { cid, port } => {
            let l = tokio_vsock::VsockListener::bind(tokio_vsock::VsockAddr::new(*cid, *port))
                .map_err(|e| annotate(e, addr, "listen on"))?;
            Ok(Listener::Vsock(l))
        }
        #[cfg(not(feature = "vsock"))]
        Address::Vsock { .. } => Err(vsock_not_built(addr)),
    }
}

async fn clear_stale_socket(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "'{}' exists and is not a unix socket; refusing to replace it",
                path.display()
            ),
        ));
    }
    if UnixStream::connect(path).await.is_ok() {
        return Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!(
                "'unix://{}': another process is already listening there",
                path.display()
            ),
        ));
    }
    std::fs::remove_file(path)
}

fn annotate(e: io::Error, addr: &Address, what: &str) -> io::Error {
    io::Error::new(e.kind(), format!("{what} '{addr}': {e}"))
}

/// Connect to an address. TCP streams have `TCP_NODELAY` set: the chamber's traffic is
/// request/response and TLS records, where Nagle only adds latency.
pub async fn connect(addr: &Address) -> io::Result<Stream> {
    match addr {
        Address::Tcp { host, port } => {
            let s = TcpStream::connect((host.as_str(), *port))
                .await
                .map_err(|e| annotate(e, addr, "connect to"))?;
            let _ = s.set_nodelay(true);
            Ok(Stream::Tcp(s))
        }
        Address::Unix(path) => {
            let s = UnixStream::connect(path)
                .await
                .map_err(|e| annotate(e, addr, "connect to"))?;
            Ok(Stream::Unix(s))
        }
        #[cfg(feature = "vsock")]
        Address::Vsock { cid, port } => {
            let s = tokio_vsock::VsockStream::connect(tokio_vsock::VsockAddr::new(*cid, *port))
                .await
                .map_err(|e| annotate(e, addr, "connect to"))?;
            Ok(Stream::Vsock(s))
        }
        #[cfg(not(feature = "vsock"))]
        Address::Vsock { .. } => Err(vsock_not_built(addr)),
    }
}

impl Listener {
    /// Accept one connection; the string names the peer for logs.
    pub async fn accept(&self) -> io::Result<(Stream, String)> {
        match self {
            Listener::Tcp(l) => {
                let (s, peer) = l.accept().await?;
                let _ = s.set_nodelay(true);
                Ok((Stream::Tcp(s), peer.to_string()))
            }
            Listener::Unix(l, _) => {
                let (s, _) = l.accept().await?;
                Ok((Stream::Unix(s), "unix".to_owned()))
            }
            #[cfg(feature = "vsock")]
            Listener::Vsock(l) => {
                let (s, peer) = l.accept().await?;
                Ok((
                    Stream::Vsock(s),
                    format!("vsock://{}:{}", peer.cid(), peer.port()),
                ))
            }
        }
    }

    /// The address actually bound (a TCP port 0 resolved to the real port).
    pub fn local_addr(&self) -> io::Result<Address> {
        match self {
            Listener::Tcp(l) => {
                let a = l.local_addr()?;
                Ok(Address::Tcp {
                    host: a.ip().to_string(),
                    port: a.port(),
                })
            }
            Listener::Unix(_, guard) => Ok(Address::Unix(guard.0.clone())),
            #[cfg(feature = "vsock")]
            Listener::Vsock(l) => {
                let a = l.local_addr()?;
                Ok(Address::Vsock {
                    cid: a.cid(),
                    port: a.port(),
                })
            }
        }
    }
}

/// axum serves HTTP on any of our listeners (TCP, unix or vsock). Accept errors (e.g. out of
/// file descriptors) are retried with the shared backoff instead of ending the server.
#[cfg(feature = "axum")]
impl axum::serve::Listener for Listener {
    type Io = Stream;
    type Addr = String;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let mut backoff = crate::Backoff::default();
        loop {
            match Listener::accept(self).await {
                Ok(pair) => return pair,
                Err(_) => tokio::time::sleep(backoff.next_delay()).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Listener::local_addr(self).map(|a| a.to_string())
    }
}

macro_rules! delegate {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            Stream::Tcp($s) => $e,
            Stream::Unix($s) => $e,
            #[cfg(feature = "vsock")]
            Stream::Vsock($s) => $e,
        }
    };
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        delegate!(self, s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, s => Pin::new(s).poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, s => Pin::new(s).poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Tcp(s) => s.is_write_vectored(),
            Stream::Unix(s) => s.is_write_vectored(),
            #[cfg(feature = "vsock")]
            Stream::Vsock(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => Pin::new(s).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => Pin::new(s).poll_shutdown(cx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn echo_once(l: Listener) {
        let (mut s, _) = l.accept().await.unwrap();
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).await.unwrap();
        s.write_all(&buf).await.unwrap();
    }

    #[tokio::test]
    async fn tcp_round_trip_on_loopback() {
        let l = listen(&"tcp://127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = l.local_addr().unwrap();
        assert!(matches!(addr, Address::Tcp { port, .. } if port != 0));
        let server = tokio::spawn(echo_once(l));
        let mut c = connect(&addr).await.unwrap();
        c.write_all(b"hello").await.unwrap();
        let mut buf = [0u8; 5];
        c.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hello");
        server.await.unwrap();
    }

    #[tokio::test]
    async fn unix_round_trip_and_socket_removed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let addr = Address::Unix(path.clone());
        let l = listen(&addr).await.unwrap();
        let server = tokio::spawn(echo_once(l));
        let mut c = connect(&addr).await.unwrap();
        c.write_all(b"hello").await.unwrap();
        let mut buf = [0u8; 5];
        c.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hello");
        server.await.unwrap();
        assert!(!path.exists(), "socket file left behind");
    }

    #[tokio::test]
    async fn stale_unix_socket_is_replaced_live_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        // A stale socket: bound with std and forgotten, nobody accepting.
        let stale = std::os::unix::net::UnixListener::bind(&path).unwrap();
        drop(stale);
        assert!(path.exists());
        let addr = Address::Unix(path.clone());
        let live = listen(&addr).await.unwrap();
        let again = listen(&addr).await.unwrap_err();
        assert_eq!(again.kind(), io::ErrorKind::AddrInUse);
        assert!(again.to_string().contains("already listening"), "{again}");
        drop(live);
    }

    #[tokio::test]
    async fn regular_file_is_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("important.txt");
        std::fs::write(&path, "keep me").unwrap();
        let e = listen(&Address::Unix(path.clone())).await.unwrap_err();
        assert!(e.to_string().contains("is not a unix socket"), "{e}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "keep me");
    }

    #[cfg(not(feature = "vsock"))]
    #[tokio::test]
    async fn vsock_without_the_feature_is_a_clear_error() {
        // Never opens an AF_VSOCK socket: the feature is off in tests.
        let e = connect(&"vsock://3:7000".parse().unwrap())
            .await
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::Unsupported);
        assert!(e.to_string().contains("'vsock' cargo feature"), "{e}");
    }

    #[tokio::test]
    async fn connect_refused_names_the_address() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let e = connect(&format!("tcp://127.0.0.1:{port}").parse().unwrap())
            .await
            .unwrap_err();
        assert!(
            e.to_string().contains(&format!("tcp://127.0.0.1:{port}")),
            "{e}"
        );
    }
}
