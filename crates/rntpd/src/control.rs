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
//! # One daemon per socket
//! A lock file beside the socket (`PATH.lock`, `flock`) is held for the daemon's life: a second
//! rntpd with the same path refuses to start while the first lives, whatever state the socket is
//! in (even with its accept queue full). A socket file left by a daemon that died is replaced;
//! a path that exists and is not a socket is never touched. At exit the socket is removed only
//! if it is still the one this daemon created (same inode).
//!
//! # Bounds
//! At most [`MAX_CONNECTIONS`] connections at once; each user other than root and rntpd's own
//! may hold [`MAX_PER_USER`] of them, and the last [`RESERVED`] places are for root and rntpd's
//! user only, so no group member can lock the administrator out. A connection must deliver its
//! request within [`REQUEST_TIMEOUT`] (1 s: rntpctl sends it at once) and read its reply within
//! [`REPLY_TIMEOUT`]. Frames are limited to [`rntp_control::MAX_FRAME_LEN`]; a reply larger
//! than that is sent as several frames. A misbehaving client therefore costs a bounded amount
//! of memory and time and never delays the protocol.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rntp_control::{
    decode_payload, encode_reply_frames, frame_len, Command, ErrorCode, Reply, Request,
    FRAME_HEADER_LEN, PROTOCOL_VERSION,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot, watch};

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 64;
/// Connections one ordinary user may hold at once.
pub const MAX_PER_USER: usize = 8;
/// Places of [`MAX_CONNECTIONS`] only root and rntpd's own user may take.
pub const RESERVED: usize = 8;
/// Time a client has to send its whole request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);
/// Time a client has to read its reply.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// A decoded request on its way to the main loop, which owns all state and answers from memory
/// without blocking.
pub type ControlRequest = (Command, oneshot::Sender<Reply>);

/// A bound control socket; removes its file when dropped (if it is still ours).
#[derive(Debug)]
pub struct ControlSocket {
    listener: UnixListener,
    path: PathBuf,
    /// The socket file's identity (device, inode) right after bind.
    identity: (u64, u64),
    /// Held (flock) while this daemon lives.
    _lock: File,
}

impl ControlSocket {
    /// Binds `path`, after taking its lock file. Errors: another rntpd holds the lock, the path
    /// exists and is not a socket, or the OS refuses.
    pub async fn bind(path: &Path) -> io::Result<ControlSocket> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.exists() {
                std::fs::create_dir_all(dir)?;
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o750))?;
            }
        }
        let lock_path = lock_path(path);
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| {
                io::Error::new(e.kind(), format!("lock file {}: {e}", lock_path.display()))
            })?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!(
                        "another rntpd is running with this control socket (it holds {}); stop \
                         it first, or give this one another --control-socket",
                        lock_path.display()
                    ),
                ));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("cannot lock {}: {e}", lock_path.display()),
                ))
            }
        }
        // We hold the lock: whatever socket is at the path belongs to a daemon that is gone.
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(path)?,
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!(
                        "{} exists and is not a socket; it was left alone: remove it or choose \
                         another --control-socket",
                        path.display()
                    ),
                ))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let listener = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
        let meta = std::fs::symlink_metadata(path)?;
        Ok(ControlSocket {
            listener,
            path: path.to_path_buf(),
            identity: (meta.dev(), meta.ino()),
            _lock: lock,
        })
    }

    /// Serves clients until shutdown.
    pub async fn serve(
        self,
        requests: mpsc::Sender<ControlRequest>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let slots = Arc::new(Slots::default());
        let own_uid = rntp_sys::geteuid();
        loop {
            let accepted = tokio::select! {
                r = self.listener.accept() => r,
                _ = shutdown.changed() => return,
            };
            let stream = match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "control socket accept failed");
                    // Avoid a hot loop on persistent errors such as EMFILE.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let uid = match rntp_sys::peer_credentials(stream.as_fd()) {
                Ok(cred) => cred.uid,
                Err(e) => {
                    tracing::debug!(error = %e, "control client without credentials; closed");
                    continue;
                }
            };
            let privileged = uid == 0 || uid == own_uid;
            let Some(slot) = Slots::take(&slots, uid, privileged) else {
                // Closing at once keeps the accept queue moving; the client sees the close.
                tracing::debug!(uid, "control connection refused: too many connections");
                continue;
            };
            let requests = requests.clone();
            tokio::spawn(async move {
                if let Err(e) = handle(stream, privileged, &requests).await {
                    tracing::debug!(uid, error = %e, "control client error");
                }
                drop(slot);
            });
        }
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        // Another rntpd may have taken the path over (after a kill -9 of this one and a manual
        // restart): remove only the socket this daemon made.
        let ours = std::fs::symlink_metadata(&self.path)
            .is_ok_and(|m| (m.dev(), m.ino()) == self.identity);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// `PATH.lock` for the socket `PATH`.
fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".lock");
    path.with_file_name(name)
}

/// Connection accounting: in total and per uid.
#[derive(Debug, Default)]
struct Slots {
    state: Mutex<(usize, HashMap<u32, usize>)>,
}

/// One connection's place; released on drop.
struct Slot {
    slots: Arc<Slots>,
    uid: u32,
}

impl Slots {
    fn take(slots: &Arc<Slots>, uid: u32, privileged: bool) -> Option<Slot> {
        let mut guard = slots.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (total, per_uid) = &mut *guard;
        let mine = per_uid.get(&uid).copied().unwrap_or(0);
        let room = if privileged {
            *total < MAX_CONNECTIONS
        } else {
            *total < MAX_CONNECTIONS - RESERVED && mine < MAX_PER_USER
        };
        if !room {
            return None;
        }
        *total += 1;
        *per_uid.entry(uid).or_default() += 1;
        Some(Slot { slots: Arc::clone(slots), uid })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut guard = self.slots.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (total, per_uid) = &mut *guard;
        *total = total.saturating_sub(1);
        if let Some(n) = per_uid.get_mut(&self.uid) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                per_uid.remove(&self.uid);
            }
        }
    }
}

async fn handle(
    mut stream: UnixStream,
    privileged: bool,
    requests: &mpsc::Sender<ControlRequest>,
) -> io::Result<()> {
    let request = tokio::time::timeout(REQUEST_TIMEOUT, read_request(&mut stream))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no complete request in time"))?;
    let reply = match request {
        Ok(req) if req.version != PROTOCOL_VERSION => Reply::Error {
            code: ErrorCode::UnsupportedVersion,
            message: format!(
                "this rntpd speaks control protocol version {PROTOCOL_VERSION}, the client sent {}; use the rntpctl that came with this rntpd",
                req.version
            ),
        },
        Ok(req) if req.command.is_mutating() && !privileged => Reply::Error {
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
    let frames = match encode_reply_frames(reply) {
        Ok(frames) => frames,
        Err(e) => {
            let error = Reply::Error { code: ErrorCode::BadRequest, message: e.to_string() };
            encode_reply_frames(error).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?
        }
    };
    // A client that never reads its reply must not hold a connection place for long.
    tokio::time::timeout(REPLY_TIMEOUT, async {
        for frame in &frames {
            stream.write_all(frame).await?;
        }
        stream.shutdown().await
    })
    .await
    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "client did not read its reply"))?
}

/// Reads one request frame; the error string goes back to the client.
async fn read_request(stream: &mut UnixStream) -> Result<Request, String> {
    let mut header = [0u8; FRAME_HEADER_LEN];
    stream.read_exact(&mut header).await.map_err(|e| format!("reading request: {e}"))?;
    let len = frame_len(header).map_err(|e| format!("request refused: {e}"))?;
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload).await.map_err(|e| format!("reading request: {e}"))?;
    decode_payload(&payload).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_limit_users_and_keep_places_for_root() {
        let slots = Arc::new(Slots::default());
        let mut held = Vec::new();
        // One user gets MAX_PER_USER places, no more.
        for _ in 0..MAX_PER_USER {
            held.push(Slots::take(&slots, 1000, false).expect("a place"));
        }
        assert!(Slots::take(&slots, 1000, false).is_none());
        // Many users together fill all but the reserved places.
        let mut uid = 2000;
        while let Some(s) = Slots::take(&slots, uid, false) {
            held.push(s);
            uid += 1;
        }
        assert_eq!(held.len(), MAX_CONNECTIONS - RESERVED);
        // Root still gets in, up to the total.
        for _ in 0..RESERVED {
            held.push(Slots::take(&slots, 0, true).expect("root's place"));
        }
        assert!(Slots::take(&slots, 0, true).is_none());
        // Places come back on drop.
        held.clear();
        assert!(Slots::take(&slots, 1000, false).is_some());
    }

    #[test]
    fn lock_file_sits_beside_the_socket() {
        assert_eq!(
            lock_path(Path::new("/run/rntpd/rntpd.sock")),
            Path::new("/run/rntpd/rntpd.sock.lock")
        );
    }
}
