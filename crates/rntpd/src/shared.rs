//! The node as the event loop's tasks share it.
//!
//! Everything runs on one thread (a tokio current-thread runtime with a `LocalSet`, as chronyd
//! runs one event loop), so the node sits in an `Rc<RefCell<_>>`. Tasks only borrow it in
//! synchronous code between `.await`s ([`Shared::with`] takes a closure, which cannot await),
//! so two borrows can never overlap. After feeding the node, a task calls [`Shared::wake`] so
//! the main loop drains what the node wants done.

use std::cell::RefCell;
use std::rc::Rc;

use rntp_proto::node::Node;
use tokio::sync::Notify;

/// A handle to the node and the main loop's wake-up.
#[derive(Clone)]
pub struct Shared {
    node: Rc<RefCell<Node>>,
    wake: Rc<Notify>,
}

impl Shared {
    /// Wraps the node.
    pub fn new(node: Node) -> Self {
        Shared { node: Rc::new(RefCell::new(node)), wake: Rc::new(Notify::new()) }
    }

    /// Runs `f` on the node.
    pub fn with<R>(&self, f: impl FnOnce(&mut Node) -> R) -> R {
        f(&mut self.node.borrow_mut())
    }

    /// Tells the main loop the node has work for it.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Resolves when a task called [`Shared::wake`] (at once if one did since the last wait).
    pub async fn woken(&self) {
        self.wake.notified().await;
    }
}
