//! The Unix control socket.
//!
//! # Permission model
//! The socket file is created with mode 0660 (owner and group may connect; other users may
//! not), inside a directory that rntpd creates with mode 0750 when it does not exist. So:
//! * other users cannot connect at all;
//! * members of the socket's group (give it to an `ntp` or monitoring group with `chgrp`) may
//!   run the read-only commands (`peers`, `sources`, `status`, `history`);
//! * mutating commands (`add`, `remove`, `refresh`) additionally require the caller's uid, as
//!   the kernel reports it (SO_PEERCRED, which cannot be forged), to be root or rntpd's own.
//!
//! # Bounds
//! At most [`MAX_CLIENTS`] connections are served at once (more wait in the accept queue), each
//! must send its request within [`REQUEST_TIMEOUT`], and frames are limited to
//! [`rntp_control::MAX_FRAME_LEN`]. A misbehaving client therefore costs a bounded amount of
//! memory and never delays the protocol tasks.

use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rntp_control::{
    decode_payload, encode_frame, frame_len, Command, ErrorCode, Reply, Request, Response,
    FRAME_HEADER_LEN, PROTOCOL_VERSION,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot, watch, Semaphore};

/// Concurrent control connections served.
pub const MAX_CLIENTS: usize = 16;
/// Time a client has to send its request, and to read the reply.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A decoded request on its way to the orchestrator, which owns all state and answers from
/// memory without blocking.
pub type ControlRequest = (Command, oneshot::Sender<Reply>);

/// A bound control socket; removes its file when dropped.
#[derive(Debug)]
pub struct ControlSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl ControlSocket {
    /// Binds `path`. A stale socket file from a previous run is replaced; a live one (another
    /// rntpd answers on it) is an error.
    pub async fn bind(path: &Path) -> io::Result<ControlSocket> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.exists() {
                std::fs::create_dir_all(dir)?;
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o750))?;
            }
        }
        if path.exists() {
            if UnixStream::connect(path).await.is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("another rntpd is already serving {}", path.display()),
                ));
            }
            std::fs::remove_file(path)?;
        }
        let listener = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
        Ok(ControlSocket { listener, path: path.to_path_buf() })
    }

    /// Serves clients until shutdown.
    pub async fn serve(
        self,
        requests: mpsc::Sender<ControlRequest>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let limit = Arc::new(Semaphore::new(MAX_CLIENTS));
        loop {
            let Ok(permit) = Arc::clone(&limit).acquire_owned().await else { return };
            let accepted = tokio::select! {
                r = self.listener.accept() => r,
                _ = shutdown.changed() => return,
            };
            match accepted {
                Ok((stream, _)) => {
                    let requests = requests.clone();
                    tokio::spawn(async move {
                        if let Err(e) = handle(stream, &requests).await {
                            tracing::debug!(error = %e, "control client error");
                        }
                        drop(permit);
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "control socket accept failed");
                    // Avoid a hot loop on persistent errors such as EMFILE.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

async fn handle(mut stream: UnixStream, requests: &mpsc::Sender<ControlRequest>) -> io::Result<()> {
    let request = tokio::time::timeout(REQUEST_TIMEOUT, read_request(&mut stream))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "request timed out"))?;
    let reply = match request {
        Ok(req) if req.version != PROTOCOL_VERSION => Reply::Error {
            code: ErrorCode::UnsupportedVersion,
            message: format!(
                "this rntpd speaks control protocol version {PROTOCOL_VERSION}, the client sent {}; use the rntpctl that came with this rntpd",
                req.version
            ),
        },
        Ok(req) if req.command.is_mutating() && !may_mutate(&stream) => Reply::Error {
            code: ErrorCode::PermissionDenied,
            message: format!(
                "this command changes rntpd's sources and needs root or rntpd's user (uid {}); read-only commands (peers, sources, status, history) work for the socket's group",
                rntp_sys::geteuid()
            ),
        },
        Ok(req) => {
            let (tx, rx) = oneshot::channel();
            if requests.send((req.command, tx)).await.is_err() {
                return Ok(()); // shutting down
            }
            match rx.await {
                Ok(reply) => reply,
                Err(_) => return Ok(()),
            }
        }
        Err(e) => Reply::Error { code: ErrorCode::BadRequest, message: e },
    };
    let frame = encode_frame(&Response::new(reply))
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    // A client that never reads its reply must not hold a connection slot forever.
    tokio::time::timeout(REQUEST_TIMEOUT, async {
        stream.write_all(&frame).await?;
        stream.shutdown().await
    })
    .await
    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "client did not read its reply"))?
}

/// Whether the peer may run mutating commands: root or our own uid.
fn may_mutate(stream: &UnixStream) -> bool {
    match rntp_sys::peer_credentials(stream.as_fd()) {
        Ok(cred) => cred.uid == 0 || cred.uid == rntp_sys::geteuid(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read control client credentials; refusing a mutating command");
            false
        }
    }
}

/// Reads one request frame; the error string goes back to the client.
async fn read_request(stream: &mut UnixStream) -> Result<Request, String> {
    let mut header = [0u8; FRAME_HEADER_LEN];
    stream.read_exact(&mut header).await.map_err(|e| format!("reading request: {e}"))?;
    let len = frame_len(header).map_err(|e| e.to_string())?;
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload).await.map_err(|e| format!("reading request: {e}"))?;
    decode_payload(&payload).map_err(|e| e.to_string())
}
