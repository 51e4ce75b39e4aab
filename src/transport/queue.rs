//! A bounded per-device command queue that coalesces by attribute: a newer command for
//! the same attribute replaces the queued older one in place, so a dragged brightness slider
//! sends one command, not forty. When the queue is full the configured overflow policy decides.
//!
//! Pure data structure; the async "block with timeout" policy for command submission is built
//! on top of it by the caller (wait for space, then push).

use std::collections::VecDeque;

/// What to do when a bounded queue is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Overflow {
    /// Drop the oldest queued item to make room (counted).
    DropOldest,
    /// Refuse the new item (counted); the caller reports the failure.
    Reject,
}

/// What happened to a pushed item.
#[derive(Debug, PartialEq, Eq)]
pub enum Pushed<T> {
    /// Queued at the back.
    Queued,
    /// Replaced a queued item for the same attribute, which is handed back.
    Superseded(T),
    /// Queued after dropping the oldest item, which is handed back.
    DroppedOldest(T),
    /// Not queued: the queue is full and the policy is [`Overflow::Reject`].
    Rejected(T),
}

/// Bounded FIFO keyed by attribute.
#[derive(Debug)]
pub struct CoalescingQueue<K, T> {
    capacity: usize,
    overflow: Overflow,
    items: VecDeque<(K, T)>,
}

impl<K: PartialEq, T> CoalescingQueue<K, T> {
    /// An empty queue holding at most `capacity` items (at least one).
    pub fn new(capacity: usize, overflow: Overflow) -> Self {
        CoalescingQueue {
            capacity: capacity.max(1),
            overflow,
            items: VecDeque::new(),
        }
    }

    /// Adds `item` for attribute `key`.
    pub fn push(&mut self, key: K, item: T) -> Pushed<T> {
        if let Some(slot) = self.items.iter_mut().find(|(k, _)| *k == key) {
            return Pushed::Superseded(std::mem::replace(&mut slot.1, item));
        }
        if self.items.len() < self.capacity {
            self.items.push_back((key, item));
            return Pushed::Queued;
        }
        match self.overflow {
            Overflow::Reject => Pushed::Rejected(item),
            Overflow::DropOldest => match self.items.pop_front() {
                Some((_, oldest)) => {
                    self.items.push_back((key, item));
                    Pushed::DroppedOldest(oldest)
                }
                None => Pushed::Rejected(item),
            },
        }
    }

    /// Takes the oldest item.
    pub fn pop(&mut self) -> Option<(K, T)> {
        self.items.pop_front()
    }

    /// Removes every item, e.g. when a device is removed; the caller cancels them.
    pub fn drain(&mut self) -> impl Iterator<Item = (K, T)> + '_ {
        self.items.drain(..)
    }

    /// Items queued.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// True when a push without a matching key would overflow.
    pub fn is_full(&self) -> bool {
        self.items.len() >= self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_newer_command_for_the_same_attribute_replaces_the_queued_one_in_place() {
        let mut q = CoalescingQueue::new(8, Overflow::Reject);
        assert_eq!(q.push("power", 1), Pushed::Queued);
        assert_eq!(q.push("brightness", 10), Pushed::Queued);
        for level in 11..50 {
            assert_eq!(q.push("brightness", level), Pushed::Superseded(level - 1));
        }
        assert_eq!(q.len(), 2);
        assert_eq!(q.pop(), Some(("power", 1)));
        assert_eq!(q.pop(), Some(("brightness", 49)));
    }

    #[test]
    fn overflow_policies_hand_back_what_they_refuse_or_drop() {
        let mut q = CoalescingQueue::new(2, Overflow::Reject);
        q.push(1, 'a');
        q.push(2, 'b');
        assert_eq!(q.push(3, 'c'), Pushed::Rejected('c'));
        assert_eq!(q.len(), 2);

        let mut q = CoalescingQueue::new(2, Overflow::DropOldest);
        q.push(1, 'a');
        q.push(2, 'b');
        assert_eq!(q.push(3, 'c'), Pushed::DroppedOldest('a'));
        assert_eq!(q.drain().map(|(_, v)| v).collect::<String>(), "bc");
    }

    #[test]
    fn a_full_queue_still_accepts_a_superseding_command() {
        let mut q = CoalescingQueue::new(1, Overflow::Reject);
        q.push("brightness", 1);
        assert!(q.is_full());
        assert_eq!(q.push("brightness", 2), Pushed::Superseded(1));
    }
}
