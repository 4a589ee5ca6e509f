//! What a producer on this rank knows of each stream it feeds on another
//! rank (see `streams`): how far the stream's caller has read, and whether
//! it dropped the stream.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::error::Result;
use crate::object::stream::Room;
use crate::sync::lock;

/// One stream's window.
#[derive(Default)]
pub(crate) struct Window {
    /// (items the caller has taken, the caller dropped the stream).
    state: Mutex<(u64, bool)>,
    cv: Condvar,
}

impl Window {
    /// Whether item `index` may be produced now (`None`: not yet).
    pub(crate) fn room_now(&self, index: u64, backpressure: u64) -> Option<Room> {
        let st = lock(&self.state);
        if st.1 {
            Some(Room::Cancelled)
        } else {
            (index < st.0.saturating_add(backpressure.max(1))).then_some(Room::Free)
        }
    }

    /// Waits until item `index` may be produced with `backpressure`,
    /// asking `alive` every `tick` whether to go on waiting (its error
    /// ends the wait).
    pub(crate) fn wait_room(
        &self,
        index: u64,
        backpressure: u64,
        tick: Duration,
        alive: impl Fn() -> Result<()>,
    ) -> Result<Room> {
        let mut st = lock(&self.state);
        loop {
            if st.1 {
                return Ok(Room::Cancelled);
            }
            if index < st.0.saturating_add(backpressure.max(1)) {
                return Ok(Room::Free);
            }
            alive()?;
            st = self
                .cv
                .wait_timeout(st, tick)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

/// The windows of the streams this rank produces for others, by stream.
#[derive(Default)]
pub(crate) struct Windows(Mutex<HashMap<u64, Arc<Window>>>);

impl Windows {
    /// The window on `stream` (a new one at its first use).
    pub(crate) fn get(&self, stream: u64) -> Arc<Window> {
        lock(&self.0).entry(stream).or_default().clone()
    }

    /// The caller of `stream` has taken `consumed` items, or dropped it.
    pub(crate) fn consumed(&self, stream: u64, consumed: u64, cancelled: bool) {
        let Some(w) = lock(&self.0).get(&stream).cloned() else {
            return;
        };
        let mut st = lock(&w.state);
        st.0 = st.0.max(consumed);
        st.1 |= cancelled;
        w.cv.notify_all();
    }

    /// The producer of `stream` on this rank is done.
    pub(crate) fn close(&self, stream: u64) {
        lock(&self.0).remove(&stream);
    }
}
